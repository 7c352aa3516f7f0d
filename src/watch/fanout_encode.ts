// The watch fan-out's encoding work, pure and shared by the pool's worker threads and the main thread
// (which runs it itself when a worker fails): one applied entry's plan (which watcher of which stream gets
// which encoded events) in, every watcher's gRPC-framed WatchResponse out, grouped by stream slot.
// The bytes are exactly what WatchStream.sendEvents → ServerCall.write would send (test/watch/fanout_pool.test.ts).
import { ProtoWriter, sizeDelimited, sizeVarint64 } from '../proto/wire.js';
import type { ResponseHeaderInit, WatchResponseInit } from '../proto/rpc.js';

/** gRPC's length prefix: 1 byte compressed flag + 4 bytes big-endian length. */
export const GRPC_FRAME_BYTES = 5;
/** WatchResponse field 1 (header), wire type 2. */
const TAG_HEADER = 10;
/** WatchResponse field 2 (watch_id), varint. */
const TAG_WATCH_ID = 16;
/** WatchResponse field 11 (events), wire type 2. */
const TAG_EVENTS = 90;

/**
 * One task of a plan: build the slots [slotFrom, slotTo). The input holds the whole plan and is shared by
 * every task of the entry (a SharedArrayBuffer), or is this task's own transferred copy (an ArrayBuffer).
 *
 * Input layout, 8-byte words first (Float64: watch IDs are int64 and every count fits):
 *   [0] planWords  [1] headerBytes  [2] eventCount E  [3] slotCount S
 *   [4 .. 4+E]     byte offset of each event's encoding in the event region (E+1 entries)
 *   [5+E .. 5+E+S] word index of each slot's record (S+1 entries, the last is planWords)
 *   slot record:   watcherCount, then per watcher: watchId, eventCount n, n event indices
 * then bytes at 8*planWords: the encoded ResponseHeader, then the events' encodings (mvccpb.Event).
 */
export interface FanoutTask {
  input: SharedArrayBuffer | ArrayBuffer;
  slotFrom: number;
  slotTo: number;
}

/**
 * A task's result: u32 words [offset × (slots + 1)] from the buffer's start, then the slots' framed
 * responses back to back; slot i (counted from slotFrom) is bytes [offset[i], offset[i+1]).
 */
export function slotOffsetWords(slots: number): number {
  return slots + 1;
}

/** Bytes of one framed WatchResponse{header, watch_id, events}. */
export function framedResponseBytes(headerBytes: number, watchId: number, eventsBytes: number): number {
  return GRPC_FRAME_BYTES + 1 + sizeDelimited(headerBytes) + (watchId === 0 ? 0 : 1 + sizeVarint64(watchId)) + eventsBytes;
}

/** Bytes one event adds to a WatchResponse (tag, length, encoding). */
export function eventFieldBytes(encodingBytes: number): number {
  return 1 + sizeDelimited(encodingBytes);
}

/**
 * Builds the plan of one entry on the main thread, then writes it into a buffer the workers can read.
 *
 *   const p = new PlanBuilder(header, encodings);
 *   p.openSlot(); p.addWatcher(id, [0, 1]); ...
 *   const input = p.write(new SharedArrayBuffer(p.inputBytes));
 */
export class PlanBuilder {
  private readonly words: number[] = [];
  private readonly slotStarts: number[] = [];
  private slotWatchersAt = -1;
  private readonly eventBytes: number[];
  private readonly eventsRegionBytes: number;

  constructor(
    private readonly header: Uint8Array,
    private readonly encodings: readonly Uint8Array[],
  ) {
    this.eventBytes = encodings.map((e) => eventFieldBytes(e.length));
    let n = 0;
    for (const e of encodings) n += e.length;
    this.eventsRegionBytes = n;
  }

  get slotCount(): number {
    return this.slotStarts.length;
  }

  /** Starts the next slot (one stream's run of watchers); returns its index. */
  openSlot(): number {
    this.slotStarts.push(this.words.length);
    this.slotWatchersAt = this.words.length;
    this.words.push(0);
    return this.slotStarts.length - 1;
  }

  /** Adds a watcher to the open slot; returns the bytes of its framed response. */
  addWatcher(watchId: number, events: readonly number[]): number {
    const w = this.words;
    w[this.slotWatchersAt]++;
    w.push(watchId, events.length);
    let evBytes = 0;
    for (let i = 0; i < events.length; i++) {
      w.push(events[i]);
      evBytes += this.eventBytes[events[i]];
    }
    return framedResponseBytes(this.header.length, watchId, evBytes);
  }

  private get fixedWords(): number {
    return 4 + (this.encodings.length + 1) + (this.slotStarts.length + 1);
  }

  /** Bytes of the input buffer write() fills. */
  get inputBytes(): number {
    return 8 * (this.fixedWords + this.words.length) + this.header.length + this.eventsRegionBytes;
  }

  /** Fills `buf` (at least inputBytes long) with the plan. */
  write<B extends SharedArrayBuffer | ArrayBuffer>(buf: B): B {
    const fixed = this.fixedWords;
    const planWords = fixed + this.words.length;
    const f = new Float64Array(buf, 0, planWords);
    const E = this.encodings.length;
    const S = this.slotStarts.length;
    f[0] = planWords;
    f[1] = this.header.length;
    f[2] = E;
    f[3] = S;
    let off = 0;
    for (let i = 0; i < E; i++) {
      f[4 + i] = off;
      off += this.encodings[i].length;
    }
    f[4 + E] = off;
    for (let i = 0; i < S; i++) f[5 + E + i] = fixed + this.slotStarts[i];
    f[5 + E + S] = planWords;
    f.set(this.words, fixed);
    const bytes = new Uint8Array(buf, 8 * planWords);
    bytes.set(this.header, 0);
    let p = this.header.length;
    for (const e of this.encodings) {
      bytes.set(e, p);
      p += e.length;
    }
    return buf;
  }
}

/** Builds the framed responses of a task's slots into one new ArrayBuffer (the layout of slotOffsetWords). */
export function buildSlots(task: FanoutTask): ArrayBuffer {
  const input = task.input;
  const planWords = new Float64Array(input, 0, 1)[0];
  const f = new Float64Array(input, 0, planWords);
  const headerBytes = f[1];
  const E = f[2];
  const S = f[3];
  const { slotFrom, slotTo } = task;
  if (!(slotFrom >= 0 && slotFrom < slotTo && slotTo <= S)) throw new RangeError(`fan-out task: slots [${slotFrom}, ${slotTo}) of ${S}`);
  const region = new Uint8Array(input, 8 * planWords);
  const header = region.subarray(0, headerBytes);
  const events = region.subarray(headerBytes);
  const evStart = 4;
  const slotStart = 5 + E;
  // Sizes first: the result is one exactly sized buffer.
  const n = slotTo - slotFrom;
  const offsetBytes = 4 * slotOffsetWords(n);
  let total = offsetBytes;
  for (let s = slotFrom; s < slotTo; s++) {
    let p = f[slotStart + s];
    const watchers = f[p++];
    for (let i = 0; i < watchers; i++) {
      const id = f[p++];
      const ne = f[p++];
      let evBytes = 0;
      for (let j = 0; j < ne; j++) {
        const e = f[p++];
        evBytes += eventFieldBytes(f[evStart + e + 1] - f[evStart + e]);
      }
      total += framedResponseBytes(headerBytes, id, evBytes);
    }
  }
  const out = new ArrayBuffer(total);
  const offsets = new Uint32Array(out, 0, slotOffsetWords(n));
  const w = writerOver(new Uint8Array(out));
  w.pos = offsetBytes;
  for (let s = slotFrom; s < slotTo; s++) {
    offsets[s - slotFrom] = w.pos;
    let p = f[slotStart + s];
    const watchers = f[p++];
    for (let i = 0; i < watchers; i++) {
      const id = f[p++];
      const ne = f[p++];
      let evBytes = 0;
      for (let j = 0; j < ne; j++) {
        const e = f[p + j];
        evBytes += eventFieldBytes(f[evStart + e + 1] - f[evStart + e]);
      }
      const size = framedResponseBytes(headerBytes, id, evBytes) - GRPC_FRAME_BYTES;
      const b = w.buf;
      b[w.pos] = 0;
      b[w.pos + 1] = size >>> 24;
      b[w.pos + 2] = (size >>> 16) & 255;
      b[w.pos + 3] = (size >>> 8) & 255;
      b[w.pos + 4] = size & 255;
      w.pos += GRPC_FRAME_BYTES;
      // As writeWatchResponse writes {header, watch_id, events_encoded}.
      w.uint32(TAG_HEADER);
      w.bytes(header);
      if (id !== 0) {
        w.uint32(TAG_WATCH_ID);
        w.int64(id);
      }
      for (let j = 0; j < ne; j++) {
        const e = f[p++];
        w.uint32(TAG_EVENTS);
        w.bytes(events.subarray(f[evStart + e], f[evStart + e + 1]));
      }
    }
  }
  offsets[n] = w.pos;
  w.finish();
  return out;
}

/**
 * The responses of a task's slots as objects (per slot, in order): the main thread's fallback when the pool
 * failed, sent the inline way (the call encodes them as it encodes every other response).
 */
export function slotResponses(task: FanoutTask, header: ResponseHeaderInit): WatchResponseInit[][] {
  const input = task.input;
  const planWords = new Float64Array(input, 0, 1)[0];
  const f = new Float64Array(input, 0, planWords);
  const E = f[2];
  const region = new Uint8Array(input, 8 * planWords);
  const events = region.subarray(f[1]);
  const out: WatchResponseInit[][] = [];
  for (let s = task.slotFrom; s < task.slotTo; s++) {
    const slot: WatchResponseInit[] = [];
    let p = f[5 + E + s];
    const watchers = f[p++];
    for (let i = 0; i < watchers; i++) {
      const id = f[p++];
      const ne = f[p++];
      const evs: Uint8Array[] = [];
      for (let j = 0; j < ne; j++) {
        const e = f[p++];
        evs.push(events.subarray(f[4 + e], f[5 + e]));
      }
      slot.push({ header, watch_id: id, events_encoded: evs });
    }
    out.push(slot);
  }
  return out;
}

/**
 * A ProtoWriter over a buffer of our own: ProtoWriter allocates through Buffer.allocUnsafe, whose small
 * buffers live in a shared slab that must never be transferred to another thread.
 */
function writerOver(target: Uint8Array): ProtoWriter {
  const w = new ProtoWriter(0);
  (w as unknown as { buf: Uint8Array }).buf = target;
  return w;
}
