// The etcd v3 gRPC services of a member that serves its clients itself (--client-workers 0): every RPC
// of rpc.ts registered on the in-process gRPC server by its kind, validated before it is served, as
// etcd's v3rpc does, so a bad request never reaches the log. The gRPC call is the RPC's context.
import type { BidiHandler, GrpcServer, ServerCall, ServerStreamHandler, ServerWriter, UnaryHandler } from './grpc/server.js';
import type { MemberApi } from '../server/member_api.js';
import { toEtcdError } from '../errors.js';
import {
  RPCS,
  rpcLimitsOf,
  type AnyBidiRpc,
  type AnyRpc,
  type AnyServerStreamRpc,
  type AnyUnaryRpc,
  type RpcBidiStream,
  type RpcLimits,
} from './rpc.js';

/** One handler per method (not per request): validate, then serve. */
class InProcessUnary {
  constructor(
    private readonly rpc: AnyUnaryRpc,
    private readonly s: MemberApi,
    private readonly limits: RpcLimits,
  ) {}

  readonly handle = (req: unknown, call: ServerCall): unknown => {
    this.rpc.validate(req, this.limits);
    return this.rpc.serve(this.s, req, call);
  };
}

class InProcessServerStream {
  constructor(
    private readonly rpc: AnyServerStreamRpc,
    private readonly s: MemberApi,
    private readonly limits: RpcLimits,
  ) {}

  readonly handle = (req: unknown, out: ServerWriter<unknown>, call: ServerCall): void | Promise<void> => {
    this.rpc.validate(req, this.limits);
    return this.rpc.serve(this.s, req, out, call);
  };
}

class InProcessBidi {
  constructor(
    private readonly rpc: AnyBidiRpc,
    private readonly s: MemberApi,
    private readonly limits: RpcLimits,
  ) {}

  readonly handle = (_stream: unknown, call: ServerCall): void | Promise<void> => {
    return this.rpc.serve(this.s, new ValidatedBidi(call, this.rpc, this.limits), call);
  };
}

/** A bidi call whose request messages pass the RPC's validate before serve's onMessage sees them (one per stream). */
class ValidatedBidi implements RpcBidiStream<unknown, unknown> {
  private fn: ((m: unknown) => void) | undefined = undefined;

  constructor(
    private readonly call: ServerCall,
    private readonly rpc: AnyBidiRpc,
    private readonly limits: RpcLimits,
  ) {}

  // A message that fails validation ends the call with its status; serve did not decide that, so it
  // hears of it through ctx.onCancel, as with client processes.
  private readonly deliver = (m: unknown): void => {
    try {
      this.rpc.validate(m, this.limits);
    } catch (err) {
      const e = toEtcdError(err);
      this.call._cancel(e.code, e.message, true);
      return;
    }
    this.fn?.(m);
  };

  set onMessage(fn: ((m: unknown) => void) | undefined) {
    this.fn = fn;
    this.call.onMessage = fn === undefined ? undefined : this.deliver;
  }
  get onMessage(): ((m: unknown) => void) | undefined {
    return this.fn;
  }
  set onHalfClose(fn: (() => void) | undefined) {
    this.call.onHalfClose = fn;
  }
  get onHalfClose(): (() => void) | undefined {
    return this.call.onHalfClose;
  }
  get writable(): boolean {
    return this.call.writable;
  }
  get done(): boolean {
    return this.call.done;
  }
  write(m: unknown): boolean {
    return this.call.write(m);
  }
  /** `messages` gRPC-framed responses back to back (the watch fan-out pool's output). */
  writeFramed(framed: Uint8Array, messages: number): boolean {
    return this.call.writeFramed(framed, messages);
  }
  drained(): Promise<void> {
    return this.call.drained();
  }
  end(err?: unknown): void {
    this.call.end(err);
  }
  pause(): void {
    this.call.pause();
  }
  resume(): void {
    this.call.resume();
  }
}

/**
 * Registers every RPC of `rpcs` (the production table unless a test passes its own) on a gRPC server.
 *
 *   registerServices(grpc, server);
 */
export function registerServices(grpc: GrpcServer, s: MemberApi, rpcs: readonly AnyRpc[] = RPCS): void {
  const limits = rpcLimitsOf(s);
  for (const rpc of rpcs) {
    switch (rpc.kind) {
      case 'unary':
        grpc.unary(rpc.desc, new InProcessUnary(rpc, s, limits).handle as UnaryHandler<unknown, unknown>);
        break;
      case 'serverStream':
        grpc.serverStream(rpc.desc, new InProcessServerStream(rpc, s, limits).handle as ServerStreamHandler<unknown, unknown>);
        break;
      case 'bidi':
        grpc.bidi(rpc.desc, new InProcessBidi(rpc, s, limits).handle as BidiHandler<unknown, unknown>);
        break;
    }
  }
}
