// The etcd v3 gRPC services of a member that serves its clients itself (--client-workers 0): every RPC
// of rpc.ts registered on the in-process gRPC server, validated before it is served, as etcd's v3rpc
// does, so a bad request never reaches the log.
import type { GrpcServer, ServerCall, UnaryHandler } from './grpc/server.js';
import type { MemberApi } from '../server/member_api.js';
import { UNARY_RPCS, rpcLimitsOf, serveWatch, type AnyUnaryRpc, type RpcLimits } from './rpc.js';
import { Watch } from '../proto/rpc.js';

/** One handler per method (not per request): validate, then serve. */
class InProcessHandler {
  constructor(private readonly rpc: AnyUnaryRpc, private readonly s: MemberApi, private readonly limits: RpcLimits) {}

  readonly handle = (req: unknown, _call: ServerCall): unknown => {
    this.rpc.validate(req, this.limits);
    return this.rpc.serve(this.s, req);
  };
}

/** Registers KV, Maintenance (Status, Alarm) and Cluster (MemberList) on a gRPC server. */
export function registerServices(grpc: GrpcServer, s: MemberApi): void {
  const limits = rpcLimitsOf(s);
  for (const rpc of UNARY_RPCS) {
    grpc.unary(rpc.desc, new InProcessHandler(rpc, s, limits).handle as UnaryHandler<unknown, unknown>);
  }
  grpc.bidi(Watch.methods.Watch, (stream, call) => serveWatch(s, stream, call));
}
