// What the member knows about the caller of one RPC, however the call arrived: in-process the gRPC
// ServerCall is the context itself (nothing is allocated per call); with client processes the member's
// channel end builds it from what the Call/Open frame carries (client_procs/channel.ts).
import type { EtcdError } from '../errors.js';

/**
 * The per-call context every RPC's serve function receives.
 *
 *   serve(s, req, ctx) {
 *     const user = auth.identify(ctx.token, ctx.certCommonName);   // the Security issue
 *     if (ctx.deadlineMs < Date.now()) throw Errors.Timeout();
 *     ctx.onCancel((reason) => watcher.stop(reason));
 *   }
 */
export interface CallContext {
  /**
   * etcd's auth token as the client sent it: the `token` metadata, else `authorization` (etcd's
   * gRPC gateway name for it). Not checked here: the auth layer decides what it is worth.
   */
  readonly token: string | undefined;
  /** The CN of the client's TLS certificate when the TLS layer verified it; undefined otherwise. */
  readonly certCommonName: string | undefined;
  /** When the client gives up (ms since the epoch, Date.now() clock); Infinity = no deadline. */
  readonly deadlineMs: number;
  /** The client's address (IP as the socket reports it, or '' when it is not known). */
  readonly peerAddress: string;
  /**
   * The client wants the call to fail while the member has no leader (metadata `hasleader: true`, sent
   * by clientv3's WithRequireLeader and by Kubernetes): a stream ends with `etcdserver: no leader`.
   */
  readonly requireLeader: boolean;
  /**
   * True once the call ended without its serve function deciding: the client cancelled or went away,
   * the deadline passed, the server is stopping, or the stream's send queue passed its hard limit.
   */
  readonly cancelled: boolean;
  /**
   * Calls `fn` once when the call is cancelled (see `cancelled`), with the status the call ended with
   * (RESOURCE_EXHAUSTED when a client stopped reading: a watcher then moves to catch-up). Called at
   * once if it already was. A unary call forwarded by a client process is never cancelled on the
   * member: the client process enforces its deadline.
   */
  onCancel(fn: (reason: EtcdError) => void): void;
}

/** The metadata keys of etcd's auth token, in the order etcd looks them up (auth/store.go). */
export const TOKEN_METADATA_KEYS = ['token', 'authorization'] as const;

/** The largest token or certificate CN a context carries across the channel (bytes). */
export const CREDENTIAL_BYTES_MAX = 0xffff;

function noCancel(): void {}

/**
 * A context with fixed values, never cancelled: what the member builds for a unary call forwarded by a
 * client process, and what tests hand to a serve function.
 *
 *   rpc.serve(s, req, new FixedContext({ token: 'abc', deadlineMs: Date.now() + 1000 }));
 */
export class FixedContext implements CallContext {
  readonly token: string | undefined;
  readonly certCommonName: string | undefined;
  readonly deadlineMs: number;
  readonly peerAddress: string;
  readonly requireLeader: boolean;

  constructor(init: Partial<Pick<CallContext, 'token' | 'certCommonName' | 'deadlineMs' | 'peerAddress' | 'requireLeader'>> = {}) {
    this.token = init.token;
    this.certCommonName = init.certCommonName;
    this.deadlineMs = init.deadlineMs ?? Infinity;
    this.peerAddress = init.peerAddress ?? '';
    this.requireLeader = init.requireLeader ?? false;
  }

  get cancelled(): boolean {
    return false;
  }

  onCancel(_fn: (reason: EtcdError) => void): void {
    noCancel();
  }
}

/** The context of a call that carries nothing: no credentials, no deadline, peer unknown. */
export const EMPTY_CONTEXT: CallContext = Object.freeze(new FixedContext());
