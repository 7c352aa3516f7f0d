// What a member and its client processes tell each other outside the channel: the client process's
// configuration (an environment variable set at fork) and the few IPC messages of its life cycle.
import type { GrpcServerOptions } from '../api/grpc/server.js';
import type { RpcLimits } from '../api/rpc.js';
import type { LogLevel } from '../log.js';
import type { V8WorkersSched } from '../v8_workers.js';
import type { TlsFiles } from '../transport/tls.js';
import type { MetricJson } from '../metrics.js';
import type { MetricsLevel } from '../api/http.js';

/** The channel is the client process's file descriptor 4 (stdio: 0-2, the IPC link on 3, then this). */
export const CHANNEL_FD = 4;
/** The environment variable carrying ClientProcessConfig as JSON. */
export const CLIENT_PROCESS_ENV = 'TETCD_CLIENT_PROCESS';

/** Everything a client process needs, fixed at fork. */
export interface ClientProcessConfig {
  /** 0-based slot; a restarted process gets the slot of the one it replaces. */
  index: number;
  listenClientUrls: string[];
  /** TLS for the https:// client URLs (the files; each client process reads and watches them itself). */
  clientTls?: TlsFiles;
  /** The member's ID in hex (request IDs carry its low bits; see forwarder.ts). */
  memberIdHex: string;
  limits: RpcLimits;
  grpc: GrpcServerOptions;
  logLevel: LogLevel;
  /** --log-outputs of the member: a client process logs where it does. */
  logOutputs: string[];
  /** --metrics of the member. */
  metrics: MetricsLevel;
  /** --v8-workers-sched of the member. */
  v8WorkersSched: V8WorkersSched;
  /** How long a drain lets unary calls finish. */
  drainTimeoutMs: number;
  /** --enable-grpc-gateway: serve the JSON gateway (/v3/...) beside gRPC. */
  grpcGateway: boolean;
}

/** Client process → member. `metrics` answers the member's request of the same id. */
export type ClientProcessMessage =
  | { type: 'listening' }
  | { type: 'failed'; error: string }
  | { type: 'metrics'; id: number; metrics: MetricJson[] };
/** Member → client process. `metrics` asks for the process's own metrics (a scrape of the member's /metrics). */
export type MemberMessage = { type: 'drain' } | { type: 'metrics'; id: number };

/** Reads the configuration a client process was forked with; throws naming what is wrong. */
export function parseClientProcessConfig(json: string | undefined): ClientProcessConfig {
  if (json === undefined || json === '') throw new Error(`${CLIENT_PROCESS_ENV} is not set`);
  const c = JSON.parse(json) as ClientProcessConfig;
  if (!Number.isInteger(c.index) || c.index < 0) throw new Error(`${CLIENT_PROCESS_ENV}: bad index`);
  if (!Array.isArray(c.listenClientUrls) || c.listenClientUrls.length === 0) throw new Error(`${CLIENT_PROCESS_ENV}: no client URLs`);
  if (!/^[0-9a-f]{1,16}$/.test(c.memberIdHex)) throw new Error(`${CLIENT_PROCESS_ENV}: bad member ID`);
  if (!(c.limits.maxRequestBytes > 0) || !(c.limits.maxTxnOps > 0)) throw new Error(`${CLIENT_PROCESS_ENV}: bad limits`);
  if (!['low', 'idle', 'normal'].includes(c.v8WorkersSched)) throw new Error(`${CLIENT_PROCESS_ENV}: bad v8WorkersSched`);
  if (!Array.isArray(c.logOutputs)) throw new Error(`${CLIENT_PROCESS_ENV}: bad logOutputs`);
  if (c.metrics !== 'basic' && c.metrics !== 'extensive') throw new Error(`${CLIENT_PROCESS_ENV}: bad metrics`);
  if (!(c.drainTimeoutMs >= 0)) throw new Error(`${CLIENT_PROCESS_ENV}: bad drain timeout`);
  if (typeof c.grpcGateway !== 'boolean') throw new Error(`${CLIENT_PROCESS_ENV}: bad grpcGateway`);
  return c;
}
