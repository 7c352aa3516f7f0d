// The WAL's face of the C++ addon (loaded by src/native/addon.ts): what it exports for the writer thread.
import { loadAddon } from '../native/addon.js';

/** Constructor options of the addon's WalHandle (see native/addon.cc). */
export interface NativeWalOptions {
  dir: string;
  segmentPath: string;
  segmentSeq: number;
  offset: number;
  chain: number;
  lastIndex: number;
  metadata: Uint8Array;
  hardState: Uint8Array;
  segmentBytes: number;
  batchBytesMax: number;
  batchDelayUsMax: number;
  /** After a batch, poll this long (µs) for the next append before sleeping; 0 = sleep at once. */
  idleSpinUs?: number;
  queueBytesMax: number;
  noFsync: boolean;
  /** WalOptions.unsafeTesting.fsyncSleepUs: sleep after each fdatasync (tests and benches only). */
  unsafeTestingFsyncSleepUs: number;
  control: Int32Array;
  /** Called on the event loop (through a thread-safe function) after the writer published progress. */
  onWake: () => void;
}

/** One writer thread and its open segment. */
export interface NativeWalHandle {
  /** Copies framed records in; returns the append's sequence number. Throws {code} when refused. */
  append(records: Uint8Array, lastIndex: number): number;
  close(): void;
  join(): void;
  ref(): void;
  unref(): void;
  failWhat(): string;
  queuedBytes(): number;
}

/** The addon's exports. */
export interface NativeWal {
  WalHandle: new (opts: NativeWalOptions) => NativeWalHandle;
  crc32c(seed: number, buf: Uint8Array, start?: number, end?: number): number;
  crc32cSoftware(seed: number, buf: Uint8Array): number;
  crc32cImpl: 'sse4.2' | 'software';
  writeInitialSegment(path: string, records: Uint8Array, segmentBytes: number, noFsync: boolean): void;
  controlBytes: number;
  /** Exclusive flock on path for the life of the process; throws {code: 'ELOCKED'} when another process holds it. */
  lockFile(path: string): number;
}

/** Control block layout in bytes, mirrored from native/writer.h. */
export const Ctrl = {
  gen: 0,
  state: 4,
  errno: 8,
  durableSeq: 16,
  appends: 24,
  fsyncs: 32,
  bytes: 40,
  lastFsyncUs: 48,
  segmentSeq: 56,
  records: 64,
  fsyncUsTotal: 72,
  batchAppendsMax: 80,
  cuts: 88,
  totalBytes: 128,
} as const;

/** Writer states published at Ctrl.state. */
export const WriterState = { running: 0, failed: 1, closed: 2 } as const;

/** Loads the addon once (src/native/addon.ts); throws a message telling how to build it when it is missing. */
export function loadNative(): NativeWal {
  return loadAddon<NativeWal>();
}
