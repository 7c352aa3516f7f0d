// Method numbers of the client-process channel beyond the gRPC methods (which are their index in
// api/rpc.ts's UNARY_RPCS): the member's answers behind the HTTP/1.1 endpoints.

/** Internal methods; numbers from `First` up are never gRPC methods. */
export const InternalMethod = {
  First: 0xff00,
  /** /health: the reply body is one byte, 1 = healthy. */
  Health: 0xff00,
  /** /metrics: the reply body is the Prometheus text. */
  Metrics: 0xff01,
} as const;
