// The member's end of one client process's channel: decodes Call frames, runs the RPC's logic from
// api/rpc.ts on the member and writes each answer (a ready-to-send gRPC message, or a status) back in
// the same turn's batch. Bad frames close the channel, never the member; limits bound what one client
// process can make the member hold.
import type { Duplex } from 'node:stream';
import { EtcdError, GrpcCode, toEtcdError, Errors } from '../errors.js';
import { ProtoWriter } from '../proto/wire.js';
import type { EtcdServer } from '../server/server.js';
import { UNARY_RPCS, rpcLimitsOf, type AnyUnaryRpc, type RpcLimits } from '../api/rpc.js';
import type { HttpBackend } from '../api/http.js';
import type { Logger } from '../log.js';
import { FrameKind, FrameReader, FrameWriter, CALL_HEAD_BYTES, REPLY_HEAD_BYTES, FRAME_BYTES_MAX, type FrameSink } from './channel.js';
import { InternalMethod } from './methods.js';

/** Limits of one channel. */
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
export class MemberChannel implements FrameSink {
  /** Called once when the channel is gone (the client process exited or was cut off). */
  onClose: (() => void) | undefined = undefined;
  /** Calls answered so far (tests and metrics). */
  callsServed = 0;

  private readonly reader: FrameReader;
  private readonly writer: FrameWriter;
  private readonly limits: RpcLimits;
  private readonly protoWriter = new ProtoWriter(0);
  private inFlight = 0;
  private paused = false;
  private closed = false;

  constructor(
    private readonly socket: Duplex,
    private readonly s: EtcdServer,
    private readonly http: HttpBackend,
    private readonly log: Logger,
    private readonly channelLimits: MemberChannelLimits = MEMBER_CHANNEL_DEFAULTS,
  ) {
    this.limits = rpcLimitsOf(s);
    this.reader = new FrameReader(this, FRAME_BYTES_MAX);
    this.writer = new FrameWriter(socket);
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('drain', () => this.maybeResume());
    socket.on('error', (err: Error) => this.log.debug('client process channel error', { error: err }));
    socket.on('close', () => this.closeNow());
  }

  /** Calls being served. */
  get callsInFlight(): number {
    return this.inFlight;
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
    if (buf[start] !== FrameKind.Call || end - start < CALL_HEAD_BYTES - 4) {
      this.onBadFrame(`unexpected frame kind ${buf[start]} of ${end - start} bytes`);
      return;
    }
    const callId = buf.readUInt32BE(start + 1);
    const method = buf.readUInt16BE(start + 5);
    const body = buf.subarray(start + CALL_HEAD_BYTES - 4, end);
    if (method >= InternalMethod.First) {
      this.serveInternal(callId, method);
      return;
    }
    const rpc = UNARY_RPCS[method];
    if (rpc === undefined) {
      this.writer.writeFail(callId, GrpcCode.Unimplemented, `unknown method number ${method}`);
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
      res = rpc.serve(this.s, req);
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
      this.writer.writeFail(callId, GrpcCode.ResourceExhausted, `grpc: trying to send message larger than max (${size} vs. ${FRAME_BYTES_MAX - REPLY_HEAD_BYTES - GRPC_PREFIX_BYTES})`);
      return;
    }
    const w = this.writer;
    const at = w.reserve(frameBytes);
    const b = w.buf;
    b.writeUInt32BE(frameBytes - 4, at);
    b[at + 4] = FrameKind.Reply;
    b.writeUInt32BE(callId, at + 5);
    b[at + 9] = 0;
    b.writeUInt32BE(size, at + 10);
    // Encode straight into the batch buffer: the ProtoWriter is pointed at the reserved bytes.
    const pw = this.protoWriter as unknown as { buf: Uint8Array; pos: number };
    pw.buf = b;
    pw.pos = at + REPLY_HEAD_BYTES + GRPC_PREFIX_BYTES;
    try {
      rpc.desc.writeResponse(res, this.protoWriter);
      if (pw.pos !== at + frameBytes) throw new Error(`protobuf size mismatch: wrote ${pw.pos - at - REPLY_HEAD_BYTES - GRPC_PREFIX_BYTES} of ${size}`);
    } catch (err) {
      w.shrink(at, 0);
      w.writeFail(callId, GrpcCode.Internal, `grpc: error while marshaling: ${(err as Error).message}`);
      return;
    }
    this.checkBacklog();
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

  private serveInternal(callId: number, method: number): void {
    switch (method) {
      case InternalMethod.Health:
        void this.http.healthy().then((ok) => { if (!this.closed) this.replyBytes(callId, Buffer.from([ok ? 1 : 0])); });
        return;
      case InternalMethod.Metrics:
        Promise.resolve(this.http.metricsText()).then(
          (text) => { if (!this.closed) this.replyBytes(callId, Buffer.from(text, 'utf8')); },
          (err: unknown) => { if (!this.closed) this.failCall(callId, err); },
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
    const cb = this.onClose;
    this.onClose = undefined;
    if (cb !== undefined) cb();
  }
}

// One async frame per awaited call; no closures are made per call.
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
