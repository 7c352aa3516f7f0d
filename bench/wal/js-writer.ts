// A WAL writer in TypeScript with the native addon's interface (src/wal/native.ts), for the bench's
// "native vs JS writer" comparison of a whole member: run a member with
// TETCD_WAL_ADDON=<this file compiled> and src/wal loads this module instead of the addon (Node 20.19+
// can require() an ES module). Same group commit (everything queued while a write+fdatasync runs goes
// into the next), same record CRCs (computed here, in JavaScript), same segment rotation; the I/O runs
// on libuv's thread pool instead of a dedicated thread. Bench-only: nothing in src/ imports it.
import { createRequire } from 'node:module';
import { closeSync, fdatasyncSync, fsyncSync, openSync, renameSync, fdatasync, writev } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32c as crc32cJs } from '../../src/crc32c.js';
import { nativeAddonPath } from '../../src/native/addon.js';
import { Ctrl, WriterState, type NativeWal, type NativeWalHandle, type NativeWalOptions } from '../../src/wal/native.js';
import { segmentName } from '../../src/wal/segment.js';
import { HEADER_BYTES, MARKER, RecordType, recordBytes } from '../../src/wal/record.js';

/** The real addon, for everything but the writer (initial segment, hardware CRC for recovery). */
function realAddon(): NativeWal {
  // nativeAddonPath honours TETCD_WAL_ADDON, which points here; without it, it names build/Release's addon.
  const prev = process.env.TETCD_WAL_ADDON;
  delete process.env.TETCD_WAL_ADDON;
  try {
    return createRequire(import.meta.url)(nativeAddonPath()) as NativeWal;
  } finally {
    if (prev !== undefined) process.env.TETCD_WAL_ADDON = prev;
  }
}

const real = realAddon();

const u32 = (b: Uint8Array, at: number): number => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
function setU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 255;
  b[at + 1] = (v >>> 8) & 255;
  b[at + 2] = (v >>> 16) & 255;
  b[at + 3] = (v >>> 24) & 255;
}

/** One record, unfilled (CRCs zero), as the writer frames carries and headers of new segments. */
function encodeRecord(type: number, payload: Uint8Array): Uint8Array {
  const size = recordBytes(payload.length);
  const out = new Uint8Array(size);
  setU32(out, 0, payload.length);
  out[4] = type;
  out.set(payload, HEADER_BYTES);
  out[size - 1] = MARKER;
  return out;
}

interface Block {
  buf: Uint8Array;
  seq: number;
  lastIndex: number;
}

/** The writer: a JavaScript twin of native/writer.cc. */
class JsWalHandle implements NativeWalHandle {
  private fd: number;
  private readonly dir: string;
  private segmentSeq: number;
  private offset: number;
  private headerEnd: number;
  private chain: number;
  private lastIndex: number;
  private readonly metadata: Uint8Array;
  private hardState: Uint8Array;
  private readonly segmentBytes: number;
  private readonly batchBytesMax: number;
  private readonly noFsync: boolean;
  private readonly control: Int32Array;
  private readonly control64: BigInt64Array;
  private readonly onWake: (() => void) | undefined;
  private queue: Block[] = [];
  private queued = 0;
  private seq = 0;
  private writing = false;
  private closing = false;
  private failed = '';
  private counters = { appends: 0, fsyncs: 0, bytes: 0, records: 0, cuts: 0, fsyncUsTotal: 0, batchAppendsMax: 0 };

  constructor(o: NativeWalOptions) {
    this.dir = o.dir;
    this.fd = openSync(o.segmentPath, 'r+');
    this.segmentSeq = o.segmentSeq;
    this.offset = o.offset;
    this.headerEnd = o.offset;
    this.chain = o.chain;
    this.lastIndex = o.lastIndex;
    this.metadata = Uint8Array.from(o.metadata);
    this.hardState = Uint8Array.from(o.hardState);
    this.segmentBytes = o.segmentBytes;
    this.batchBytesMax = o.batchBytesMax;
    this.noFsync = o.noFsync;
    this.control = o.control;
    this.control64 = new BigInt64Array(o.control.buffer);
    this.onWake = o.onWake;
  }

  append(records: Uint8Array, lastIndex: number): number {
    if (this.failed !== '') throw Object.assign(new Error(`wal writer failed: ${this.failed}`), { code: 'EFAILED' });
    if (this.closing) throw Object.assign(new Error('wal writer closed'), { code: 'ECLOSED' });
    const seq = ++this.seq;
    this.queue.push({ buf: Uint8Array.from(records), seq, lastIndex });
    this.queued += records.length;
    if (!this.writing) this.writeNext();
    return seq;
  }

  close(): void {
    this.closing = true;
    if (!this.writing) this.finishClose();
  }

  join(): void {}
  ref(): void {}
  unref(): void {}
  failWhat(): string {
    return this.failed;
  }
  queuedBytes(): number {
    return this.queued;
  }

  /** Takes everything queued (up to batchBytesMax, at least one block) and writes + syncs it. */
  private writeNext(): void {
    if (this.queue.length === 0) {
      if (this.closing) this.finishClose();
      return;
    }
    let take = 0;
    let bytes = 0;
    while (take < this.queue.length && (take === 0 || bytes + this.queue[take].buf.length <= this.batchBytesMax)) {
      bytes += this.queue[take].buf.length;
      take++;
    }
    const batch = this.queue.splice(0, take);
    this.queued -= bytes;
    this.writing = true;
    try {
      if (this.offset + bytes > this.segmentBytes && this.offset > this.headerEnd) this.cut();
    } catch (err) {
      this.fail(`cut: ${(err as Error).message}`);
      return;
    }
    let records = 0;
    for (const b of batch) records += this.fill(b.buf);
    const bufs = batch.map((b) => b.buf);
    const started = process.hrtime.bigint();
    writev(this.fd, bufs, this.offset, (err) => {
      if (err) {
        this.fail(`write: ${err.message}`);
        return;
      }
      const done = (): void => {
        this.offset += bytes;
        this.lastIndex = batch[batch.length - 1].lastIndex;
        const c = this.counters;
        c.fsyncs++;
        c.fsyncUsTotal += Number((process.hrtime.bigint() - started) / 1000n);
        c.appends += batch.length;
        c.records += records;
        c.bytes += bytes;
        c.batchAppendsMax = Math.max(c.batchAppendsMax, batch.length);
        this.publish(batch[batch.length - 1].seq);
        this.writing = false;
        this.writeNext();
      };
      if (this.noFsync) {
        done();
        return;
      }
      fdatasync(this.fd, (e) => {
        if (e) {
          this.fail(`fdatasync: ${e.message}`);
          return;
        }
        done();
      });
    });
  }

  /** Fills the CRCs of the records in buf (native/record.h FillFrames); returns how many there are. */
  private fill(buf: Uint8Array): number {
    let off = 0;
    let n = 0;
    while (off < buf.length) {
      const len = u32(buf, off);
      const size = recordBytes(len);
      const type = buf[off + 4];
      const seed = type === RecordType.crcCarry ? 0 : this.chain;
      const dataCrc = crc32cJs(seed, buf, off + HEADER_BYTES, off + size);
      setU32(buf, off + 8, dataCrc);
      setU32(buf, off + 12, crc32cJs(0, buf, off, off + 12));
      this.chain = type === RecordType.crcCarry ? u32(buf, off + HEADER_BYTES) : dataCrc;
      if (type === RecordType.hardState) this.hardState = buf.slice(off + HEADER_BYTES, off + HEADER_BYTES + len);
      off += size;
      n++;
    }
    return n;
  }

  /** Starts the next segment: preallocated and headed (carry, metadata, hard state) by the addon's initial-segment call. */
  private cut(): void {
    if (!this.noFsync) fdatasyncSync(this.fd);
    closeSync(this.fd);
    const seq = this.segmentSeq + 1;
    const path = join(this.dir, segmentName(seq, this.lastIndex + 1));
    const carry = new Uint8Array(4);
    setU32(carry, 0, this.chain);
    const parts = [encodeRecord(RecordType.crcCarry, carry), encodeRecord(RecordType.metadata, this.metadata)];
    if (this.hardState.length > 0) parts.push(encodeRecord(RecordType.hardState, this.hardState));
    const head = Buffer.concat(parts);
    // Filled from chain 0: the carry is checksummed on its own and sets the chain to what it carries.
    real.writeInitialSegment(path + '.tmp', head, this.segmentBytes, this.noFsync);
    renameSync(path + '.tmp', path);
    if (!this.noFsync) {
      const d = openSync(dirname(path), 'r');
      try {
        fsyncSync(d);
      } finally {
        closeSync(d);
      }
    }
    this.chain = u32(head, HEADER_BYTES); // what the carry restates
    // The metadata and hard state records advance the chain past the carry: recompute as the writer did.
    let off = recordBytes(4);
    while (off < head.length) {
      const size = recordBytes(u32(head, off));
      this.chain = crc32cJs(this.chain, head, off + HEADER_BYTES, off + size);
      off += size;
    }
    this.fd = openSync(path, 'r+');
    this.segmentSeq = seq;
    this.offset = head.length;
    this.headerEnd = head.length;
    this.counters.cuts++;
  }

  private publish(durableSeq: number): void {
    const c = this.control64;
    const k = this.counters;
    Atomics.store(c, Ctrl.durableSeq / 8, BigInt(durableSeq));
    Atomics.store(c, Ctrl.appends / 8, BigInt(k.appends));
    Atomics.store(c, Ctrl.fsyncs / 8, BigInt(k.fsyncs));
    Atomics.store(c, Ctrl.bytes / 8, BigInt(k.bytes));
    Atomics.store(c, Ctrl.records / 8, BigInt(k.records));
    Atomics.store(c, Ctrl.fsyncUsTotal / 8, BigInt(k.fsyncUsTotal));
    Atomics.store(c, Ctrl.batchAppendsMax / 8, BigInt(k.batchAppendsMax));
    Atomics.store(c, Ctrl.cuts / 8, BigInt(k.cuts));
    Atomics.store(c, Ctrl.segmentSeq / 8, BigInt(this.segmentSeq));
    Atomics.add(this.control, Ctrl.gen / 4, 1);
    this.onWake?.();
  }

  private fail(what: string): void {
    this.failed = what;
    this.writing = false;
    Atomics.store(this.control, Ctrl.errno / 4, 5 /* EIO */);
    Atomics.store(this.control, Ctrl.state / 4, WriterState.failed);
    Atomics.add(this.control, Ctrl.gen / 4, 1);
    this.onWake?.();
  }

  private finishClose(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
    Atomics.store(this.control, Ctrl.state / 4, WriterState.closed);
    Atomics.add(this.control, Ctrl.gen / 4, 1);
    // The native writer wakes the loop from its thread; here the close call is still on the stack.
    setImmediate(() => this.onWake?.());
  }
}

// The addon's exports, with this writer in place of the native one.
export const WalHandle = JsWalHandle;
export const crc32c = real.crc32c;
export const crc32cSoftware = real.crc32cSoftware;
export const crc32cImpl = real.crc32cImpl;
export const writeInitialSegment = real.writeInitialSegment;
export const controlBytes = real.controlBytes;
// Not in NativeWal's type but used by src/wal (the data dir lock).
export const lockFile = (real as unknown as { lockFile: unknown }).lockFile;
