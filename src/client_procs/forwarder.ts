// The client process's end of the channel to the member: every RPC of api/rpc.ts is registered on the
// process's gRPC server by its kind as a forwarding handler that validates requests here (etcd's checks
// and --max-request-bytes, so bad input never reaches the member) and sends their raw bytes: a unary
// call in a Call frame answered by the member's Reply, a stream as Open/Message/HalfClose/Cancel frames
// answered by Message/End. Calls and streams in flight are bounded; each stream's member → client
// direction is paced by Credit frames granted as the gRPC client drains its HTTP/2 stream, and its
// client → member direction by the member's Credit (the gRPC client is paused meanwhile).
import type { Duplex } from 'node:stream';
import {
  DEFERRED,
  ServerCall,
  type BidiHandler,
  type GrpcServer,
  type ServerStreamHandler,
  type ServerWriter,
  type UnaryHandler,
} from '../api/grpc/server.js';
import { RPCS, type AnyBidiRpc, type AnyRpc, type AnyServerStreamRpc, type AnyUnaryRpc, type RpcLimits } from '../api/rpc.js';
import type { HttpBackend } from '../api/http.js';
import { EtcdError, Errors, GrpcCode, toEtcdError } from '../errors.js';
import { sizeVarint32, sizeVarintBig } from '../proto/wire.js';
import {
  FrameKind,
  FrameReader,
  FrameWriter,
  ContextSizer,
  FRAME_BYTES_MAX,
  REPLY_HEAD_BYTES,
  FAIL_HEAD_BYTES,
  MESSAGE_HEAD_BYTES,
  CREDIT_BYTES,
  STREAM_WINDOW_BYTES,
  type FrameSink,
  type WireContext,
} from './channel.js';
import { ChannelMethods, InternalMethod } from './methods.js';
import { readWatchBatch } from './watch_batch.js';
import { KeepAliveStreams, type KeepAliveCall, type KeepAliveMember } from './keepalive_streams.js';
import { Lease } from '../proto/rpc.js';

/** Limits of the client side of a channel. */
export interface ForwarderLimits {
  /** Calls waiting for the member; beyond it new calls get ErrTooManyRequests. */
  callsInFlightMax: number;
  /** Call bytes queued towards the member; beyond it new calls get ErrTooManyRequests. */
  callQueueBytesMax: number;
  /** Streams open on this channel; beyond it new streams get ErrTooManyRequests. */
  streamsOpenMax: number;
  /**
   * Request bytes of one bidi stream held here while the member has granted no credit (what the gRPC
   * client sent before the pause took effect); past it the stream ends with RESOURCE_EXHAUSTED.
   */
  streamPendingBytesMax: number;
}

/** Defaults: as many calls as the member's end of a channel holds (member_channel.ts). */
export const FORWARDER_DEFAULTS: ForwarderLimits = {
  callsInFlightMax: 100_000,
  callQueueBytesMax: 64 * 1024 * 1024,
  streamsOpenMax: 100_000,
  streamPendingBytesMax: 4 * 1024 * 1024,
};

/** Credit is granted back to the member in batches of at least this many bytes (or when the gRPC stream drains). */
const CREDIT_BATCH_BYTES = STREAM_WINDOW_BYTES / 4;

/** What the member told its client processes about itself (fixed for the member's life). */
export interface ForwarderIdentity {
  /** The member ID: request IDs carry its low 16 bits, which fixes the size of a proposal's envelope. */
  memberId: bigint;
}

/** A call of an internal method (HTTP endpoints), waiting for its reply. */
class InternalWaiter {
  constructor(
    readonly resolve: (body: Buffer) => void,
    readonly reject: (err: EtcdError) => void,
  ) {}
}

type Pending = ServerCall | InternalWaiter;

/**
 * Bytes of the Raft entry a request of `bodyBytes` becomes on the member (api/../server/proposal.ts:
 * InternalRequest{ID, <request field>}), so --max-request-bytes can be checked before forwarding.
 */
export function proposalBytes(bodyBytes: number, idBytes: number): number {
  return 1 + idBytes + 1 + sizeVarint32(bodyBytes) + bodyBytes;
}

/** Varint bytes of the member's request IDs: its low 16 bits on top of a 48-bit counter (server/idgen.ts). */
export function requestIdBytes(memberId: bigint): number {
  // The smallest ID the member can hand out with these top bits; the counter part is below 2^48.
  const prefix = (memberId & 0xffffn) << 48n;
  return prefix === 0n ? 1 : sizeVarintBig(prefix);
}

/** One method's forwarding handler (one object per method, not per call). */
class ForwardHandler {
  constructor(
    private readonly fwd: Forwarder,
    private readonly rpc: AnyUnaryRpc,
    private readonly method: number,
  ) {}

  readonly handle = (req: unknown, call: ServerCall): typeof DEFERRED => {
    const fwd = this.fwd;
    this.rpc.validate(req, fwd.limits);
    const body = call.requestBytes;
    if (body === undefined) throw new Error('assertion failed: a unary call without its request bytes');
    if (this.rpc.proposes(req) && proposalBytes(body.length, fwd.idBytes) > fwd.limits.maxRequestBytes) throw Errors.RequestTooLarge();
    fwd.forward(call, this.method, body);
    return DEFERRED;
  };
}

/**
 * A unary method that may wait without bound (Lock, Campaign): forwarded as a stream, so that a client
 * that gives up cancels it on the member (a Call is never cancelled there); its one response answers the call.
 */
class ForwardWaitingHandler {
  constructor(
    private readonly fwd: Forwarder,
    private readonly rpc: AnyUnaryRpc,
    private readonly method: number,
  ) {}

  readonly handle = (req: unknown, call: ServerCall): typeof DEFERRED => {
    this.rpc.validate(req, this.fwd.limits);
    const body = call.requestBytes;
    if (body === undefined) throw new Error('assertion failed: a unary call without its request bytes');
    this.fwd.openStream(call, this.method, this.rpc, body);
    return DEFERRED;
  };
}

/** A server-streaming method's forwarding handler: validate the request, open the stream with it. */
class ForwardServerStreamHandler {
  constructor(
    private readonly fwd: Forwarder,
    private readonly rpc: AnyServerStreamRpc,
    private readonly method: number,
  ) {}

  readonly handle = (req: unknown, _out: ServerWriter<unknown>, call: ServerCall): void => {
    this.rpc.validate(req, this.fwd.limits);
    const body = call.requestBytes;
    if (body === undefined) throw new Error('assertion failed: a server-streaming call without its request bytes');
    this.fwd.openStream(call, this.method, this.rpc, body);
  };
}

/** A bidi method's forwarding handler: open the stream; its messages follow as they arrive. */
class ForwardBidiHandler {
  constructor(
    private readonly fwd: Forwarder,
    private readonly rpc: AnyBidiRpc,
    private readonly method: number,
  ) {}

  readonly handle = (_stream: unknown, call: ServerCall): void => {
    this.fwd.openStream(call, this.method, this.rpc, EMPTY);
  };
}

/** LeaseKeepAlive served here; its renewals go to the member in batches (keepalive_streams.ts). */
class KeepAliveHandler {
  constructor(private readonly fwd: Forwarder) {}

  readonly handle = (_stream: unknown, call: ServerCall): void => {
    this.fwd._openKeepAlive(call);
  };
}

/** One forwarded stream, on the client process's side (one object per stream). */
export class ForwardedStream {
  /** Request bytes we may still send to the member before it grants more (Credit). */
  sendCredit = STREAM_WINDOW_BYTES;
  /** Response bytes received and handed to the gRPC stream, not yet granted back to the member. */
  ungrantedBytes = 0;
  /** Request messages waiting for the member's credit (copies), and their bytes. */
  pending: Buffer[] | undefined = undefined;
  pendingBytes = 0;
  halfClosePending = false;
  /** The gRPC stream is paused because the member has granted no credit. */
  paused = false;
  /** A drained() wait is running: credit follows when the gRPC stream drains. */
  waitingDrain = false;
  /** A leader guard (InternalMethod.LeaderGuard): its End goes here, not to `call`. */
  guarded: ((err: EtcdError) => void) | undefined = undefined;

  constructor(
    readonly fwd: Forwarder,
    readonly id: number,
    readonly call: ServerCall,
    readonly rpc: AnyRpc,
  ) {}

  /** The gRPC call ended without the member's End (client gone, deadline, shutdown, bad message). */
  readonly onCancel = (reason: EtcdError): void => {
    this.fwd._streamCancelled(this, reason);
  };

  /** Bidi: a request message from the gRPC client. */
  readonly onMessage = (req: unknown): void => {
    try {
      this.rpc.validate(req, this.fwd.limits);
    } catch (err) {
      this.fwd._abortStream(this, err);
      return;
    }
    const body = this.call.requestBytes;
    if (body === undefined) throw new Error('assertion failed: a bidi message without its bytes');
    this.fwd._sendMessage(this, body);
  };

  /** Bidi: the gRPC client sent its last message. */
  readonly onHalfClose = (): void => {
    this.fwd._sendHalfClose(this);
  };

  /** The gRPC stream drained below its soft limit: give the member its window back. */
  readonly onDrained = (): void => {
    this.waitingDrain = false;
    this.fwd._grant(this);
  };
}

/**
 * Forwards calls to the member over one channel.
 *
 *   const fwd = new Forwarder(channelSocket, { maxTxnOps: 128, maxRequestBytes: 1.5 * 2 ** 20 }, { memberId });
 *   fwd.register(grpcServer);
 *   fwd.onClose = () => process.exit(1);
 */
export class Forwarder implements FrameSink {
  /** Called once when the channel to the member is gone. */
  onClose: (() => void) | undefined = undefined;
  readonly limits: RpcLimits;
  /** Varint bytes of a request ID on this member. */
  readonly idBytes: number;

  private readonly reader: FrameReader;
  private readonly writer: FrameWriter;
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, ForwardedStream>();
  private nextCallId = 1;
  private nextStreamId = 1;
  private closed = false;
  private readonly methods: ChannelMethods;
  private readonly sizer = new ContextSizer();
  private readonly wireCtx: WireContext = { token: undefined, certCommonName: undefined, peerAddress: undefined, requireLeader: false };
  /** Keep-alive streams served here (undefined: forwarded as streams, as before them; tests compare). */
  readonly keepAlives: KeepAliveStreams | undefined;
  /** The table's LeaseKeepAlive entry (leader guards take its shape). */
  private readonly keepAliveRpc: AnyRpc;

  constructor(
    private readonly socket: Duplex,
    limits: RpcLimits,
    identity: ForwarderIdentity,
    private readonly forwarderLimits: ForwarderLimits = FORWARDER_DEFAULTS,
    methods: ChannelMethods = new ChannelMethods(RPCS),
    options: { keepAliveBatches?: boolean } = {},
  ) {
    this.keepAlives =
      (options.keepAliveBatches ?? true) ? new KeepAliveStreams(this.keepAliveMember(), forwarderLimits.streamPendingBytesMax) : undefined;
    this.methods = methods;
    this.keepAliveRpc = RPCS.find((r) => r.desc.path === Lease.methods.LeaseKeepAlive.path)!;
    this.limits = limits;
    this.idBytes = requestIdBytes(identity.memberId);
    this.reader = new FrameReader(this, FRAME_BYTES_MAX);
    this.writer = new FrameWriter(socket);
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('error', noop);
    socket.on('close', () => this.closeNow(Errors.Stopped()));
  }

  /** Calls waiting for the member. */
  get callsInFlight(): number {
    return this.pending.size;
  }

  /** Streams open on the channel. */
  get streamsOpen(): number {
    return this.streams.size;
  }

  /** Registers a forwarding handler for every RPC of the channel's table on `grpc`, by kind. */
  register(grpc: GrpcServer): void {
    for (const { id, rpc } of this.methods.entries) {
      switch (rpc.kind) {
        case 'unary':
          if (rpc.waits === true) grpc.unary(rpc.desc, new ForwardWaitingHandler(this, rpc, id).handle as UnaryHandler<unknown, unknown>);
          else grpc.unary(rpc.desc, new ForwardHandler(this, rpc, id).handle as UnaryHandler<unknown, unknown>);
          break;
        case 'serverStream':
          grpc.serverStream(rpc.desc, new ForwardServerStreamHandler(this, rpc, id).handle as ServerStreamHandler<unknown, unknown>);
          break;
        case 'bidi':
          if (rpc.desc.path === Lease.methods.LeaseKeepAlive.path && this.keepAlives !== undefined)
            grpc.bidi(rpc.desc, new KeepAliveHandler(this).handle as BidiHandler<unknown, unknown>);
          else grpc.bidi(rpc.desc, new ForwardBidiHandler(this, rpc, id).handle as BidiHandler<unknown, unknown>);
          break;
      }
    }
  }

  /** The HTTP endpoints' answers, from the member. */
  httpBackend(): HttpBackend {
    return {
      healthy: () =>
        this.callInternal(InternalMethod.Health).then(
          (b) => b.length === 1 && b[0] === 1,
          () => false,
        ),
      metricsText: () => this.callInternal(InternalMethod.Metrics).then((b) => b.toString('utf8')),
    };
  }

  /** Sends a validated call's request to the member; its reply answers the call. Throws when over the limits. */
  forward(call: ServerCall, method: number, body: Uint8Array): void {
    const callId = this.admit();
    const token = call.token;
    const cn = call.certCommonName;
    if (token === undefined && cn === undefined) {
      this.pending.set(callId, call);
      this.writer.writeCall(callId, method, remainingMs(call.deadlineMs), body);
      return;
    }
    // With credentials the member also learns the peer (the Security issue logs and checks them).
    this.sizeContext(token, cn, call.peerAddress, false);
    this.pending.set(callId, call);
    this.writer.writeCallWithContext(FrameKind.Call, callId, method, remainingMs(call.deadlineMs), this.wireCtx, this.sizer, body);
  }

  /**
   * Opens a stream on the member for a streaming gRPC call (the request bytes of a server stream, or
   * nothing for bidi) and wires the call to it. Throws (and the call fails) when over the limits.
   */
  openStream(call: ServerCall, method: number, rpc: AnyRpc, body: Uint8Array): void {
    if (this.closed) throw Errors.Stopped();
    const lim = this.forwarderLimits;
    if (this.streams.size >= lim.streamsOpenMax || this.writer.pendingBytes >= lim.callQueueBytesMax) throw Errors.TooManyRequests();
    let id = this.nextStreamId;
    while (this.streams.has(id)) id = (id + 1) >>> 0 || 1;
    this.nextStreamId = (id + 1) >>> 0 || 1;
    this.sizeContext(call.token, call.certCommonName, call.peerAddress, call.requireLeader);
    const s = new ForwardedStream(this, id, call, rpc);
    this.streams.set(id, s);
    this.writer.writeCallWithContext(FrameKind.Open, id, method, remainingMs(call.deadlineMs), this.wireCtx, this.sizer, body);
    call.onCancel(s.onCancel);
    if (rpc.kind === 'bidi') {
      call.onMessage = s.onMessage;
      call.onHalfClose = s.onHalfClose;
    }
  }

  /** @internal Serves a LeaseKeepAlive call here. Throws (the call fails) when over the limits. */
  _openKeepAlive(call: ServerCall): void {
    if (this.closed) throw Errors.Stopped();
    const ka = this.keepAlives!;
    if (this.streams.size + ka.size >= this.forwarderLimits.streamsOpenMax) throw Errors.TooManyRequests();
    ka.open(call as unknown as KeepAliveCall);
  }

  /** The member as the keep-alive streams see it: a batch is a Call of an internal method. */
  private keepAliveMember(): KeepAliveMember {
    return {
      renewBatch: (body) => this.callInternal(InternalMethod.LeaseKeepAlives, body),
      flush: () => this.writer.flush(),
      guardLeader: (call, lost) => this.openLeaderGuard(call as unknown as ServerCall, lost),
    };
  }

  /** Opens a LeaderGuard stream on the member; its End (no leader) calls `lost`. Returns its cancel. */
  private openLeaderGuard(call: ServerCall, lost: (err: EtcdError) => void): () => void {
    if (this.closed) throw Errors.Stopped();
    if (
      this.streams.size + (this.keepAlives?.size ?? 0) >= this.forwarderLimits.streamsOpenMax ||
      this.writer.pendingBytes >= this.forwarderLimits.callQueueBytesMax
    )
      throw Errors.TooManyRequests();
    let id = this.nextStreamId;
    while (this.streams.has(id)) id = (id + 1) >>> 0 || 1;
    this.nextStreamId = (id + 1) >>> 0 || 1;
    const c = this.wireCtx;
    c.token = undefined;
    c.certCommonName = undefined;
    c.peerAddress = undefined;
    c.requireLeader = true;
    this.sizer.size(c);
    const s = new ForwardedStream(this, id, call, this.keepAliveRpc);
    s.guarded = lost;
    this.streams.set(id, s);
    this.writer.writeCallWithContext(FrameKind.Open, id, InternalMethod.LeaderGuard, 0, c, this.sizer, EMPTY);
    return () => this._streamCancelled(s, GUARD_DONE);
  }

  /** @internal The gRPC call of a stream is over without the member's End: tell the member. */
  _streamCancelled(s: ForwardedStream, reason: EtcdError): void {
    if (this.streams.get(s.id) !== s) return;
    this.streams.delete(s.id);
    if (!this.closed) this.writer.writeStatus(FrameKind.Cancel, s.id, reason.code, reason.message);
  }

  /** @internal Ends a stream here with `err` and cancels it on the member. */
  _abortStream(s: ForwardedStream, err: unknown): void {
    const e = toEtcdError(err);
    this._streamCancelled(s, e);
    s.call.end(e);
  }

  /** @internal Sends a bidi request message, or holds it until the member grants credit. */
  _sendMessage(s: ForwardedStream, body: Uint8Array): void {
    if (this.streams.get(s.id) !== s) return;
    if (s.pending === undefined && s.sendCredit > 0) {
      if (this.writer.pendingBytes >= this.forwarderLimits.callQueueBytesMax) {
        this._abortStream(s, Errors.TooManyRequests());
        return;
      }
      this.writer.writeMessage(s.id, body);
      s.sendCredit -= body.length;
    } else {
      // Messages already parsed from the gRPC client's last DATA frames arrive after pause(): hold copies.
      if (s.pendingBytes + body.length > this.forwarderLimits.streamPendingBytesMax) {
        this._abortStream(
          s,
          new EtcdError(
            GrpcCode.ResourceExhausted,
            `etcdserver: stream holds over ${this.forwarderLimits.streamPendingBytesMax} request bytes`,
          ),
        );
        return;
      }
      (s.pending ??= []).push(Buffer.from(body));
      s.pendingBytes += body.length;
    }
    if (s.sendCredit <= 0 && !s.paused) {
      s.paused = true;
      s.call.pause();
    }
  }

  /** @internal */
  _sendHalfClose(s: ForwardedStream): void {
    if (this.streams.get(s.id) !== s) return;
    if (s.pending !== undefined) s.halfClosePending = true;
    else this.writer.writeHalfClose(s.id);
  }

  /** @internal Grants the member the response bytes the gRPC stream has taken. */
  _grant(s: ForwardedStream): void {
    if (s.ungrantedBytes === 0 || this.streams.get(s.id) !== s || this.closed) return;
    this.writer.writeCredit(s.id, s.ungrantedBytes);
    s.ungrantedBytes = 0;
  }

  private sizeContext(token: string | undefined, cn: string | undefined, peer: string, requireLeader: boolean): void {
    const c = this.wireCtx;
    c.requireLeader = requireLeader;
    c.token = token;
    c.certCommonName = cn;
    c.peerAddress = peer;
    try {
      this.sizer.size(c);
    } catch {
      throw Errors.InvalidAuthToken();
    }
  }

  /** Calls an internal method; resolves with the reply body. */
  callInternal(method: number, body: Uint8Array = EMPTY): Promise<Buffer> {
    let callId: number;
    try {
      callId = this.admit();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(callId, new InternalWaiter(resolve, reject));
      this.writer.writeCall(callId, method, 0, body);
    });
  }

  /** Fails every waiting call and stops; the member is gone. */
  destroy(): void {
    this.socket.destroy();
    this.closeNow(Errors.Stopped());
  }

  onBadFrame(reason: string): void {
    this.closeNow(Errors.Unknown(`etcdserver: malformed reply from the member: ${reason}`));
    this.socket.destroy();
  }

  onFrame(buf: Buffer, start: number, end: number): void {
    const kind = buf[start];
    if (end - start < REPLY_HEAD_BYTES - 4) {
      this.onBadFrame(`frame of ${end - start} bytes`);
      return;
    }
    if (kind === FrameKind.WatchEvents) {
      const bad = readWatchBatch(buf, start, end, this.routeBound);
      if (bad !== undefined) this.onBadFrame(bad);
      return;
    }
    if (kind >= FrameKind.Open) {
      this.onStreamFrame(kind, buf, start, end);
      return;
    }
    const callId = buf.readUInt32BE(start + 1);
    const p = this.pending.get(callId);
    if (p === undefined) {
      this.onBadFrame(`reply to unknown call ${callId}`);
      return;
    }
    this.pending.delete(callId);
    if (kind === FrameKind.Reply) {
      const body = buf.subarray(start + REPLY_HEAD_BYTES - 4, end);
      if (p instanceof ServerCall) p.respondFramed(body);
      else p.resolve(body);
    } else if (kind === FrameKind.Fail && end - start >= FAIL_HEAD_BYTES - 4) {
      const code = buf[start + 5];
      const message = buf.toString('utf8', start + FAIL_HEAD_BYTES - 4, end);
      const err = new EtcdError(code <= GrpcCode.Unauthenticated ? (code as GrpcCode) : GrpcCode.Unknown, message);
      if (p instanceof ServerCall) p.fail(err);
      else p.reject(err);
    } else {
      this.onBadFrame(`unexpected frame kind ${kind}`);
    }
  }

  // Frames of a stream may arrive after the stream ended here (our Cancel crossed the member's frames):
  // those are dropped, not errors.
  private onStreamFrame(kind: number, buf: Buffer, start: number, end: number): void {
    const id = buf.readUInt32BE(start + 1);
    const s = this.streams.get(id);
    switch (kind) {
      case FrameKind.Message: {
        if (s === undefined) return;
        if (s.guarded !== undefined) break;
        const framed = buf.subarray(start + MESSAGE_HEAD_BYTES - 4, end);
        if (s.rpc.kind === 'unary') {
          // A waiting unary call's one response (its End follows).
          s.call.respondFramed(framed);
          return;
        }
        this.deliver(s, framed);
        return;
      }
      case FrameKind.End: {
        if (end - start < FAIL_HEAD_BYTES - 4) break;
        if (s === undefined) return;
        this.streams.delete(id);
        const code = buf[start + 5];
        if (s.guarded !== undefined) {
          s.guarded(
            new EtcdError(
              code <= GrpcCode.Unauthenticated && code !== GrpcCode.OK ? (code as GrpcCode) : GrpcCode.Unavailable,
              code === GrpcCode.OK ? 'etcdserver: no leader' : buf.toString('utf8', start + FAIL_HEAD_BYTES - 4, end),
            ),
          );
        } else if (s.rpc.kind === 'unary') {
          if (code !== GrpcCode.OK)
            s.call.fail(
              new EtcdError(
                code <= GrpcCode.Unauthenticated ? (code as GrpcCode) : GrpcCode.Unknown,
                buf.toString('utf8', start + FAIL_HEAD_BYTES - 4, end),
              ),
            );
          else if (!s.call.done) s.call.fail(new EtcdError(GrpcCode.Internal, 'grpc: the member ended a unary call without a response'));
        } else if (code === GrpcCode.OK) {
          s.call.end();
        } else {
          const message = buf.toString('utf8', start + FAIL_HEAD_BYTES - 4, end);
          s.call.end(new EtcdError(code <= GrpcCode.Unauthenticated ? (code as GrpcCode) : GrpcCode.Unknown, message));
        }
        return;
      }
      case FrameKind.Credit: {
        if (end - start !== CREDIT_BYTES - 4) break;
        if (s === undefined) return;
        s.sendCredit += buf.readUInt32BE(start + 5);
        this.flushPending(s);
        return;
      }
    }
    this.onBadFrame(`unexpected frame kind ${kind} of ${end - start} bytes`);
  }

  /** Responses of a stream (a Message's, or `messages` rebuilt from a WatchEvents frame) to its gRPC call. */
  private deliver(s: ForwardedStream, framed: Uint8Array, messages = 1): void {
    const call = s.call;
    call.writeFramed(framed, messages);
    s.ungrantedBytes += framed.length;
    if (call.writable) {
      if (s.ungrantedBytes >= CREDIT_BATCH_BYTES) this._grant(s);
    } else if (!s.waitingDrain && !call.done) {
      // The gRPC client reads slower than the member sends: the window comes back as it drains.
      s.waitingDrain = true;
      void call.drained().then(s.onDrained);
    }
  }

  /** Responses routed by a WatchEvents frame; those of a stream that already ended here are dropped. */
  private readonly routeBound = (streamId: number, framed: Uint8Array, messages: number): void => {
    const s = this.streams.get(streamId);
    if (s !== undefined) this.deliver(s, framed, messages);
  };

  /** Sends held request messages while there is credit; resumes the gRPC client once all went. */
  private flushPending(s: ForwardedStream): void {
    const q = s.pending;
    if (q !== undefined) {
      while (q.length > 0 && s.sendCredit > 0) {
        const body = q.shift()!;
        s.pendingBytes -= body.length;
        this.writer.writeMessage(s.id, body);
        s.sendCredit -= body.length;
      }
      if (q.length > 0) return;
      s.pending = undefined;
      if (s.halfClosePending) {
        s.halfClosePending = false;
        this.writer.writeHalfClose(s.id);
      }
    }
    if (s.paused && s.sendCredit > 0) {
      s.paused = false;
      s.call.resume();
    }
  }

  /** A fresh call id, or ErrTooManyRequests when the channel is at its limits (or gone). */
  private admit(): number {
    if (this.closed) throw Errors.Stopped();
    if (this.pending.size >= this.forwarderLimits.callsInFlightMax || this.writer.pendingBytes >= this.forwarderLimits.callQueueBytesMax) {
      throw Errors.TooManyRequests();
    }
    let id = this.nextCallId;
    // u32 ids wrap; skip one still in use (after 4 billion calls, a straggler may be).
    while (this.pending.has(id)) id = (id + 1) >>> 0 || 1;
    this.nextCallId = (id + 1) >>> 0 || 1;
    return id;
  }

  private closeNow(err: EtcdError): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.close();
    for (const p of this.pending.values()) {
      if (p instanceof ServerCall) p.fail(err);
      else p.reject(err);
    }
    this.pending.clear();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const s of streams) {
      if (s.guarded === undefined) s.call.end(err);
    }
    this.keepAlives?.close(err);
    const cb = this.onClose;
    this.onClose = undefined;
    if (cb !== undefined) cb();
  }
}

const EMPTY = new Uint8Array(0);
/** Why a leader guard is cancelled: its keep-alive stream is over. */
const GUARD_DONE = new EtcdError(GrpcCode.Canceled, 'context canceled');

/** The u32 timeout a Call or Open carries: ms left until the deadline (at least 1), or 0 for none. */
function remainingMs(deadlineMs: number): number {
  return deadlineMs === Infinity ? 0 : Math.max(1, Math.min(0xffffffff, Math.ceil(deadlineMs - Date.now())));
}

function noop(): void {}
