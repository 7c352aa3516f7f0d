// The client process's end of the channel to the member: every unary RPC of api/rpc.ts is registered on
// the process's gRPC server as a forwarding handler that validates the request here (etcd's checks and
// --max-request-bytes, so bad input never reaches the member), sends its raw bytes in a Call frame and
// answers the gRPC call with the member's reply as it arrives. Calls in flight are bounded.
import type { Duplex } from 'node:stream';
import { DEFERRED, ServerCall, type GrpcServer, type UnaryHandler } from '../api/grpc/server.js';
import { UNARY_RPCS, type AnyUnaryRpc, type RpcLimits } from '../api/rpc.js';
import type { HttpBackend } from '../api/http.js';
import { EtcdError, Errors, GrpcCode } from '../errors.js';
import { sizeVarint32, sizeVarintBig } from '../proto/wire.js';
import { FrameKind, FrameReader, FrameWriter, FRAME_BYTES_MAX, REPLY_HEAD_BYTES, FAIL_HEAD_BYTES, type FrameSink } from './channel.js';
import { InternalMethod } from './methods.js';

/** Limits of the client side of a channel. */
export interface ForwarderLimits {
  /** Calls waiting for the member; beyond it new calls get ErrTooManyRequests. */
  callsInFlightMax: number;
  /** Call bytes queued towards the member; beyond it new calls get ErrTooManyRequests. */
  callQueueBytesMax: number;
}

/** Defaults: as many calls as the member's end of a channel holds (member_channel.ts). */
export const FORWARDER_DEFAULTS: ForwarderLimits = {
  callsInFlightMax: 100_000,
  callQueueBytesMax: 64 * 1024 * 1024,
};

/** What the member told its client processes about itself (fixed for the member's life). */
export interface ForwarderIdentity {
  /** The member ID: request IDs carry its low 16 bits, which fixes the size of a proposal's envelope. */
  memberId: bigint;
}

/** A call of an internal method (HTTP endpoints), waiting for its reply. */
class InternalWaiter {
  constructor(readonly resolve: (body: Buffer) => void, readonly reject: (err: EtcdError) => void) {}
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
  constructor(private readonly fwd: Forwarder, private readonly rpc: AnyUnaryRpc, private readonly method: number) {}

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
  private nextCallId = 1;
  private closed = false;

  constructor(
    private readonly socket: Duplex,
    limits: RpcLimits,
    identity: ForwarderIdentity,
    private readonly forwarderLimits: ForwarderLimits = FORWARDER_DEFAULTS,
  ) {
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

  /** Registers a forwarding handler for every unary RPC on `grpc`. */
  register(grpc: GrpcServer): void {
    UNARY_RPCS.forEach((rpc, method) => {
      grpc.unary(rpc.desc, new ForwardHandler(this, rpc, method).handle as UnaryHandler<unknown, unknown>);
    });
  }

  /** The HTTP endpoints' answers, from the member. */
  httpBackend(): HttpBackend {
    return {
      healthy: () => this.callInternal(InternalMethod.Health).then((b) => b.length === 1 && b[0] === 1, () => false),
      metricsText: () => this.callInternal(InternalMethod.Metrics).then((b) => b.toString('utf8')),
    };
  }

  /** Sends a validated call's request to the member; its reply answers the call. Throws when over the limits. */
  forward(call: ServerCall, method: number, body: Uint8Array): void {
    const callId = this.admit();
    this.pending.set(callId, call);
    const remainingMs = call.deadlineMs === Infinity ? 0 : Math.max(1, Math.min(0xffffffff, Math.ceil(call.deadlineMs - Date.now())));
    this.writer.writeCall(callId, method, remainingMs, body);
  }

  /** Calls an internal method; resolves with the reply body. */
  callInternal(method: number): Promise<Buffer> {
    let callId: number;
    try {
      callId = this.admit();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(callId, new InternalWaiter(resolve, reject));
      this.writer.writeCall(callId, method, 0, EMPTY);
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
    const cb = this.onClose;
    this.onClose = undefined;
    if (cb !== undefined) cb();
  }
}

const EMPTY = new Uint8Array(0);

function noop(): void {}
