// One streaming RPC of a client process, on the member: what its serve function writes to and reads
// from (RpcBidiStream) and its context (CallContext), in one object per stream. Responses go out as
// Message frames while the client process's credit lasts (it grants credit as the gRPC client drains
// its HTTP/2 stream), then queue here up to a soft limit (writable = false) and a hard one (the stream
// ends with RESOURCE_EXHAUSTED and the producer is told through onCancel). Request messages are paced
// the same way in the other direction: the member grants credit as serve consumes them.
import type { CallContext } from '../api/context.js';
import type { AnyRpc, RpcBidiStream } from '../api/rpc.js';
import { EtcdError, GrpcCode, toEtcdError } from '../errors.js';
import { FrameKind, MESSAGE_HEAD_BYTES, STREAM_WINDOW_BYTES, type WireContext } from './channel.js';
import type { RpcLimits } from '../api/rpc.js';
import { Watch } from '../proto/rpc.js';

/** What a stream needs of the channel that carries it (MemberChannel implements it). */
export interface StreamChannel {
  readonly limits: RpcLimits;
  readonly streamLimits: MemberStreamLimits;
  /** Bytes queued by every stream of the channel. */
  readonly streamQueuedBytes: number;
  _writerHasRoom(): boolean;
  _writeResponse(kind: number, id: number, rpc: AnyRpc, res: unknown, size: number): boolean;
  _encodeResponseFrame(kind: number, id: number, rpc: AnyRpc, res: unknown, size: number): Buffer | undefined;
  _writeFrame(frame: Buffer): void;
  /** Puts a Watch stream's response into the channel's WatchEvents batch: its size, or -1 if it must go as a Message. */
  _batchWatchResponse(id: number, m: unknown): number;
  _streamQueued(stream: MemberStream, delta: number): void;
  _endStream(stream: MemberStream, code: number, message: string): void;
  _grant(stream: MemberStream, bytes: number): void;
  _hookFailed(err: unknown): void;
}

/** Limits of one stream and of all the streams of one channel, on the member. */
export interface MemberStreamLimits {
  /** Streams open on one channel; an Open beyond it is answered with RESOURCE_EXHAUSTED. */
  streamsOpenMax: number;
  /** Response bytes queued on the member for one stream above which `writable` is false. */
  streamQueueBytesHigh: number;
  /** Response bytes queued for one stream past which it ends with RESOURCE_EXHAUSTED. */
  streamQueueBytesMax: number;
  /** Response bytes queued for all the streams of a channel past which the writing stream ends so. */
  channelStreamQueueBytesMax: number;
}

export const MEMBER_STREAM_DEFAULTS: MemberStreamLimits = {
  streamsOpenMax: 100_000,
  streamQueueBytesHigh: 256 * 1024,
  streamQueueBytesMax: 8 * 1024 * 1024,
  channelStreamQueueBytesMax: 256 * 1024 * 1024,
};

/** Request credit goes back to the client process in batches of at least this many bytes. */
const CREDIT_BATCH_BYTES = STREAM_WINDOW_BYTES / 4;

/**
 * A stream on the member. Built by MemberChannel for an Open frame; serve gets it twice, as the
 * stream and as the context:
 *
 *   rpc.serve(server, req, stream, stream);
 */
export class MemberStream implements RpcBidiStream<unknown, unknown>, CallContext {
  readonly token: string | undefined;
  readonly certCommonName: string | undefined;
  readonly deadlineMs: number;
  readonly peerAddress: string;
  readonly requireLeader: boolean;

  /** Response frames (whole, length first) waiting for credit or for the channel's writer to drain. */
  private queue: Buffer[] | undefined = undefined;
  /** Bytes of `queue`. */
  queuedBytes = 0;
  /** Payload bytes the client process still accepts before it grants more. */
  private sendCredit = STREAM_WINDOW_BYTES;
  /** Nothing more can be written (serve ended it, or it was cancelled). */
  private _done = false;
  /** The End that goes out once the queued messages have. */
  private endPending: EtcdError | null | undefined = undefined;
  /** A Watch stream: its event and progress responses may go in the channel's WatchEvents batch. */
  private readonly watchBatched: boolean;
  /** Set when the stream ended without serve deciding. */
  private cancelReason: EtcdError | undefined = undefined;
  private cancelHooks: ((reason: EtcdError) => void)[] | undefined = undefined;
  private drainWaiters: (() => void)[] | undefined = undefined;
  /** The channel forgot the stream (its End went out, or it was cancelled). */
  private gone = false;

  // Request side (bidi).
  private _onMessage: ((m: unknown) => void) | undefined = undefined;
  private _onHalfClose: (() => void) | undefined = undefined;
  /** Requests waiting for onMessage or resume(): the decoded message and its size, in pairs. */
  private inbound: unknown[] | undefined = undefined;
  private inboundPaused = false;
  private halfClosePending = false;
  /** Request bytes the client process may still send (it overdraws by at most one message). */
  private recvCredit = STREAM_WINDOW_BYTES;
  private recvUngranted = 0;

  constructor(
    private readonly ch: StreamChannel,
    readonly id: number,
    readonly rpc: AnyRpc,
    ctx: WireContext,
    timeoutMs: number,
  ) {
    this.token = ctx.token;
    this.certCommonName = ctx.certCommonName;
    this.peerAddress = ctx.peerAddress ?? '';
    this.requireLeader = ctx.requireLeader;
    this.deadlineMs = timeoutMs === 0 ? Infinity : Date.now() + timeoutMs;
    this.watchBatched = rpc.desc.path === Watch.methods.Watch.path;
  }

  // ---- CallContext ----

  get cancelled(): boolean {
    return this.cancelReason !== undefined;
  }

  onCancel(fn: (reason: EtcdError) => void): void {
    if (this.cancelReason !== undefined) fn(this.cancelReason);
    else if (!this._done) (this.cancelHooks ??= []).push(fn);
  }

  // ---- RpcStreamWriter ----

  get done(): boolean {
    return this._done;
  }

  get writable(): boolean {
    return !this._done && this.queuedBytes < this.ch.streamLimits.streamQueueBytesHigh;
  }

  write(m: unknown): boolean {
    if (this._done) return false;
    const ch = this.ch;
    if (this.watchBatched && this.queue === undefined && this.sendCredit > 0 && ch._writerHasRoom()) {
      // Charged as the Message it replaces: the client process rebuilds exactly these 5 + size bytes.
      const batchedSize = ch._batchWatchResponse(this.id, m);
      if (batchedSize >= 0) {
        this.sendCredit -= 5 + batchedSize;
        return true;
      }
    }
    let size: number;
    try {
      size = this.rpc.desc.sizeResponse(m);
    } catch (err) {
      this.terminate(new EtcdError(GrpcCode.Internal, `grpc: error while marshaling: ${(err as Error).message}`));
      return false;
    }
    if (this.queue === undefined && this.sendCredit > 0 && ch._writerHasRoom()) {
      if (!ch._writeResponse(FrameKind.Message, this.id, this.rpc, m, size)) {
        this.terminate(new EtcdError(GrpcCode.Internal, 'grpc: error while marshaling the response'));
        return false;
      }
      this.sendCredit -= 5 + size;
      return true;
    }
    const frame = ch._encodeResponseFrame(FrameKind.Message, this.id, this.rpc, m, size);
    if (frame === undefined) {
      this.terminate(new EtcdError(GrpcCode.Internal, 'grpc: error while marshaling the response'));
      return false;
    }
    (this.queue ??= []).push(frame);
    this.queuedBytes += frame.length;
    ch._streamQueued(this, frame.length);
    const lim = ch.streamLimits;
    if (this.queuedBytes > lim.streamQueueBytesMax) {
      this.terminate(
        new EtcdError(
          GrpcCode.ResourceExhausted,
          `etcdserver: the client does not read its stream: ${this.queuedBytes} bytes queued (limit ${lim.streamQueueBytesMax})`,
        ),
      );
      return false;
    }
    if (ch.streamQueuedBytes > lim.channelStreamQueueBytesMax) {
      this.terminate(
        new EtcdError(
          GrpcCode.ResourceExhausted,
          `etcdserver: the client process's streams hold ${ch.streamQueuedBytes} bytes (limit ${lim.channelStreamQueueBytesMax})`,
        ),
      );
      return false;
    }
    return this.queuedBytes < lim.streamQueueBytesHigh;
  }

  drained(): Promise<void> {
    if (this.writable || this._done) return Promise.resolve();
    return new Promise<void>((resolve) => (this.drainWaiters ??= []).push(resolve));
  }

  /** Ends the stream: OK, or `err`'s status, after the messages written before it. */
  end(err?: unknown): void {
    if (this._done) return;
    this._done = true;
    this.endPending = err === undefined || err === null ? null : toEtcdError(err);
    this.cancelHooks = undefined;
    this.inbound = undefined;
    this.wakeDrainWaiters();
    if (this.queue === undefined) this.sendEnd();
  }

  // ---- RpcBidiStream: requests ----

  set onMessage(fn: ((m: unknown) => void) | undefined) {
    this._onMessage = fn;
    if (fn !== undefined) this.flushInbound();
  }
  get onMessage(): ((m: unknown) => void) | undefined {
    return this._onMessage;
  }

  set onHalfClose(fn: (() => void) | undefined) {
    this._onHalfClose = fn;
    if (fn !== undefined) this.flushInbound();
  }
  get onHalfClose(): (() => void) | undefined {
    return this._onHalfClose;
  }

  pause(): void {
    this.inboundPaused = true;
  }

  resume(): void {
    this.inboundPaused = false;
    this.flushInbound();
  }

  // ---- driven by the channel ----

  /** @internal A Credit frame: send what waits. */
  _credit(bytes: number): void {
    this.sendCredit += bytes;
    this._flush();
  }

  /** @internal Moves queued frames to the channel's writer while credit and the writer allow. */
  _flush(): void {
    const q = this.queue;
    if (q === undefined || this.gone) return;
    const ch = this.ch;
    while (q.length > 0 && this.sendCredit > 0 && ch._writerHasRoom()) {
      const frame = q.shift()!;
      ch._writeFrame(frame);
      this.sendCredit -= frame.length - MESSAGE_HEAD_BYTES;
      this.queuedBytes -= frame.length;
      ch._streamQueued(this, -frame.length);
    }
    if (q.length === 0) {
      this.queue = undefined;
      if (this.endPending !== undefined) this.sendEnd();
    }
    if (this.queuedBytes < ch.streamLimits.streamQueueBytesHigh) this.wakeDrainWaiters();
  }

  /** @internal A request message; false if the client process sent past its credit (a broken channel). */
  _message(body: Buffer): boolean {
    if (this.recvCredit <= 0 || this.rpc.kind !== 'bidi') return false;
    this.recvCredit -= body.length;
    if (this._done) {
      this.consumed(body.length);
      return true;
    }
    let req: unknown;
    try {
      req = this.rpc.desc.decodeRequest(body);
      this.rpc.validate(req, this.ch.limits);
    } catch (err) {
      this.terminate(
        err instanceof EtcdError ? err : new EtcdError(GrpcCode.Internal, `grpc: error unmarshalling request: ${(err as Error).message}`),
      );
      return true;
    }
    if (this._onMessage !== undefined && !this.inboundPaused && this.inbound === undefined) this.deliver(req, body.length);
    else (this.inbound ??= []).push(req, body.length);
    return true;
  }

  /** @internal The client half-closed. */
  _halfClose(): void {
    if (this._done) return;
    if (this._onHalfClose !== undefined && this.inbound === undefined && !this.inboundPaused) this.callHalfClose();
    else this.halfClosePending = true;
  }

  /** @internal The stream is over without serve deciding (Cancel frame, the channel closed). */
  _cancel(reason: EtcdError): void {
    if (this.gone) return;
    this.gone = true;
    this.dropQueue();
    const decided = this._done;
    this._done = true;
    this.inbound = undefined;
    this.wakeDrainWaiters();
    if (!decided) this.fireCancel(reason);
  }

  // ---- private ----

  /** Ends the stream now with `reason`, dropping what is queued, and tells the producer (it did not decide). */
  private terminate(reason: EtcdError): void {
    if (this.gone) return;
    const decided = this._done;
    this.dropQueue();
    this._done = true;
    this.inbound = undefined;
    this.endPending = reason;
    this.sendEnd();
    this.wakeDrainWaiters();
    if (!decided) this.fireCancel(reason);
  }

  private sendEnd(): void {
    if (this.gone) return;
    this.gone = true;
    const e = this.endPending;
    if (e === null || e === undefined) this.ch._endStream(this, GrpcCode.OK, '');
    else this.ch._endStream(this, e.code, e.message);
  }

  private dropQueue(): void {
    if (this.queue === undefined) return;
    this.ch._streamQueued(this, -this.queuedBytes);
    this.queue = undefined;
    this.queuedBytes = 0;
  }

  private fireCancel(reason: EtcdError): void {
    this.cancelReason = reason;
    const hooks = this.cancelHooks;
    this.cancelHooks = undefined;
    if (hooks === undefined) return;
    for (const fn of hooks) {
      try {
        fn(reason);
      } catch (err) {
        this.ch._hookFailed(err);
      }
    }
  }

  private wakeDrainWaiters(): void {
    const w = this.drainWaiters;
    if (w === undefined) return;
    this.drainWaiters = undefined;
    for (const resolve of w) resolve();
  }

  private deliver(req: unknown, bytes: number): void {
    try {
      this._onMessage!(req);
    } catch (err) {
      this.end(err);
    }
    this.consumed(bytes);
  }

  private consumed(bytes: number): void {
    this.recvUngranted += bytes;
    if (this.recvUngranted < CREDIT_BATCH_BYTES || this.gone) return;
    this.ch._grant(this, this.recvUngranted);
    this.recvCredit += this.recvUngranted;
    this.recvUngranted = 0;
  }

  private flushInbound(): void {
    const q = this.inbound;
    if (q !== undefined) {
      while (q.length > 0 && this._onMessage !== undefined && !this.inboundPaused && !this._done) {
        const req = q.shift();
        const bytes = q.shift() as number;
        this.deliver(req, bytes);
      }
      if (q.length > 0) return;
      this.inbound = undefined;
    }
    if (this.halfClosePending && this._onHalfClose !== undefined && !this.inboundPaused && !this._done) {
      this.halfClosePending = false;
      this.callHalfClose();
    }
  }

  private callHalfClose(): void {
    try {
      this._onHalfClose!();
    } catch (err) {
      this.end(err);
    }
  }
}

/** Ends a stream when the promise its serve returned settles (no closure per stream). */
export async function endWhenSettled(stream: MemberStream, pending: Promise<void>): Promise<void> {
  try {
    await pending;
  } catch (err) {
    stream.end(err ?? new EtcdError(GrpcCode.Unknown, 'etcdserver: unknown error'));
    return;
  }
  stream.end();
}
