// The member's end of one client process's channel: decodes Call frames, runs the RPC's logic from
// api/rpc.ts on the member and writes each answer (a ready-to-send gRPC message, or a status) back in
// the same turn's batch; Open frames start streams (member_stream.ts) whose messages, half-close,
// cancel and credit frames it routes. Bad frames close the channel, never the member; limits bound
// what one client process can make the member hold.
import type { Duplex } from 'node:stream';
import { EtcdError, GrpcCode, toEtcdError, Errors } from '../errors.js';
import { ProtoWriter } from '../proto/wire.js';
import type { MemberApi } from '../server/member_api.js';
import { RPCS, rpcLimitsOf, type AnyRpc, type AnyUnaryRpc, type RpcLimits } from '../api/rpc.js';
import { EMPTY_CONTEXT, FixedContext, type CallContext } from '../api/context.js';
import type { HttpBackend } from '../api/http.js';
import type { Logger } from '../log.js';
import {
  FrameKind,
  FrameReader,
  FrameWriter,
  CALL_HEAD_BYTES,
  REPLY_HEAD_BYTES,
  FAIL_HEAD_BYTES,
  MESSAGE_HEAD_BYTES,
  HALF_CLOSE_BYTES,
  CREDIT_BYTES,
  FRAME_BYTES_MAX,
  readContext,
  type FrameSink,
  type WireContext,
} from './channel.js';
import { ChannelMethods, InternalMethod } from './methods.js';
import { renewKeepAliveBatch } from './keepalive_batch.js';
import { WatchBatch, isRoutable } from './watch_batch.js';
import { Lease, type WatchResponseInit } from '../proto/rpc.js';
import { MemberStream, MEMBER_STREAM_DEFAULTS, endWhenSettled, type MemberStreamLimits, type StreamChannel } from './member_stream.js';

/** Limits of one channel (its streams' limits are MemberStreamLimits). */
export interface MemberChannelLimits {
  /** Calls of this channel in flight on the member; above it the member stops reading the channel. */
  callsInFlightMax: number;
  /** Reply bytes queued for the client process; above it the member stops reading the channel. */
  replyQueueBytesHigh: number;
  /** A client process that lets this many reply bytes pile up is cut off (it is stuck). */
  replyQueueBytesMax: number;
}

/** Defaults: a client process holds at most this many calls (its own limit is the same). */
export const MEMBER_CHANNEL_DEFAULTS: MemberChannelLimits = {
  callsInFlightMax: 100_000,
  replyQueueBytesHigh: 64 * 1024 * 1024,
  replyQueueBytesMax: 1024 * 1024 * 1024,
};

/** gRPC's prefix in front of a message: flag byte + u32 length. */
const GRPC_PREFIX_BYTES = 5;

/**
 * Serves one client process's channel.
 *
 *   const ch = new MemberChannel(childStdio4, server, memberHttpBackend(server), log);
 *   ch.onClose = () => ...;
 */
export class MemberChannel implements FrameSink, StreamChannel {
  /** Called once when the channel is gone (the client process exited or was cut off). */
  onClose: (() => void) | undefined = undefined;
  /** Calls answered so far (tests and metrics). */
  callsServed = 0;
  /** Response bytes queued on the member for all this channel's streams (waiting for credit). */
  streamQueuedBytes = 0;
  readonly limits: RpcLimits;
  readonly streamLimits: MemberStreamLimits;

  private readonly reader: FrameReader;
  private readonly writer: FrameWriter;
  private readonly protoWriter = new ProtoWriter(0);
  private readonly methods: ChannelMethods;
  private readonly streams = new Map<number, MemberStream>();
  /** Streams with queued responses, flushed when the socket drains. */
  private readonly blocked = new Set<MemberStream>();
  /** Scratch for the context block of the frame being read. */
  private readonly wireCtx: WireContext = { token: undefined, certCommonName: undefined, peerAddress: undefined, requireLeader: false };
  /** Watch responses go in WatchEvents frames (false: one Message each, as before them; tests compare). */
  private readonly watchBatches: boolean;
  /** The WatchEvents frame of this turn, while it is open in the writer. */
  private batch: WatchBatch | undefined = undefined;
  private inFlight = 0;
  /** The entry that shapes leader-guard streams (they carry no messages). */
  private readonly keepAliveRpc: AnyRpc;
  private paused = false;
  private closed = false;

  constructor(
    private readonly socket: Duplex,
    private readonly s: MemberApi,
    private readonly http: HttpBackend,
    private readonly log: Logger,
    private readonly channelLimits: MemberChannelLimits = MEMBER_CHANNEL_DEFAULTS,
    options: { methods?: ChannelMethods; streamLimits?: MemberStreamLimits; watchBatches?: boolean } = {},
  ) {
    this.watchBatches = options.watchBatches ?? true;
    this.limits = rpcLimitsOf(s);
    this.methods = options.methods ?? new ChannelMethods(RPCS);
    this.streamLimits = options.streamLimits ?? MEMBER_STREAM_DEFAULTS;
    this.keepAliveRpc = RPCS.find((r) => r.desc.path === Lease.methods.LeaseKeepAlive.path)!;
    this.reader = new FrameReader(this, FRAME_BYTES_MAX);
    this.writer = new FrameWriter(socket);
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err: Error) => this.log.debug('client process channel error', { error: err }));
    socket.on('close', () => this.closeNow());
  }

  /** Calls being served. */
  get callsInFlight(): number {
    return this.inFlight;
  }

  /** Streams open. */
  get streamsOpen(): number {
    return this.streams.size;
  }

  /** The open streams (tests look at their queues). */
  get openStreams(): MemberStream[] {
    return [...this.streams.values()];
  }

  /** Cuts the channel. */
  destroy(): void {
    this.socket.destroy();
    this.closeNow();
  }

  onBadFrame(reason: string): void {
    this.log.error('client process sent a malformed frame; closing its channel', { reason });
    this.destroy();
  }

  onFrame(buf: Buffer, start: number, end: number): void {
    if (this.closed) return;
    const kind = buf[start];
    if (kind !== FrameKind.Call) {
      this.onStreamFrame(kind, buf, start, end);
      return;
    }
    if (end - start < CALL_HEAD_BYTES - 4) {
      this.onBadFrame(`Call frame of ${end - start} bytes`);
      return;
    }
    const callId = buf.readUInt32BE(start + 1);
    const method = buf.readUInt16BE(start + 5);
    let bodyAt = start + CALL_HEAD_BYTES - 4;
    let ctx: CallContext = EMPTY_CONTEXT;
    const timeoutMs = buf.readUInt32BE(start + 7);
    if (buf[bodyAt - 1] !== 0) {
      bodyAt = readContext(buf, bodyAt - 1, end, this.wireCtx);
      if (bodyAt < 0) {
        this.onBadFrame('malformed context block');
        return;
      }
      ctx = this.fixedContext(timeoutMs, true);
    } else if (timeoutMs !== 0) {
      ctx = this.fixedContext(timeoutMs, false);
    }
    const body = buf.subarray(bodyAt, end);
    if (method >= InternalMethod.First) {
      this.serveInternal(callId, method, body);
      return;
    }
    const rpc = this.methods.rpcOf(method);
    if (rpc === undefined || rpc.kind !== 'unary') {
      this.writer.writeFail(callId, GrpcCode.Unimplemented, `unknown unary method ID ${method}`);
      return;
    }
    let req: unknown;
    try {
      req = rpc.desc.decodeRequest(body);
    } catch (err) {
      this.writer.writeFail(callId, GrpcCode.Internal, `grpc: error unmarshalling request: ${(err as Error).message}`);
      return;
    }
    let res: unknown;
    try {
      rpc.validate(req, this.limits);
      res = rpc.serve(this.s, req, ctx);
    } catch (err) {
      this.failCall(callId, err);
      return;
    }
    if (res instanceof Promise) {
      this.inFlight++;
      if (this.inFlight >= this.channelLimits.callsInFlightMax) this.pause();
      void awaitCall(this, callId, rpc, res);
    } else {
      this.reply(callId, rpc, res);
    }
  }

  /** @internal An awaited call finished. */
  _settled(callId: number, rpc: AnyUnaryRpc, res: unknown, err: unknown): void {
    this.inFlight--;
    if (this.closed) return;
    if (err !== undefined) this.failCall(callId, err);
    else this.reply(callId, rpc, res);
    this.maybeResume();
  }

  private reply(callId: number, rpc: AnyUnaryRpc, res: unknown): void {
    this.callsServed++;
    let size: number;
    try {
      size = rpc.desc.sizeResponse(res);
    } catch (err) {
      this.writer.writeFail(callId, GrpcCode.Internal, `grpc: error while marshaling: ${(err as Error).message}`);
      return;
    }
    const frameBytes = REPLY_HEAD_BYTES + GRPC_PREFIX_BYTES + size;
    if (frameBytes - 4 > FRAME_BYTES_MAX) {
      this.writer.writeFail(
        callId,
        GrpcCode.ResourceExhausted,
        `grpc: trying to send message larger than max (${size} vs. ${FRAME_BYTES_MAX - REPLY_HEAD_BYTES - GRPC_PREFIX_BYTES})`,
      );
      return;
    }
    const w = this.writer;
    const at = w.reserve(frameBytes);
    try {
      this.writeResponseAt(w.buf, at, FrameKind.Reply, callId, rpc, res, size);
    } catch (err) {
      w.shrink(at, 0);
      w.writeFail(callId, GrpcCode.Internal, `grpc: error while marshaling: ${(err as Error).message}`);
      return;
    }
    this.checkBacklog();
  }

  /** A Reply or Message frame holding `res` as a gRPC message, written at `at` of `b` (frame bytes reserved). */
  private writeResponseAt(b: Buffer, at: number, kind: number, id: number, rpc: AnyRpc, res: unknown, size: number): void {
    const frameBytes = REPLY_HEAD_BYTES + GRPC_PREFIX_BYTES + size;
    b.writeUInt32BE(frameBytes - 4, at);
    b[at + 4] = kind;
    b.writeUInt32BE(id, at + 5);
    b[at + 9] = 0;
    b.writeUInt32BE(size, at + 10);
    // Encode straight into the buffer: the ProtoWriter is pointed at the reserved bytes.
    const pw = this.protoWriter as unknown as { buf: Uint8Array; pos: number };
    pw.buf = b;
    pw.pos = at + REPLY_HEAD_BYTES + GRPC_PREFIX_BYTES;
    rpc.desc.writeResponse(res, this.protoWriter);
    if (pw.pos !== at + frameBytes)
      throw new Error(`protobuf size mismatch: wrote ${pw.pos - at - REPLY_HEAD_BYTES - GRPC_PREFIX_BYTES} of ${size}`);
  }

  /** The context of a unary call: allocated only when the call carries a deadline or a context block. */
  private fixedContext(timeoutMs: number, withBlock: boolean): CallContext {
    const deadlineMs = timeoutMs === 0 ? Infinity : Date.now() + timeoutMs;
    if (!withBlock) return new FixedContext({ deadlineMs });
    const c = this.wireCtx;
    return new FixedContext({ token: c.token, certCommonName: c.certCommonName, peerAddress: c.peerAddress, deadlineMs });
  }

  // ---- streams ----

  private onStreamFrame(kind: number, buf: Buffer, start: number, end: number): void {
    const len = end - start;
    if (len < HALF_CLOSE_BYTES - 4) {
      this.onBadFrame(`frame of ${len} bytes`);
      return;
    }
    const id = buf.readUInt32BE(start + 1);
    // A frame of a stream the member already ended (its End crossed the client's frames) is dropped.
    const stream = this.streams.get(id);
    switch (kind) {
      case FrameKind.Open:
        if (len < CALL_HEAD_BYTES - 4) break;
        this.open(id, buf, start, end);
        return;
      case FrameKind.Message:
        if (stream !== undefined && !stream._message(buf.subarray(start + MESSAGE_HEAD_BYTES - 4, end))) {
          this.onBadFrame(`stream ${id} sent past its credit`);
        }
        return;
      case FrameKind.HalfClose:
        if (len !== HALF_CLOSE_BYTES - 4) break;
        stream?._halfClose();
        return;
      case FrameKind.Cancel: {
        if (len < FAIL_HEAD_BYTES - 4) break;
        if (stream === undefined) return;
        this.forget(stream);
        const code = buf[start + 5];
        stream._cancel(
          new EtcdError(
            code <= GrpcCode.Unauthenticated ? (code as GrpcCode) : GrpcCode.Unknown,
            buf.toString('utf8', start + FAIL_HEAD_BYTES - 4, end),
          ),
        );
        return;
      }
      case FrameKind.Credit: {
        if (len !== CREDIT_BYTES - 4) break;
        stream?._credit(buf.readUInt32BE(start + 5));
        return;
      }
    }
    this.onBadFrame(`unexpected frame kind ${kind} of ${len} bytes`);
  }

  private open(id: number, buf: Buffer, start: number, end: number): void {
    if (this.streams.has(id)) {
      this.onBadFrame(`stream ${id} opened twice`);
      return;
    }
    const method = buf.readUInt16BE(start + 5);
    const timeoutMs = buf.readUInt32BE(start + 7);
    const bodyAt = readContext(buf, start + CALL_HEAD_BYTES - 5, end, this.wireCtx);
    if (bodyAt < 0) {
      this.onBadFrame('malformed context block');
      return;
    }
    if (method === InternalMethod.LeaderGuard) {
      this.openLeaderGuard(id);
      return;
    }
    const rpc = this.methods.rpcOf(method);
    if (rpc === undefined || (rpc.kind === 'unary' && rpc.waits !== true)) {
      this.writer.writeStatus(FrameKind.End, id, GrpcCode.Unimplemented, `unknown streaming method ID ${method}`);
      return;
    }
    if (this.refusedAsFull(id)) return;
    const stream = new MemberStream(this, id, rpc, this.wireCtx, timeoutMs);
    this.streams.set(id, stream);
    let ret: void | Promise<void>;
    try {
      if (rpc.kind === 'bidi') {
        if (bodyAt !== end) throw new EtcdError(GrpcCode.Internal, 'grpc: a bidi stream opened with a request message');
        ret = rpc.serve(this.s, stream, stream);
      } else {
        const req = decodeRequest(rpc, buf.subarray(bodyAt, end));
        rpc.validate(req, this.limits);
        // A waiting unary call: the stream is its context (so the client's cancel reaches serve) and carries its one response.
        ret = rpc.kind === 'unary' ? answerOnStream(stream, rpc.serve(this.s, req, stream)) : rpc.serve(this.s, req, stream, stream);
      }
    } catch (err) {
      stream.end(err);
      return;
    }
    if (ret instanceof Promise) void endWhenSettled(stream, ret);
  }

  /** Answers an Open past streamsOpenMax with RESOURCE_EXHAUSTED; true if it did. */
  private refusedAsFull(id: number): boolean {
    if (this.streams.size < this.streamLimits.streamsOpenMax) return false;
    this.writer.writeStatus(
      FrameKind.End,
      id,
      GrpcCode.ResourceExhausted,
      `etcdserver: too many streams (limit ${this.streamLimits.streamsOpenMax})`,
    );
    return true;
  }

  /**
   * A client process's keep-alive stream requires a leader: refused now without one (the End is written
   * before any later frame is read, so it precedes the answers to that stream's renewals), ended when the
   * leader is lost, as serveLeaseKeepAlive does with the member's own streams.
   */
  private openLeaderGuard(id: number): void {
    if (!this.s.hasLeader) {
      const e = Errors.NoLeader();
      this.writer.writeStatus(FrameKind.End, id, e.code, e.message);
      return;
    }
    if (this.refusedAsFull(id)) return;
    // A stream that never carries a message: the keep-alive method's entry only gives it a shape.
    const stream = new MemberStream(this, id, this.keepAliveRpc, this.wireCtx, 0);
    this.streams.set(id, stream);
    const forget = this.s.onLeaderLost(() => stream.end(Errors.NoLeader()));
    stream.onCancel(forget);
  }

  private forget(stream: MemberStream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    this.blocked.delete(stream);
  }

  /** @internal Room in the writer for stream frames (above it they wait in their stream's queue). */
  _writerHasRoom(): boolean {
    return !this.closed && this.writer.pendingBytes < this.channelLimits.replyQueueBytesHigh;
  }

  /** @internal Writes a stream's response frame in place; false if encoding failed. */
  _writeResponse(kind: number, id: number, rpc: AnyRpc, res: unknown, size: number): boolean {
    const frameBytes = REPLY_HEAD_BYTES + GRPC_PREFIX_BYTES + size;
    if (frameBytes - 4 > FRAME_BYTES_MAX) return false;
    const w = this.writer;
    const at = w.reserve(frameBytes);
    try {
      this.writeResponseAt(w.buf, at, kind, id, rpc, res, size);
    } catch {
      w.shrink(at, 0);
      return false;
    }
    return true;
  }

  /** @internal A stream's response frame in a buffer of its own (to be queued); undefined if encoding failed. */
  _encodeResponseFrame(kind: number, id: number, rpc: AnyRpc, res: unknown, size: number): Buffer | undefined {
    const frameBytes = REPLY_HEAD_BYTES + GRPC_PREFIX_BYTES + size;
    if (frameBytes - 4 > FRAME_BYTES_MAX) return undefined;
    const b = Buffer.allocUnsafe(frameBytes);
    try {
      this.writeResponseAt(b, 0, kind, id, rpc, res, size);
    } catch {
      return undefined;
    }
    return b;
  }

  /** @internal Adds a Watch stream's event or progress response to this turn's WatchEvents frame; its size, or -1. */
  _batchWatchResponse(id: number, m: unknown): number {
    const res = m as WatchResponseInit;
    if (!this.watchBatches || this.closed || !isRoutable(res)) return -1;
    let b = this.batch;
    if (b === undefined || b.sealed) {
      b = this.batch = new WatchBatch();
      this.writer.openWith(b);
    }
    const size = b.add(id, res);
    if (b.full) this.writer.sealOpen();
    return size;
  }

  /** @internal Copies a whole frame into the writer. */
  _writeFrame(frame: Buffer): void {
    const at = this.writer.reserve(frame.length);
    this.writer.buf.set(frame, at);
  }

  /** @internal A stream's queue grew or shrank by `delta` bytes. */
  _streamQueued(stream: MemberStream, delta: number): void {
    this.streamQueuedBytes += delta;
    if (stream.queuedBytes > 0) this.blocked.add(stream);
    else this.blocked.delete(stream);
  }

  /** @internal A stream's End goes out; the stream is forgotten. */
  _endStream(stream: MemberStream, code: number, message: string): void {
    this.forget(stream);
    if (!this.closed) this.writer.writeStatus(FrameKind.End, stream.id, code, message);
  }

  /** @internal Gives the client process back `bytes` of a stream's request window. */
  _grant(stream: MemberStream, bytes: number): void {
    if (!this.closed) this.writer.writeCredit(stream.id, bytes);
  }

  /** @internal */
  _hookFailed(err: unknown): void {
    this.log.error('a stream cancellation hook threw', { error: err });
  }

  private onDrain(): void {
    for (const stream of [...this.blocked]) stream._flush();
    this.maybeResume();
  }

  /** A batch of keep-alive renewals (keepalive_batch.ts): answered in this turn on the leader, later on a follower. */
  private serveKeepAlives(callId: number, body: Uint8Array): void {
    let answer: Buffer | Promise<Buffer>;
    try {
      answer = renewKeepAliveBatch(this.s, body);
    } catch (err) {
      this.failCall(callId, err);
      return;
    }
    if (!(answer instanceof Promise)) {
      this.callsServed++;
      this.replyBytes(callId, answer);
      this.checkBacklog();
      return;
    }
    this.inFlight++;
    if (this.inFlight >= this.channelLimits.callsInFlightMax) this.pause();
    answer.then(
      (b) => {
        this.inFlight--;
        if (this.closed) return;
        this.callsServed++;
        this.replyBytes(callId, b);
        this.checkBacklog();
        this.maybeResume();
      },
      (err: unknown) => {
        this.inFlight--;
        if (this.closed) return;
        this.failCall(callId, err);
        this.maybeResume();
      },
    );
  }

  private replyBytes(callId: number, body: Uint8Array): void {
    const frameBytes = REPLY_HEAD_BYTES + body.length;
    const at = this.writer.reserve(frameBytes);
    const b = this.writer.buf;
    b.writeUInt32BE(frameBytes - 4, at);
    b[at + 4] = FrameKind.Reply;
    b.writeUInt32BE(callId, at + 5);
    b.set(body, at + REPLY_HEAD_BYTES);
  }

  private failCall(callId: number, err: unknown): void {
    const e = err instanceof EtcdError ? err : toEtcdError(err);
    this.writer.writeFail(callId, e.code, e.message);
  }

  private serveInternal(callId: number, method: number, body: Uint8Array): void {
    switch (method) {
      case InternalMethod.LeaseKeepAlives:
        this.serveKeepAlives(callId, body);
        return;
      case InternalMethod.Health:
        void this.http.healthy().then((ok) => {
          if (!this.closed) this.replyBytes(callId, Buffer.from([ok ? 1 : 0]));
        });
        return;
      case InternalMethod.Metrics:
        Promise.resolve(this.http.metricsText()).then(
          (text) => {
            if (!this.closed) this.replyBytes(callId, Buffer.from(text, 'utf8'));
          },
          (err: unknown) => {
            if (!this.closed) this.failCall(callId, err);
          },
        );
        return;
      default:
        this.writer.writeFail(callId, GrpcCode.Unimplemented, `unknown internal method number ${method}`);
    }
  }

  private checkBacklog(): void {
    const queued = this.writer.pendingBytes;
    if (queued >= this.channelLimits.replyQueueBytesMax) {
      this.log.error('client process does not read its replies; closing its channel', { 'queued-bytes': queued });
      this.destroy();
      return;
    }
    if (queued >= this.channelLimits.replyQueueBytesHigh) this.pause();
  }

  private pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.socket.pause();
  }

  private maybeResume(): void {
    if (!this.paused || this.closed) return;
    if (this.inFlight * 2 > this.channelLimits.callsInFlightMax) return;
    if (this.writer.pendingBytes * 2 > this.channelLimits.replyQueueBytesHigh) return;
    this.paused = false;
    this.socket.resume();
  }

  private closeNow(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.close();
    // The client process is gone: its streams end on the member, nobody else's.
    const streams = [...this.streams.values()];
    this.streams.clear();
    this.blocked.clear();
    const reason = new EtcdError(GrpcCode.Unavailable, 'etcdserver: the client process of this stream is gone');
    for (const stream of streams) stream._cancel(reason);
    const cb = this.onClose;
    this.onClose = undefined;
    if (cb !== undefined) cb();
  }
}

function decodeRequest(rpc: AnyRpc, body: Uint8Array): unknown {
  try {
    return rpc.desc.decodeRequest(body);
  } catch (err) {
    throw new EtcdError(GrpcCode.Internal, `grpc: error unmarshalling request: ${(err as Error).message}`);
  }
}

// One async frame per awaited call; no closures are made per call.
/** Writes a waiting unary call's response to its stream (endWhenSettled then ends it OK). */
async function answerOnStream(stream: MemberStream, res: unknown): Promise<void> {
  stream.write(await res);
}

async function awaitCall(ch: MemberChannel, callId: number, rpc: AnyUnaryRpc, pending: Promise<unknown>): Promise<void> {
  let res: unknown;
  try {
    res = await pending;
  } catch (err) {
    ch._settled(callId, rpc, undefined, err ?? Errors.Unknown('etcdserver: unknown error'));
    return;
  }
  ch._settled(callId, rpc, res, undefined);
}
