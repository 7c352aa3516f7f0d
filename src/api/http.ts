// HTTP/1.1 endpoints on the client port: /health, /version and /metrics, answered as etcd 3.4 does
// (same bodies, statuses and CORS headers). The JSON gateway (/v3/...) joins here in its own issue.
// The handler asks an HttpBackend for the member's answers: the member itself (memberHttpBackend) or,
// in a client process (--client-workers), the member over the local channel.
import type { IncomingMessage, ServerResponse, RequestListener } from 'node:http';
import type { MemberApi, MemberStatus } from '../server/member_api.js';
import { ETCD_SERVER_VERSION, ETCD_CLUSTER_VERSION } from '../config/version.js';
import { Registry, Gauge, Counter, Histogram } from '../metrics.js';
import { LEASE_TTL_BUCKETS_SEC } from '../lease/index.js';

const CORS = {
  'Access-Control-Allow-Headers': 'accept, content-type, authorization',
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Origin': '*',
};

/** How long /health waits for its linearizable read (etcd: 1 s). */
const HEALTH_READ_TIMEOUT_MS = 1000;

/** What the HTTP endpoints need from the member. */
export interface HttpBackend {
  /** etcd's /health verdict. Never rejects. */
  healthy(): Promise<boolean>;
  /** The Prometheus text of /metrics. */
  metricsText(): string | Promise<string>;
}

function reply(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { ...CORS, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** The member's metrics with etcd's names. */
export function memberMetrics(s: MemberApi): Registry {
  const r = new Registry();
  // One status (it reads LMDB's sizes) per rendering, not one per gauge: rendering is synchronous.
  let st: MemberStatus | undefined;
  const status = (): MemberStatus => {
    if (st === undefined) {
      st = s.status();
      queueMicrotask(() => {
        st = undefined;
      });
    }
    return st;
  };
  r.add(new Gauge('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', () => (s.hasLeader ? 1 : 0)));
  r.add(
    new Gauge('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', () => (status().isLeader ? 1 : 0)),
  );
  r.add(
    new Gauge('etcd_server_is_learner', 'Whether or not this member is a learner. 1 if is, 0 otherwise.', () =>
      status().isLearner ? 1 : 0,
    ),
  );
  r.add(new Gauge('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', () => status().raftIndex));
  r.add(
    new Gauge('etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', () => status().raftAppliedIndex),
  );
  r.add(new Gauge('etcd_debugging_mvcc_current_revision', 'The current revision of store.', () => status().revision));
  r.add(new Gauge('etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', () => status().compactRevision));
  r.add(new Gauge('etcd_debugging_mvcc_keys_total', 'Total number of keys.', () => status().keys));
  r.add(
    new Gauge(
      'etcd_mvcc_db_total_size_in_bytes',
      'Total size of the underlying database physically allocated in bytes.',
      () => status().dbSizeBytes,
    ),
  );
  r.add(
    new Gauge(
      'etcd_mvcc_db_total_size_in_use_in_bytes',
      'Total size of the underlying database logically in use in bytes.',
      () => status().dbSizeInUseBytes,
    ),
  );
  r.add(
    new Gauge(
      'etcd_server_quota_backend_bytes',
      'Current backend storage quota size in bytes.',
      () => s.limits.quotaBackendBytes || 2 * 1024 ** 3,
    ),
  );
  const ls = s.leaseStats;
  r.add(new Counter('etcd_debugging_lease_granted_total', 'The total number of granted leases.', () => ls.granted));
  r.add(new Counter('etcd_debugging_lease_revoked_total', 'The total number of revoked leases.', () => ls.revoked));
  r.add(new Counter('etcd_debugging_lease_renewed_total', 'The number of renewed leases seen by the leader.', () => ls.renewed));
  r.add(
    new Histogram('etcd_debugging_lease_ttl_total', 'Bucketed histogram of lease TTLs.', LEASE_TTL_BUCKETS_SEC, () => ({
      buckets: ls.ttlBuckets,
      sum: ls.ttlSum,
    })),
  );
  r.add(new Counter('etcd_debugging_server_lease_expired_total', 'The total number of expired leases.', () => ls.expired));
  return r;
}

/**
 * etcd 3.4's health check: unhealthy with any alarm or without a leader, else healthy if a linearizable
 * read completes within a second.
 */
export async function memberHealthy(s: MemberApi): Promise<boolean> {
  if (s.alarms().length > 0 || !s.hasLeader) return false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), HEALTH_READ_TIMEOUT_MS);
  });
  try {
    await Promise.race([s.linearizableRead(), timeout]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** The HttpBackend of a member serving its own clients. */
export function memberHttpBackend(s: MemberApi): HttpBackend {
  const metrics = memberMetrics(s);
  return { healthy: () => memberHealthy(s), metricsText: () => metrics.render() };
}

/**
 * The HTTP/1.1 handler for a client listener.
 *
 *   ClientListener.listen({ url, grpc, http1: httpHandler(memberHttpBackend(server)) });
 */
export function httpHandler(backend: HttpBackend): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    switch (url.pathname) {
      case '/version':
        reply(res, 200, 'application/json', JSON.stringify({ etcdserver: ETCD_SERVER_VERSION, etcdcluster: ETCD_CLUSTER_VERSION }));
        return;
      case '/metrics':
        Promise.resolve(backend.metricsText()).then(
          (text) => reply(res, 200, 'text/plain; version=0.0.4; charset=utf-8', text),
          (err: unknown) => reply(res, 500, 'text/plain; charset=utf-8', `${err instanceof Error ? err.message : String(err)}\n`),
        );
        return;
      case '/health':
        void backend.healthy().then((ok) => {
          if (ok) reply(res, 200, 'text/plain; charset=utf-8', '{"health":"true"}');
          else reply(res, 503, 'text/plain; charset=utf-8', '{"health":"false"}');
        });
        return;
      default:
        reply(res, 404, 'text/plain; charset=utf-8', '404 page not found\n');
    }
  };
}
