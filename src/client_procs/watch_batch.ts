// Watch event responses on the client-process channel, gathered: the member's Watch streams of one channel
// put their event and progress responses of one event-loop turn into one WatchEvents frame, which carries
// each encoded event once and a routing list (stream, watch ID, header, which events, fragment); the client
// process rebuilds every WatchResponse from it, byte for byte what the member would have sent, and writes
// each to its gRPC stream. With 10,000 watchers of one prefix in one client process a put is one frame
// with the event in it once, not 10,000 Message frames carrying it 10,000 times.
//
// Frame (after the u32 length; channel.ts lists it with the other kinds):
//   u8  kind (WatchEvents)
//   u32 responses in the frame
//   u16 headers,  each u8 length + an encoded etcdserverpb.ResponseHeader
//   u32 events,   each u32 length + an encoded mvccpb.Event
//   u32 groups,   each u16 header index, u8 flags (1 = fragment), u32 event count + that many u32 event
//                 indices, u32 route count + that many (u32 stream ID, f64 watch ID)
// Responses are in frame order: group by group, route by route. A route joins the last group only when
// its header, flags and events are the same, so the order of every stream's responses is kept.
import { sizeVarint32, sizeVarint64, ProtoWriter } from '../proto/wire.js';
import { encodeResponseHeader, type ResponseHeaderInit, type WatchResponseInit } from '../proto/rpc.js';
import { assert } from '../assert.js';
import type { FrameWriter, OpenFrame } from './channel.js';
import { FrameKind } from './channel.js';

/** A batch is sealed once it holds this many bytes (it goes out sooner at the end of the turn). */
export const WATCH_BATCH_BYTES_MAX = 1024 * 1024;
/** Headers one frame can name (u16 index). */
const HEADERS_MAX = 0xffff;
/** Bytes of the fixed part: length, kind, response count, header count, event count, group count. */
const BATCH_HEAD_BYTES = 4 + 1 + 4 + 2 + 4 + 4;
/** Bytes of a group without its event indices and routes: header index, flags, two counts. */
const GROUP_HEAD_BYTES = 2 + 1 + 4 + 4;
/** Bytes of one route: stream ID, watch ID. */
const ROUTE_BYTES = 4 + 8;
const FLAG_FRAGMENT = 1;

/**
 * True for the responses a WatchEvents frame carries: events and progress (a header, a watch ID,
 * fragment, events). Created and canceled responses go as ordinary Message frames.
 */
export function isRoutable(m: WatchResponseInit): boolean {
  return m.header !== undefined && !m.created && !m.canceled && !m.compact_revision && !m.cancel_reason && m.events === undefined;
}

class Group {
  /** (stream ID, watch ID) pairs. */
  readonly routes: number[] = [];
  constructor(
    readonly header: number,
    readonly flags: number,
    readonly events: number[],
  ) {}
}

/**
 * The WatchEvents frame of one channel being filled during a turn (member side). FrameWriter seals it
 * before any other frame is written, so it keeps its place in the channel's order.
 *
 *   const b = new WatchBatch();  writer.open(b);
 *   b.add(streamId, res);        // for each routable response while b is open
 */
export class WatchBatch implements OpenFrame {
  bytes = BATCH_HEAD_BYTES;
  /** Written to the channel's writer (a new batch is needed for more responses). */
  sealed = false;
  private responses = 0;
  private readonly headers: Uint8Array[] = [];
  private lastHeader: ResponseHeaderInit | undefined = undefined;
  private readonly events: Uint8Array[] = [];
  /** An event's index by its encoding (the member encodes an event once and shares the bytes). */
  private readonly eventIndex = new Map<Uint8Array, number>();
  private readonly groups: Group[] = [];
  /** Scratch: the event indices of the response being added. */
  private readonly scratch: number[] = [];

  /** True when the batch should be sealed now. */
  get full(): boolean {
    return this.bytes >= WATCH_BATCH_BYTES_MAX || this.headers.length >= HEADERS_MAX;
  }

  /**
   * Adds one routable response of stream `streamId` (see isRoutable) and returns its encoded size, which
   * is sizeWatchResponse(m) worked out from the encodings the batch holds (no header is sized twice).
   */
  add(streamId: number, m: WatchResponseInit): number {
    assert(!this.sealed && isRoutable(m), 'a routable response added to an open batch');
    const header = this.headerIndex(m.header!);
    const headerBytes = this.headers[header].length;
    const watchId = m.watch_id ?? 0;
    const flags = m.fragment ? FLAG_FRAGMENT : 0;
    let size = 1 + sizeVarint32(headerBytes) + headerBytes + (watchId !== 0 ? 1 + sizeVarint64(watchId) : 0) + (flags !== 0 ? 2 : 0);
    const idx = this.scratch;
    idx.length = 0;
    const evs = m.events_encoded;
    if (evs !== undefined) {
      for (let i = 0; i < evs.length; i++) {
        const e = evs[i];
        let at = this.eventIndex.get(e);
        if (at === undefined) {
          at = this.events.length;
          this.events.push(e);
          this.eventIndex.set(e, at);
          this.bytes += 4 + e.length;
        }
        idx.push(at);
        size += 1 + sizeVarint32(e.length) + e.length;
      }
    }
    let g = this.groups.length > 0 ? this.groups[this.groups.length - 1] : undefined;
    if (g === undefined || g.header !== header || g.flags !== flags || !sameIndices(g.events, idx)) {
      g = new Group(header, flags, idx.slice());
      this.groups.push(g);
      this.bytes += GROUP_HEAD_BYTES + 4 * idx.length;
    }
    g.routes.push(streamId, watchId);
    this.bytes += ROUTE_BYTES;
    this.responses++;
    return size;
  }

  seal(w: FrameWriter): void {
    assert(!this.sealed, 'a batch is sealed once');
    this.sealed = true;
    const n = this.bytes;
    const at = w.reserve(n);
    const b = w.buf;
    let p = at;
    b.writeUInt32BE(n - 4, p);
    b[p + 4] = FrameKind.WatchEvents;
    b.writeUInt32BE(this.responses, p + 5);
    b.writeUInt16BE(this.headers.length, p + 9);
    p += 11;
    for (const h of this.headers) {
      b[p] = h.length;
      b.set(h, p + 1);
      p += 1 + h.length;
    }
    b.writeUInt32BE(this.events.length, p);
    p += 4;
    for (const e of this.events) {
      b.writeUInt32BE(e.length, p);
      b.set(e, p + 4);
      p += 4 + e.length;
    }
    b.writeUInt32BE(this.groups.length, p);
    p += 4;
    for (const g of this.groups) {
      b.writeUInt16BE(g.header, p);
      b[p + 2] = g.flags;
      b.writeUInt32BE(g.events.length, p + 3);
      p += 7;
      for (const i of g.events) {
        b.writeUInt32BE(i, p);
        p += 4;
      }
      const r = g.routes;
      b.writeUInt32BE(r.length / 2, p);
      p += 4;
      for (let i = 0; i < r.length; i += 2) {
        b.writeUInt32BE(r[i], p);
        b.writeDoubleBE(r[i + 1], p + 4);
        p += ROUTE_BYTES;
      }
    }
    assert(p === at + n, 'a WatchEvents frame is exactly as long as counted');
  }

  /** The index of `h` in the header table (the last one again when it is the same header). */
  private headerIndex(h: ResponseHeaderInit): number {
    const last = this.lastHeader;
    if (
      last !== undefined &&
      (last === h ||
        (last.revision === h.revision &&
          last.raft_term === h.raft_term &&
          last.member_id === h.member_id &&
          last.cluster_id === h.cluster_id))
    ) {
      return this.headers.length - 1;
    }
    const bytes = encodeResponseHeader(h);
    assert(bytes.length <= 0xff, 'a response header fits a u8 length');
    this.headers.push(bytes);
    this.lastHeader = h;
    this.bytes += 1 + bytes.length;
    return this.headers.length - 1;
  }
}

function sameIndices(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Responses built on the client side are carved from slabs of this size (a bigger one gets its own). */
const SLAB_BYTES = 256 * 1024;

/**
 * Reads a WatchEvents frame (client-process side) and calls `deliver` with the responses, framed for gRPC
 * (5-byte prefix + WatchResponse), in frame order: consecutive responses of one stream come in one call,
 * `messages` of them back to back. `buf[start..end)` is the frame after its length field. Returns
 * undefined, or what is malformed (nothing was delivered then).
 *
 *   const bad = readWatchBatch(buf, start, end, (streamId, framed, n) => call.writeFramed(framed, n));
 */
export function readWatchBatch(
  buf: Buffer,
  start: number,
  end: number,
  deliver: (streamId: number, framed: Uint8Array, messages: number) => void,
): string | undefined {
  // First pass: check every count and length against the frame, and note where the groups start.
  let p = start + 1;
  if (p + 6 > end) return 'WatchEvents frame too short';
  const responses = buf.readUInt32BE(p);
  const headerCount = buf.readUInt16BE(p + 4);
  p += 6;
  const headers: Uint8Array[] = new Array(headerCount);
  for (let i = 0; i < headerCount; i++) {
    if (p + 1 > end || p + 1 + buf[p] > end) return 'WatchEvents header runs past the frame';
    headers[i] = buf.subarray(p + 1, p + 1 + buf[p]);
    p += 1 + buf[p];
  }
  if (p + 4 > end) return 'WatchEvents frame too short';
  const eventCount = buf.readUInt32BE(p);
  p += 4;
  if (eventCount > (end - p) / 4) return 'WatchEvents event count past the frame';
  const events: Uint8Array[] = new Array(eventCount);
  for (let i = 0; i < eventCount; i++) {
    if (p + 4 > end) return 'WatchEvents event runs past the frame';
    const n = buf.readUInt32BE(p);
    if (p + 4 + n > end) return 'WatchEvents event runs past the frame';
    events[i] = buf.subarray(p + 4, p + 4 + n);
    p += 4 + n;
  }
  if (p + 4 > end) return 'WatchEvents frame too short';
  const groupCount = buf.readUInt32BE(p);
  p += 4;
  const groupsAt = p;
  let seen = 0;
  for (let g = 0; g < groupCount; g++) {
    if (p + 7 > end) return 'WatchEvents group runs past the frame';
    if (buf.readUInt16BE(p) >= headerCount) return 'WatchEvents group names an unknown header';
    const n = buf.readUInt32BE(p + 3);
    p += 7;
    if (n > (end - p) / 4) return 'WatchEvents group runs past the frame';
    for (let i = 0; i < n; i++, p += 4) if (buf.readUInt32BE(p) >= eventCount) return 'WatchEvents group names an unknown event';
    if (p + 4 > end) return 'WatchEvents group runs past the frame';
    const routes = buf.readUInt32BE(p);
    p += 4;
    if (routes > (end - p) / ROUTE_BYTES) return 'WatchEvents routes run past the frame';
    p += routes * ROUTE_BYTES;
    seen += routes;
  }
  if (p !== end) return 'WatchEvents frame has trailing bytes';
  if (seen !== responses) return `WatchEvents frame counts ${responses} responses but routes ${seen}`;

  // Second pass: build and deliver, a run of one stream's consecutive responses at a time.
  const w = new ProtoWriter(0) as unknown as { buf: Uint8Array; pos: number } & ProtoWriter;
  let slab = Buffer.allocUnsafe(0);
  let slabPos = 0;
  let runStream = -1;
  let runStart = 0;
  let runMessages = 0;
  p = groupsAt;
  const idx: number[] = [];
  for (let g = 0; g < groupCount; g++) {
    const header = headers[buf.readUInt16BE(p)];
    const fragment = (buf[p + 2] & FLAG_FRAGMENT) !== 0;
    const n = buf.readUInt32BE(p + 3);
    p += 7;
    idx.length = 0;
    // Bytes of the response without its watch ID.
    let base = 1 + sizeVarint32(header.length) + header.length + (fragment ? 2 : 0);
    for (let i = 0; i < n; i++, p += 4) {
      const e = events[buf.readUInt32BE(p)];
      idx.push(buf.readUInt32BE(p));
      base += 1 + sizeVarint32(e.length) + e.length;
    }
    const routes = buf.readUInt32BE(p);
    p += 4;
    for (let r = 0; r < routes; r++, p += ROUTE_BYTES) {
      const streamId = buf.readUInt32BE(p);
      const watchId = buf.readDoubleBE(p + 4);
      const size = base + (watchId !== 0 ? 1 + sizeVarint64(watchId) : 0);
      const framedBytes = 5 + size;
      if (slab.length - slabPos < framedBytes) {
        if (runMessages > 0) deliver(runStream, slab.subarray(runStart, slabPos), runMessages);
        runMessages = 0;
        slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, framedBytes));
        slabPos = 0;
      } else if (runMessages > 0 && streamId !== runStream) {
        deliver(runStream, slab.subarray(runStart, slabPos), runMessages);
        runMessages = 0;
      }
      if (runMessages === 0) {
        runStream = streamId;
        runStart = slabPos;
      }
      const at = slabPos;
      slab[at] = 0;
      slab.writeUInt32BE(size, at + 1);
      w.buf = slab;
      w.pos = at + 5;
      // Field order and encodings as writeWatchResponse's (proto/rpc.ts).
      w.uint32(10);
      w.bytes(header);
      if (watchId !== 0) {
        w.uint32(16);
        w.int64(watchId);
      }
      if (fragment) {
        w.uint32(56);
        w.bool(true);
      }
      for (const i of idx) {
        w.uint32(90);
        w.bytes(events[i]);
      }
      assert(w.pos === at + framedBytes, 'a rebuilt WatchResponse is exactly as long as counted');
      slabPos = at + framedBytes;
      runMessages++;
    }
  }
  if (runMessages > 0) deliver(runStream, slab.subarray(runStart, slabPos), runMessages);
  return undefined;
}
