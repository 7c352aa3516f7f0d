// The local channel between a client process and the member (--client-workers): length-prefixed
// binary frames on a stream socket, written in batches (one socket write per event-loop turn) and
// parsed incrementally, with hard limits on frame size and on bytes queued for writing.
//
// Frame: u32 BE length of what follows, then u8 kind, u32 BE call id, and per kind:
//   Call   client → member  u16 method, u32 timeout ms (0 = none; the client process enforces deadlines
//                            itself, the member may use it to skip expired work), request protobuf
//   Reply  member → client  the response as a gRPC message (5-byte prefix + protobuf), ready to send
//   Fail   member → client  u8 gRPC code, UTF-8 message
import type { Duplex } from 'node:stream';

/** Frame kinds. */
export const FrameKind = { Call: 1, Reply: 2, Fail: 3 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Bytes before a Call's request body: length, kind, call id, method, timeout. */
export const CALL_HEAD_BYTES = 4 + 1 + 4 + 2 + 4;
/** Bytes before a Reply's body: length, kind, call id. */
export const REPLY_HEAD_BYTES = 4 + 1 + 4;
/** Bytes before a Fail's message: length, kind, call id, code. */
export const FAIL_HEAD_BYTES = 4 + 1 + 4 + 1;
/** The largest frame (after its length field): a response may be as large as gRPC allows one (2 GiB). */
export const FRAME_BYTES_MAX = 0x7fffffff;
/** Write buffers are carved from chunks of this size (bigger frames get a chunk of their own). */
const CHUNK_BYTES = 256 * 1024;
/** Method numbers fit a u16. */
export const METHODS_MAX = 0xffff;

/**
 * Batches frames and writes them once per event-loop turn. `pendingBytes` counts what is queued here and
 * in the socket; callers refuse new work above their limit instead of queueing without bound.
 *
 *   const w = new FrameWriter(socket);
 *   const at = w.reserve(CALL_HEAD_BYTES + body.length); ...fill w.buf from `at`...
 */
export class FrameWriter {
  /** The chunk being filled. Valid until the next reserve(). */
  buf: Buffer;
  private start = 0;
  private pos = 0;
  private readonly parts: Buffer[] = [];
  private scheduled = false;
  private closed = false;
  private readonly flushBound = (): void => this.flush();

  constructor(private readonly socket: Duplex) {
    this.buf = Buffer.allocUnsafe(CHUNK_BYTES);
  }

  /** Bytes waiting here and in the socket's buffer. */
  get pendingBytes(): number {
    return this.socket.writableLength + this.pos - this.start + this.partsBytes;
  }
  private partsBytes = 0;

  /** Reserves `n` bytes in `buf` for one frame and returns where it starts; the flush is scheduled. */
  reserve(n: number): number {
    if (this.buf.length - this.pos < n) this.nextChunk(n);
    const at = this.pos;
    this.pos += n;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
    return at;
  }

  /** Gives back the tail of the last reservation that turned out unused (a frame smaller than reserved). */
  shrink(at: number, used: number): void {
    if (at + used > this.pos) throw new Error('assertion failed: shrink beyond the reservation');
    this.pos = at + used;
  }

  /** A Call frame. */
  writeCall(callId: number, method: number, timeoutMs: number, body: Uint8Array): void {
    const n = CALL_HEAD_BYTES + body.length;
    const at = this.reserve(n);
    const b = this.buf;
    b.writeUInt32BE(n - 4, at);
    b[at + 4] = FrameKind.Call;
    b.writeUInt32BE(callId, at + 5);
    b.writeUInt16BE(method, at + 9);
    b.writeUInt32BE(timeoutMs, at + 11);
    b.set(body, at + CALL_HEAD_BYTES);
  }

  /** A Fail frame. */
  writeFail(callId: number, code: number, message: string): void {
    const msgBytes = Buffer.byteLength(message, 'utf8');
    const n = FAIL_HEAD_BYTES + msgBytes;
    const at = this.reserve(n);
    const b = this.buf;
    b.writeUInt32BE(n - 4, at);
    b[at + 4] = FrameKind.Fail;
    b.writeUInt32BE(callId, at + 5);
    b[at + 9] = code;
    b.write(message, at + FAIL_HEAD_BYTES, msgBytes, 'utf8');
  }

  /** Writes what is queued now (also called by the turn-end flush). */
  flush(): void {
    this.scheduled = false;
    if (this.closed) return;
    const tail = this.pos > this.start ? this.buf.subarray(this.start, this.pos) : undefined;
    this.start = this.pos;
    if (this.parts.length === 0) {
      if (tail !== undefined) this.socket.write(tail);
      return;
    }
    if (tail !== undefined) this.parts.push(tail);
    const parts = this.parts.splice(0);
    this.partsBytes = 0;
    this.socket.cork();
    for (const p of parts) this.socket.write(p);
    this.socket.uncork();
  }

  /** Drops everything queued; nothing more is written. */
  close(): void {
    this.closed = true;
    this.parts.length = 0;
    this.partsBytes = 0;
  }

  private nextChunk(n: number): void {
    if (this.pos > this.start) {
      const part = this.buf.subarray(this.start, this.pos);
      this.parts.push(part);
      this.partsBytes += part.length;
    }
    // The old chunk's queued bytes stay referenced by `parts` (or the socket) until written.
    this.buf = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, n));
    this.start = 0;
    this.pos = 0;
  }
}

/** Receives parsed frames. `buf[start..end)` is the frame after its length field (kind first). */
export interface FrameSink {
  onFrame(buf: Buffer, start: number, end: number): void;
  /** The stream broke the framing rules; the channel must be closed. */
  onBadFrame(reason: string): void;
}

/**
 * Splits a byte stream into frames. Frames that arrive whole are handed out as views into the chunk;
 * one split across chunks is gathered into a buffer of its own.
 */
export class FrameReader {
  private head = Buffer.allocUnsafe(4);
  private headLen = 0;
  private body: Buffer | undefined = undefined;
  private bodyFilled = 0;
  private failed = false;

  constructor(private readonly sink: FrameSink, private readonly frameBytesMax = FRAME_BYTES_MAX) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
    const len = chunk.length;
    let p = 0;
    while (p < len) {
      const body = this.body;
      if (body !== undefined) {
        const n = Math.min(len - p, body.length - this.bodyFilled);
        chunk.copy(body, this.bodyFilled, p, p + n);
        p += n;
        this.bodyFilled += n;
        if (this.bodyFilled < body.length) return;
        this.body = undefined;
        this.sink.onFrame(body, 0, body.length);
        continue;
      }
      let frameLen: number;
      if (this.headLen === 0 && len - p >= 4) {
        frameLen = chunk.readUInt32BE(p);
        p += 4;
      } else {
        const n = Math.min(4 - this.headLen, len - p);
        chunk.copy(this.head, this.headLen, p, p + n);
        p += n;
        this.headLen += n;
        if (this.headLen < 4) return;
        this.headLen = 0;
        frameLen = this.head.readUInt32BE(0);
      }
      if (frameLen < 5 || frameLen > this.frameBytesMax) {
        this.failed = true;
        this.sink.onBadFrame(`frame of ${frameLen} bytes (allowed 5..${this.frameBytesMax})`);
        return;
      }
      if (len - p >= frameLen) {
        this.sink.onFrame(chunk, p, p + frameLen);
        p += frameLen;
      } else {
        this.body = Buffer.allocUnsafe(frameLen);
        this.bodyFilled = 0;
      }
    }
  }
}
