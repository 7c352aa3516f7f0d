// The work the pool benchmark compares, shared by the main thread (inline variants) and the Piscina worker:
// Put-request batches -> Raft proposal envelopes, and watch events -> per-watcher gRPC-framed WatchResponses.
import {
  decodePutRequest,
  sizePutRequest,
  writePutRequest,
  sizeResponseHeader,
  writeResponseHeader,
  type PutRequest,
  type ResponseHeaderInit,
} from '../../src/proto/rpc.js';
import { sizeEvent, writeEvent, type EventInit } from '../../src/proto/kv.js';
import { ProtoWriter, sizeDelimited, sizeVarint64, sizeVarintBig } from '../../src/proto/wire.js';
import { validatePutRequest } from '../../src/server/apply_kv.js';

/** gRPC's length-prefixed message framing: 1 byte compressed flag + 4 bytes big-endian length. */
export const GRPC_FRAME_BYTES = 5;
/** InternalRequest field 4 (put), wire type 2: the tag byte proposal.ts writes for a put. */
const ENVELOPE_PUT_TAG = 34;
/** WatchResponse field 11 (events), wire type 2. */
const WATCH_EVENTS_TAG = 90;
/** Largest batch a task may carry; the bench never sends more (a limit for every batch). */
export const BATCH_REQUESTS_MAX = 4096;
/** Largest result buffer a fan-out task may return; bigger fan-outs are split over several tasks. */
export const FANOUT_TASK_BYTES_MAX = 16 << 20;

/**
 * A ProtoWriter over a caller-owned buffer (the generated codecs only know ProtoWriter). ProtoWriter
 * allocates through Buffer.allocUnsafe, whose small buffers live in a shared slab that must never be
 * transferred; here the target is a whole ArrayBuffer of our own.
 */
export function writerOver(target: Uint8Array): ProtoWriter {
  const w = new ProtoWriter(0);
  (w as unknown as { buf: Uint8Array }).buf = target;
  return w;
}

/** Writes a gRPC frame header (uncompressed, `messageBytes` long) at buf[pos]. */
export function writeFrameHeader(buf: Uint8Array, pos: number, messageBytes: number): void {
  buf[pos] = 0;
  buf[pos + 1] = messageBytes >>> 24;
  buf[pos + 2] = (messageBytes >>> 16) & 255;
  buf[pos + 3] = (messageBytes >>> 8) & 255;
  buf[pos + 4] = messageBytes & 255;
}

function readFrameLength(buf: Uint8Array, pos: number): number {
  if (buf[pos] !== 0) throw new Error('compressed gRPC message in batch');
  return ((buf[pos + 1] << 24) >>> 0) + (buf[pos + 2] << 16) + (buf[pos + 3] << 8) + buf[pos + 4];
}

/** Copies messages into `out` (from offset 0) as consecutive gRPC frames; returns the bytes written. */
export function frameInto(out: Uint8Array, messages: readonly Uint8Array[]): number {
  let pos = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    writeFrameHeader(out, pos, m.length);
    out.set(m, pos + GRPC_FRAME_BYTES);
    pos += GRPC_FRAME_BYTES + m.length;
  }
  return pos;
}

/** Bytes frameInto needs for these messages. */
export function framedBytes(messages: readonly Uint8Array[]): number {
  let n = 0;
  for (let i = 0; i < messages.length; i++) n += GRPC_FRAME_BYTES + messages[i].length;
  return n;
}

function envelopeBytes(id: bigint, req: PutRequest): number {
  return 1 + sizeVarintBig(id) + 1 + sizeDelimited(sizePutRequest(req));
}

/** InternalRequest{ID, put}: the same bytes encodeProposal(id, {put}) returns (the bench asserts it). */
function writeEnvelope(w: ProtoWriter, id: bigint, req: PutRequest): void {
  w.uint32(8);
  w.int64Big(id);
  w.uint32(ENVELOPE_PUT_TAG);
  w.uint32(sizePutRequest(req));
  writePutRequest(req, w);
}

/** The decode task the worker runs: `count` framed PutRequests; the i-th gets Raft ID idBase + i. */
export interface DecodeTask {
  batch: ArrayBuffer;
  batchBytes: number;
  count: number;
  idBase: bigint;
}

/**
 * Result layout of a decode task, one ArrayBuffer: u32 words [status × count][offset × (count + 1)], then
 * the envelopes back to back; envelope i is bytes [offset[i], offset[i+1]). Status 0 = valid; otherwise
 * the request failed decoding or etcd's checks and its envelope is empty.
 */
export function decodeResultHeaderWords(count: number): number {
  return 2 * count + 1;
}

/** Decodes, validates and wraps a batch of framed PutRequests into proposal envelopes (worker side). */
export function decodeBatchToEnvelopes(task: DecodeTask): ArrayBuffer {
  const { count, idBase } = task;
  if (count < 1 || count > BATCH_REQUESTS_MAX) throw new Error(`decode batch of ${count} requests`);
  const batch = new Uint8Array(task.batch, 0, task.batchBytes);
  const reqs: (PutRequest | undefined)[] = new Array(count);
  const status = new Uint32Array(count);
  let pos = 0;
  let dataBytes = 0;
  for (let i = 0; i < count; i++) {
    const len = readFrameLength(batch, pos);
    const body = batch.subarray(pos + GRPC_FRAME_BYTES, pos + GRPC_FRAME_BYTES + len);
    pos += GRPC_FRAME_BYTES + len;
    try {
      const req = decodePutRequest(body);
      validatePutRequest(req);
      reqs[i] = req;
      dataBytes += envelopeBytes(idBase + BigInt(i), req);
    } catch {
      status[i] = 1;
    }
  }
  if (pos !== task.batchBytes) throw new Error('decode batch: frames do not add up to the batch size');
  const headerBytes = 4 * decodeResultHeaderWords(count);
  const out = new ArrayBuffer(headerBytes + dataBytes);
  const words = new Uint32Array(out, 0, decodeResultHeaderWords(count));
  words.set(status, 0);
  const w = writerOver(new Uint8Array(out));
  w.pos = headerBytes;
  for (let i = 0; i < count; i++) {
    words[count + i] = w.pos;
    const req = reqs[i];
    if (req !== undefined) writeEnvelope(w, idBase + BigInt(i), req);
  }
  words[2 * count] = w.pos;
  w.finish();
  return out;
}

/** Encodes events as WatchResponse field 11 entries, back to back: the part every watcher's response shares. */
export function encodeEventsBlock(events: readonly EventInit[], target?: (bytes: number) => Uint8Array): Uint8Array {
  let n = 0;
  const sizes = new Array<number>(events.length);
  for (let i = 0; i < events.length; i++) {
    sizes[i] = sizeEvent(events[i]);
    n += 1 + sizeDelimited(sizes[i]);
  }
  const out = target === undefined ? new Uint8Array(n) : target(n);
  const w = writerOver(out);
  for (let i = 0; i < events.length; i++) {
    w.uint32(WATCH_EVENTS_TAG);
    w.uint32(sizes[i]);
    writeEvent(events[i], w);
  }
  w.finish();
  return out;
}

/** Bytes of a framed WatchResponse{header, watch_id, events} whose encoded header and events block are given. */
export function framedWatchResponseBytes(headerBytes: number, watchId: number, blockBytes: number): number {
  return GRPC_FRAME_BYTES + watchResponseBytes(headerBytes, watchId, blockBytes);
}

function watchResponseBytes(headerBytes: number, watchId: number, blockBytes: number): number {
  // proto3 leaves a zero watch_id out, as writeWatchResponse does.
  return 1 + sizeDelimited(headerBytes) + (watchId === 0 ? 0 : 1 + sizeVarint64(watchId)) + blockBytes;
}

/** Writes the gRPC frame header and WatchResponse fields 1 and 2; the events block follows at w.pos. */
export function writeWatchPrefix(w: ProtoWriter, header: Uint8Array, watchId: number, blockBytes: number): void {
  writeFrameHeader(w.buf, w.pos, watchResponseBytes(header.length, watchId, blockBytes));
  w.pos += GRPC_FRAME_BYTES;
  w.uint32(10);
  w.bytes(header);
  if (watchId !== 0) {
    w.uint32(16);
    w.int64(watchId);
  }
}

/** Encodes a ResponseHeader once (the bench's watchers all share one). */
export function encodeHeader(h: ResponseHeaderInit): Uint8Array {
  const out = new Uint8Array(sizeResponseHeader(h));
  const w = writerOver(out);
  writeResponseHeader(h, w);
  w.finish();
  return out;
}

/** The fan-out task the worker runs: `count` watchers with ids watchIdFirst.., all getting the same events. */
export interface FanoutTask {
  /** The events block (encodeEventsBlock) in shared memory, written once per fan-out by the main thread. */
  events: SharedArrayBuffer;
  eventsBytes: number;
  header: Uint8Array;
  watchIdFirst: number;
  count: number;
}

/** Result layout of a fan-out task: u32 words [offset × (count + 1)], then the framed responses back to back. */
export function fanoutResultHeaderWords(count: number): number {
  return count + 1;
}

/** Builds `count` framed WatchResponses into one ArrayBuffer (worker side). */
export function fanoutToResponses(task: FanoutTask): ArrayBuffer {
  const { count, header, watchIdFirst, eventsBytes } = task;
  const block = new Uint8Array(task.events, 0, eventsBytes);
  let dataBytes = 0;
  for (let i = 0; i < count; i++) dataBytes += framedWatchResponseBytes(header.length, watchIdFirst + i, eventsBytes);
  const headerBytes = 4 * fanoutResultHeaderWords(count);
  if (headerBytes + dataBytes > FANOUT_TASK_BYTES_MAX && count > 1) throw new Error('fan-out task over its byte limit');
  const out = new ArrayBuffer(headerBytes + dataBytes);
  const words = new Uint32Array(out, 0, fanoutResultHeaderWords(count));
  const w = writerOver(new Uint8Array(out));
  w.pos = headerBytes;
  for (let i = 0; i < count; i++) {
    words[i] = w.pos;
    writeWatchPrefix(w, header, watchIdFirst + i, eventsBytes);
    w.raw(block);
  }
  words[count] = w.pos;
  w.finish();
  return out;
}
