// Loads the C++ addon (build/Release/tetcd_wal.node, built by `npm install`) and describes what it exports.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  /** Lowers V8's platform worker threads to SCHED_IDLE or to a nice value (native/sched.cc); waits at most
   *  timeoutMs for busy ones. */
  v8WorkersLower(mode: 'idle' | 'nice', nice: number, timeoutMs: number): { threads: number; switched: number; finished: number; errno: number };
}

/** Control block layout in bytes, mirrored from native/writer.h. */
export const Ctrl = {
  gen: 0, state: 4, errno: 8, durableSeq: 16, appends: 24, fsyncs: 32, bytes: 40, lastFsyncUs: 48, segmentSeq: 56,
  records: 64, fsyncUsTotal: 72, batchAppendsMax: 80, cuts: 88, totalBytes: 128,
} as const;

/** Writer states published at Ctrl.state. */
export const WriterState = { running: 0, failed: 1, closed: 2 } as const;

/** Path of the addon: $TETCD_WAL_ADDON, else build/Release/tetcd_wal.node under the directory holding package.json
 *  found by walking up from this module (so it works from dist/ and from .build/<x>/out/). */
export function nativeAddonPath(): string {
  const override = process.env.TETCD_WAL_ADDON;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'build', 'Release', 'tetcd_wal.node');
    const up = dirname(dir);
    if (up === dir) throw new Error('tetcd: cannot find package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

let loaded: NativeWal | undefined;

/** Loads the addon once; throws a message telling how to build it when it is missing. */
export function loadNative(): NativeWal {
  if (loaded) return loaded;
  const path = nativeAddonPath();
  if (!existsSync(path)) {
    throw new Error(`tetcd: the native WAL addon is not built (${path} missing): run \`npm install\` ` +
      '(or `npx node-gyp rebuild`) in the tetcd directory');
  }
  loaded = createRequire(import.meta.url)(path) as NativeWal;
  return loaded;
}
