// The local channel between a client process and the member (--client-workers): length-prefixed
// binary frames on a stream socket, written in batches (one socket write per event-loop turn) and
// parsed incrementally, with hard limits on frame size and on bytes queued for writing.
//
// Frame: u32 BE length of what follows, then u8 kind, u32 BE id (a unary call's or a stream's; the two
// are counted apart), and per kind:
//   Call      client → member  u16 method ID (methods.ts), u32 timeout ms (0 = none; the client process
//                               enforces deadlines itself, the member may use it to skip expired work),
//                               u8 context flags, the context block (only the fields the flags name),
//                               request protobuf
//   Reply     member → client  the response as a gRPC message (5-byte prefix + protobuf), ready to send
//   Fail      member → client  u8 gRPC code, UTF-8 message
//   Open      client → member  a stream: u16 method ID, u32 timeout ms, u8 context flags, context block,
//                               then the request protobuf of a server stream (nothing for bidi)
//   Message   both ways        one message of a stream: client → member the request protobuf; member →
//                               client the response as a gRPC message, ready to send
//   HalfClose client → member  the gRPC client sent its last message
//   Cancel    client → member  u8 gRPC code, UTF-8 message: the gRPC call is over (client reset or went
//                               away, deadline, shutdown); the member stops the stream and sends nothing
//   End       member → client  u8 gRPC code, UTF-8 message: the stream's status (0 = OK)
//   Credit    both ways        u32 bytes: the receiver of the stream's Messages frees this much window
//                               for the sender (flow control; see STREAM_WINDOW_BYTES)
//   WatchEvents member → client  no id (a u32 response count in its place): the event and progress
//                               responses of the channel's Watch streams gathered over one turn, each
//                               event once plus a routing list (layout in watch_batch.ts); each response
//                               counts against its stream's credit as the Message it replaces would
// Keep-alive streams are served in the client process: their renewals of one turn cross as one Call of
// InternalMethod.LeaseKeepAlives (keepalive_batch.ts), and a stream that requires a leader holds an Open
// of InternalMethod.LeaderGuard that the member ends when it has no leader.
// Context block, each part present only if its flag is set, in this order:
//   CtxFlag.Token  u16 length + UTF-8  etcd's auth token (metadata `token`, else `authorization`)
//   CtxFlag.CertCn u16 length + UTF-8  the CN of a verified TLS client certificate
//   CtxFlag.Peer   u8 length + ASCII   the client's address
//   CtxFlag.RequireLeader (no bytes) the stream ends when the member loses its leader (metadata hasleader)
// A unary Call carries a context block only when it has credentials, so the hot path adds one byte.
import type { Duplex } from 'node:stream';

/** Frame kinds. */
export const FrameKind = {
  Call: 1,
  Reply: 2,
  Fail: 3,
  Open: 4,
  Message: 5,
  HalfClose: 6,
  Cancel: 7,
  End: 8,
  Credit: 9,
  WatchEvents: 10,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Which parts the context block of a Call or Open has. */
export const CtxFlag = { Token: 1, CertCn: 2, Peer: 4, RequireLeader: 8 } as const;
const CTX_FLAGS_KNOWN = 15;

/** Bytes before a Call's context block: length, kind, call id, method, timeout, context flags. */
export const CALL_HEAD_BYTES = 4 + 1 + 4 + 2 + 4 + 1;
/** Bytes before an Open's context block (the same layout as a Call). */
export const OPEN_HEAD_BYTES = CALL_HEAD_BYTES;
/** Bytes before a Message's body: length, kind, stream id. */
export const MESSAGE_HEAD_BYTES = 4 + 1 + 4;
/** Bytes of a HalfClose: length, kind, stream id. */
export const HALF_CLOSE_BYTES = 4 + 1 + 4;
/** Bytes of a Credit: length, kind, stream id, u32 bytes. */
export const CREDIT_BYTES = 4 + 1 + 4 + 4;
/** Bytes before an End's or Cancel's message: length, kind, stream id, code (as a Fail). */
export const STATUS_HEAD_BYTES = 4 + 1 + 4 + 1;
/**
 * Each direction of a stream starts with this many bytes of Message payload it may send before the
 * receiver grants more (Credit). A sender may send while its credit is above zero, so one message may
 * overdraw it; past window + one message the receiver treats the channel as broken.
 */
export const STREAM_WINDOW_BYTES = 256 * 1024;
/** The largest auth token or certificate CN the context block carries. */
export const CONTEXT_TEXT_BYTES_MAX = 0xffff;
/** The longest peer address the context block carries (an IPv6 text address is at most 45). */
export const CONTEXT_PEER_BYTES_MAX = 0xff;

/** What a Call or Open tells the member about the caller (absent parts undefined). */
export interface WireContext {
  token: string | undefined;
  certCommonName: string | undefined;
  peerAddress: string | undefined;
  /** The client asked for a stream that ends when the member loses its leader (metadata `hasleader`). */
  requireLeader: boolean;
}

/** Bytes of a context block, and its flags, for what `ctx` holds (set on the instance: no allocation per call). */
export class ContextSizer {
  flags = 0;
  bytes = 0;
  tokenBytes = 0;
  cnBytes = 0;
  peerBytes = 0;

  /** Sizes `ctx`; throws RangeError if a part is over the block's limits. */
  size(ctx: WireContext): void {
    let flags = 0;
    let bytes = 0;
    if (ctx.token !== undefined) {
      flags |= CtxFlag.Token;
      this.tokenBytes = Buffer.byteLength(ctx.token, 'utf8');
      if (this.tokenBytes > CONTEXT_TEXT_BYTES_MAX) throw new RangeError(`auth token of ${this.tokenBytes} bytes`);
      bytes += 2 + this.tokenBytes;
    }
    if (ctx.certCommonName !== undefined) {
      flags |= CtxFlag.CertCn;
      this.cnBytes = Buffer.byteLength(ctx.certCommonName, 'utf8');
      if (this.cnBytes > CONTEXT_TEXT_BYTES_MAX) throw new RangeError(`certificate CN of ${this.cnBytes} bytes`);
      bytes += 2 + this.cnBytes;
    }
    if (ctx.peerAddress !== undefined) {
      flags |= CtxFlag.Peer;
      this.peerBytes = Math.min(Buffer.byteLength(ctx.peerAddress, 'latin1'), CONTEXT_PEER_BYTES_MAX);
      bytes += 1 + this.peerBytes;
    }
    if (ctx.requireLeader) flags |= CtxFlag.RequireLeader;
    this.flags = flags;
    this.bytes = bytes;
  }
}

/** Writes the context block `sizer` measured for `ctx` at `at`. */
function writeContext(b: Buffer, at: number, ctx: WireContext, sizer: ContextSizer): void {
  if ((sizer.flags & CtxFlag.Token) !== 0) {
    b.writeUInt16BE(sizer.tokenBytes, at);
    b.write(ctx.token!, at + 2, sizer.tokenBytes, 'utf8');
    at += 2 + sizer.tokenBytes;
  }
  if ((sizer.flags & CtxFlag.CertCn) !== 0) {
    b.writeUInt16BE(sizer.cnBytes, at);
    b.write(ctx.certCommonName!, at + 2, sizer.cnBytes, 'utf8');
    at += 2 + sizer.cnBytes;
  }
  if ((sizer.flags & CtxFlag.Peer) !== 0) {
    b[at] = sizer.peerBytes;
    b.write(ctx.peerAddress!, at + 1, sizer.peerBytes, 'latin1');
  }
}

/**
 * Reads the context block of a Call or Open at `at` (the flags byte) into `into`; returns where the
 * block ends, or -1 if it is malformed (unknown flags, lengths past `end`).
 */
export function readContext(buf: Buffer, at: number, end: number, into: WireContext): number {
  const flags = buf[at];
  at++;
  into.token = undefined;
  into.certCommonName = undefined;
  into.peerAddress = undefined;
  into.requireLeader = (flags & CtxFlag.RequireLeader) !== 0;
  if ((flags & ~CTX_FLAGS_KNOWN) !== 0) return -1;
  if ((flags & CtxFlag.Token) !== 0) {
    if (at + 2 > end) return -1;
    const n = buf.readUInt16BE(at);
    if (at + 2 + n > end) return -1;
    into.token = buf.toString('utf8', at + 2, at + 2 + n);
    at += 2 + n;
  }
  if ((flags & CtxFlag.CertCn) !== 0) {
    if (at + 2 > end) return -1;
    const n = buf.readUInt16BE(at);
    if (at + 2 + n > end) return -1;
    into.certCommonName = buf.toString('utf8', at + 2, at + 2 + n);
    at += 2 + n;
  }
  if ((flags & CtxFlag.Peer) !== 0) {
    if (at + 1 > end) return -1;
    const n = buf[at];
    if (at + 1 + n > end) return -1;
    into.peerAddress = buf.toString('latin1', at + 1, at + 1 + n);
    at += 1 + n;
  }
  return at;
}
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
 * A frame still being filled (a WatchEvents batch): the writer seals it before it reserves room for any
 * other frame, and at the flush, so it keeps the place in the channel's order where it was opened.
 */
export interface OpenFrame {
  /** Bytes the frame takes as it stands (length field included). */
  readonly bytes: number;
  /** Writes the frame through `w.reserve`; called once. */
  seal(w: FrameWriter): void;
}

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

  /** Bytes waiting here (the open frame too) and in the socket's buffer. */
  get pendingBytes(): number {
    return this.socket.writableLength + this.pos - this.start + this.partsBytes + (this.openFrame?.bytes ?? 0);
  }
  private partsBytes = 0;
  private openFrame: OpenFrame | undefined = undefined;

  /** Makes `f` the open frame (none may be open); it is sealed by the next reserve() or flush. */
  openWith(f: OpenFrame): void {
    if (this.openFrame !== undefined) throw new Error('assertion failed: a frame is already open');
    if (this.closed) return;
    this.openFrame = f;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Seals the open frame now (it is full). */
  sealOpen(): void {
    const f = this.openFrame;
    if (f === undefined) return;
    this.openFrame = undefined;
    f.seal(this);
  }

  /** Reserves `n` bytes in `buf` for one frame and returns where it starts; the flush is scheduled. */
  reserve(n: number): number {
    if (this.openFrame !== undefined) this.sealOpen();
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

  /** A Call frame without a context block (no credentials: the hot path). */
  writeCall(callId: number, method: number, timeoutMs: number, body: Uint8Array): void {
    const n = CALL_HEAD_BYTES + body.length;
    const at = this.reserve(n);
    const b = this.buf;
    b.writeUInt32BE(n - 4, at);
    b[at + 4] = FrameKind.Call;
    b.writeUInt32BE(callId, at + 5);
    b.writeUInt16BE(method, at + 9);
    b.writeUInt32BE(timeoutMs, at + 11);
    b[at + 15] = 0;
    b.set(body, at + CALL_HEAD_BYTES);
  }

  /** A Call (kind Call) or Open (kind Open) frame with the context block `sizer` measured for `ctx`. */
  writeCallWithContext(
    kind: typeof FrameKind.Call | typeof FrameKind.Open,
    id: number,
    method: number,
    timeoutMs: number,
    ctx: WireContext,
    sizer: ContextSizer,
    body: Uint8Array,
  ): void {
    const n = CALL_HEAD_BYTES + sizer.bytes + body.length;
    const at = this.reserve(n);
    const b = this.buf;
    b.writeUInt32BE(n - 4, at);
    b[at + 4] = kind;
    b.writeUInt32BE(id, at + 5);
    b.writeUInt16BE(method, at + 9);
    b.writeUInt32BE(timeoutMs, at + 11);
    b[at + 15] = sizer.flags;
    writeContext(b, at + CALL_HEAD_BYTES, ctx, sizer);
    b.set(body, at + CALL_HEAD_BYTES + sizer.bytes);
  }

  /** A Fail frame. */
  writeFail(callId: number, code: number, message: string): void {
    this.writeStatus(FrameKind.Fail, callId, code, message);
  }

  /** A Fail, End or Cancel frame: u8 code, UTF-8 message. */
  writeStatus(
    kind: typeof FrameKind.Fail | typeof FrameKind.End | typeof FrameKind.Cancel,
    id: number,
    code: number,
    message: string,
  ): void {
    const msgBytes = Buffer.byteLength(message, 'utf8');
    const n = FAIL_HEAD_BYTES + msgBytes;
    const at = this.reserve(n);
    const b = this.buf;
    b.writeUInt32BE(n - 4, at);
    b[at + 4] = kind;
    b.writeUInt32BE(id, at + 5);
    b[at + 9] = code;
    b.write(message, at + FAIL_HEAD_BYTES, msgBytes, 'utf8');
  }

  /** A Message frame whose body is `body` as it is (client → member: a request protobuf). */
  writeMessage(streamId: number, body: Uint8Array): void {
    const n = MESSAGE_HEAD_BYTES + body.length;
    const at = this.reserve(n);
    const b = this.buf;
    b.writeUInt32BE(n - 4, at);
    b[at + 4] = FrameKind.Message;
    b.writeUInt32BE(streamId, at + 5);
    b.set(body, at + MESSAGE_HEAD_BYTES);
  }

  /** A HalfClose frame. */
  writeHalfClose(streamId: number): void {
    const at = this.reserve(HALF_CLOSE_BYTES);
    const b = this.buf;
    b.writeUInt32BE(HALF_CLOSE_BYTES - 4, at);
    b[at + 4] = FrameKind.HalfClose;
    b.writeUInt32BE(streamId, at + 5);
  }

  /** A Credit frame granting `bytes` more window on a stream. */
  writeCredit(streamId: number, bytes: number): void {
    const at = this.reserve(CREDIT_BYTES);
    const b = this.buf;
    b.writeUInt32BE(CREDIT_BYTES - 4, at);
    b[at + 4] = FrameKind.Credit;
    b.writeUInt32BE(streamId, at + 5);
    b.writeUInt32BE(bytes, at + 9);
  }

  /** Writes what is queued now (also called by the turn-end flush). */
  flush(): void {
    if (this.openFrame !== undefined && !this.closed) this.sealOpen();
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
    this.openFrame = undefined;
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

  constructor(
    private readonly sink: FrameSink,
    private readonly frameBytesMax = FRAME_BYTES_MAX,
  ) {}

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
