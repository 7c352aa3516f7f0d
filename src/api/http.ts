// HTTP/1.1 endpoints on the client port: /health, /version and /metrics, answered as etcd 3.4 does
// (same bodies, statuses, methods and CORS headers); the metrics listeners (--listen-metrics-urls) serve
// /metrics and /health only, without CORS headers, as etcd's do. The JSON gateway (/v3/...) joins here.
// The handler asks an HttpBackend for the member's answers: the member itself (memberHttpBackend) or,
// in a client process (--client-workers), the member over the local channel.
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse, RequestListener } from 'node:http';
import type { MemberApi, MemberStatus } from '../server/member_api.js';
import { ETCD_SERVER_VERSION, ETCD_CLUSTER_VERSION } from '../config/version.js';
import { Metrics, mergedText, PROMETHEUS_CONTENT_TYPE, type MetricJson, type Series } from '../metrics.js';
import { LEASE_TTL_BUCKETS_SEC } from '../lease/index.js';
import type { GrpcMethodStats } from './grpc/call.js';
import { GrpcCode } from '../errors.js';

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

/** etcd's --metrics: 'extensive' adds the per-method gRPC handling-time histograms. */
export type MetricsLevel = 'basic' | 'extensive';

function reply(res: ServerResponse, status: number, contentType: string, body: string, cors: boolean): void {
  const headers: Record<string, string | number> = { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) };
  res.writeHead(status, cors ? { ...CORS, ...headers } : headers);
  res.end(body);
}

/** Go's http.Error: the text, nosniff, and a newline. */
function httpError(res: ServerResponse, status: number, text: string, cors: boolean, extra: Record<string, string> = {}): void {
  const body = `${text}\n`;
  const headers = {
    ...extra,
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': Buffer.byteLength(body),
  };
  res.writeHead(status, cors ? { ...CORS, ...headers } : headers);
  res.end(body);
}

/** The gRPC status names go-grpc-prometheus labels grpc_code with, by code. */
const GRPC_CODE_NAMES: readonly string[] = Object.entries(GrpcCode)
  .sort((a, b) => a[1] - b[1])
  .map(([name]) => name);

/**
 * go-grpc-prometheus' server metrics from a GrpcServer's per-method counters. Like etcd (which calls its
 * InitializeMetrics) every registered method shows, every status code of it too, before any call.
 */
export function addGrpcMetrics(m: Metrics, stats: () => readonly GrpcMethodStats[], level: MetricsLevel): void {
  const labelsOf = (st: GrpcMethodStats) => ({ grpc_method: st.method, grpc_service: st.service, grpc_type: st.type });
  const each = (f: (st: GrpcMethodStats) => number) => (): Series[] => stats().map((st) => ({ labels: labelsOf(st), value: f(st) }));
  m.counter(
    'grpc_server_started_total',
    'Total number of RPCs started on the server.',
    each((st) => st.started),
  );
  m.counter('grpc_server_handled_total', 'Total number of RPCs completed on the server, regardless of success or failure.', () => {
    const out: Series[] = [];
    for (const st of stats()) {
      for (let code = 0; code < st.handled.length; code++) {
        out.push({ labels: { grpc_code: GRPC_CODE_NAMES[code], ...labelsOf(st) }, value: st.handled[code] });
      }
    }
    return out;
  });
  m.counter(
    'grpc_server_msg_received_total',
    'Total number of RPC stream messages received on the server.',
    each((st) => st.msgReceived),
  );
  m.counter(
    'grpc_server_msg_sent_total',
    'Total number of gRPC stream messages sent by the server.',
    each((st) => st.msgSent),
  );
  const total = (f: (st: GrpcMethodStats) => number) => () => stats().reduce((n, st) => n + f(st), 0);
  m.counter(
    'etcd_network_client_grpc_received_bytes_total',
    'The total number of bytes received from grpc clients.',
    total((st) => st.bytesReceived),
  );
  m.counter(
    'etcd_network_client_grpc_sent_bytes_total',
    'The total number of bytes sent to grpc clients.',
    total((st) => st.bytesSent),
  );
  if (level === 'extensive') {
    m.histogram(
      'grpc_server_handling_seconds',
      'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
      () => stats().flatMap((st) => (st.handlingSeconds === undefined ? [] : [{ labels: labelsOf(st), h: st.handlingSeconds }])),
    );
  }
}

/** The member's metrics with etcd's names (gRPC ones are added by whoever serves gRPC: addGrpcMetrics). */
export function memberMetrics(s: MemberApi): Metrics {
  const m = new Metrics();
  // One status (it reads LMDB's sizes) per scrape, not one per gauge: the collectors run in one turn.
  let st: MemberStatus | undefined;
  const status = (): MemberStatus => {
    if (st === undefined) {
      st = s.status();
      setImmediate(() => {
        st = undefined;
      });
    }
    return st;
  };
  const obs = () => s.observe();
  const id = s.memberId.toString(16);
  const bool = (b: boolean) => (b ? 1 : 0);
  const healthCounts = { success: 0, failures: 0 };
  countHealth.set(s, healthCounts);

  m.gauge('etcd_cluster_version', "Which version is running. 1 for 'cluster_version' label with current cluster version", () => [
    { labels: { cluster_version: ETCD_CLUSTER_VERSION.split('.').slice(0, 2).join('.') }, value: 1 },
  ]);
  m.gauge('etcd_server_version', "Which version is running. 1 for 'server_version' label with current version.", () => [
    { labels: { server_version: ETCD_SERVER_VERSION }, value: 1 },
  ]);
  m.gauge('etcd_server_id', "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", () => [
    { labels: { server_id: id }, value: 1 },
  ]);
  m.gauge('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', () => bool(s.hasLeader));
  m.gauge('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', () => bool(status().isLeader));
  m.gauge('etcd_server_is_learner', 'Whether or not this member is a learner. 1 if is, 0 otherwise.', () => bool(status().isLearner));
  m.counter(
    'etcd_server_learner_promote_successes',
    'The total number of successful learner promotions while this member is leader.',
    () => obs().learnerPromotes.successes,
  );
  m.counter(
    'etcd_server_learner_promote_failures',
    'The total number of failed learner promotions (likely learner not ready) while this member is leader.',
    () => [...obs().learnerPromotes.failures].map(([Reason, value]) => ({ labels: { Reason }, value })),
  );
  m.counter('etcd_server_leader_changes_seen_total', 'The number of leader changes seen.', () => obs().leaderChanges);
  m.gauge('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', () => status().raftIndex);
  m.gauge('etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', () => status().raftAppliedIndex);
  m.gauge('etcd_server_proposals_pending', 'The current number of pending proposals to commit.', () => obs().proposalsPending);
  m.counter('etcd_server_proposals_failed_total', 'The total number of failed proposals seen.', () => obs().proposalsFailed);
  m.counter(
    'etcd_server_slow_apply_total',
    'The total number of slow apply requests (likely overloaded from slow disk).',
    () => obs().slowApplies,
  );
  m.counter(
    'etcd_server_heartbeat_send_failures_total',
    'The total number of leader heartbeat send failures (likely overloaded from slow disk).',
    () => obs().heartbeatSendFailures,
  );
  m.counter('etcd_server_read_indexes_failed_total', 'The total number of failed read indexes seen.', () => obs().readIndexesFailed);
  m.counter(
    'etcd_server_slow_read_indexes_total',
    "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
    () => obs().slowReadIndexes,
  );
  m.gauge('etcd_server_snapshot_apply_in_progress_total', '1 if the server is applying the incoming snapshot. 0 if none.', () =>
    bool(obs().snapshotApplying),
  );
  m.gauge(
    'etcd_server_quota_backend_bytes',
    'Current backend storage quota size in bytes.',
    () => s.limits.quotaBackendBytes || 2 * 1024 ** 3,
  );
  m.counter('etcd_server_health_success', 'The total number of successful health checks', () => healthCounts.success);
  m.counter('etcd_server_health_failures', 'The total number of failed health checks', () => healthCounts.failures);

  const mv = () => obs().mvcc;
  for (const prefix of ['etcd_mvcc', 'etcd_debugging_mvcc']) {
    m.counter(`${prefix}_put_total`, 'Total number of puts seen by this member.', () => mv().put);
    m.counter(`${prefix}_delete_total`, 'Total number of deletes seen by this member.', () => mv().delete);
    m.counter(`${prefix}_txn_total`, 'Total number of txns seen by this member.', () => mv().txn);
    m.counter(`${prefix}_range_total`, 'Total number of ranges seen by this member.', () => mv().range);
  }
  m.gauge('etcd_debugging_mvcc_total_put_size_in_bytes', 'The total size of put kv pairs seen by this member.', () => mv().putBytes);
  m.gauge('etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', () => obs().watchers);
  m.gauge('etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.', () => obs().slowWatchers);
  m.histogram(
    'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds',
    'Bucketed histogram of db compaction total duration.',
    () => [{ h: obs().compactionMs }],
  );
  m.histogram('etcd_debugging_snap_save_total_duration_seconds', 'The total latency distributions of save called by snapshot.', () => [
    { h: obs().snapSaveSeconds },
  ]);
  m.gauge('os_fd_used', 'The number of used file descriptors.', () => fdsUsed());
  m.gauge('os_fd_limit', 'The file descriptor limit.', () => fdLimit());
  m.gauge('etcd_debugging_mvcc_current_revision', 'The current revision of store.', () => status().revision);
  m.gauge('etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', () => status().compactRevision);
  m.gauge('etcd_debugging_mvcc_keys_total', 'Total number of keys.', () => status().keys);
  m.gauge(
    'etcd_mvcc_db_total_size_in_bytes',
    'Total size of the underlying database physically allocated in bytes.',
    () => status().dbSizeBytes,
  );
  m.gauge(
    'etcd_debugging_mvcc_db_total_size_in_bytes',
    'Total size of the underlying database physically allocated in bytes.',
    () => status().dbSizeBytes,
  );
  m.gauge(
    'etcd_mvcc_db_total_size_in_use_in_bytes',
    'Total size of the underlying database logically in use in bytes.',
    () => status().dbSizeInUseBytes,
  );

  m.histogram('etcd_disk_wal_fsync_duration_seconds', 'The latency distributions of fsync called by WAL.', () => {
    const h = obs().walFsyncSeconds;
    return h === undefined ? [] : [{ h }];
  });
  m.gauge('etcd_disk_wal_write_bytes_total', 'Total number of bytes written in WAL.', () => obs().walWriteBytes);
  m.histogram('etcd_disk_backend_commit_duration_seconds', 'The latency distributions of commit called by backend.', () => [
    { h: obs().backendCommitSeconds },
  ]);
  m.histogram('etcd_disk_backend_snapshot_duration_seconds', 'The latency distribution of backend snapshots.', () => [
    { h: obs().backendSnapshotSeconds },
  ]);

  const peers = () => obs().peers;
  m.counter('etcd_network_peer_sent_bytes_total', 'The total number of bytes sent to peers.', () =>
    peers().map((p) => ({ labels: { To: p.id.toString(16) }, value: p.sentBytes })),
  );
  m.counter('etcd_network_peer_received_bytes_total', 'The total number of bytes received from peers.', () =>
    peers().map((p) => ({ labels: { From: p.id.toString(16) }, value: p.receivedBytes })),
  );
  m.counter('etcd_network_peer_sent_failures_total', 'The total number of send failures from peers.', () =>
    peers().map((p) => ({ labels: { To: p.id.toString(16) }, value: p.sentFailures })),
  );
  m.gauge('etcd_network_active_peers', 'The current number of active peer connections.', () =>
    peers().map((p) => ({ labels: { Local: id, Remote: p.id.toString(16) }, value: bool(p.active) })),
  );
  m.histogram('etcd_network_peer_round_trip_time_seconds', 'Round-Trip-Time histogram between peers', () =>
    peers().map((p) => ({ labels: { To: p.id.toString(16) }, h: p.rttSeconds })),
  );

  // tetcd's own.
  m.histogram('tetcd_proposal_batch_size', 'Proposals handed to Raft in one append (the group commit).', () => [
    { h: obs().proposalBatchSizes },
  ]);
  m.counter('tetcd_wal_saves_total', 'WAL saves (Ready batches) made durable.', () => obs().walSaves);
  m.counter('tetcd_wal_fsyncs_total', 'fsyncs of the WAL writer; saves per fsync is the group commit.', () => obs().walFsyncs);
  const pool = () => obs().watchPool;
  m.counter('tetcd_watch_pool_tasks_total', 'Watch fan-out tasks run on the worker threads.', () => pool()?.tasks ?? []);
  m.counter(
    'tetcd_watch_pool_failed_tasks_total',
    'Watch fan-out tasks that failed (their responses were sent inline).',
    () => pool()?.failedTasks ?? [],
  );
  m.gauge(
    'tetcd_watch_pool_tasks_in_flight',
    'Watch fan-out tasks queued or running on the worker threads.',
    () => pool()?.tasksInflight ?? [],
  );
  m.gauge(
    'tetcd_watch_pool_in_flight_bytes',
    'Event bytes handed to watch fan-out tasks not finished yet.',
    () => pool()?.inflightBytes ?? [],
  );

  const ls = s.leaseStats;
  m.counter('etcd_debugging_lease_granted_total', 'The total number of granted leases.', () => ls.granted);
  m.counter('etcd_debugging_lease_revoked_total', 'The total number of revoked leases.', () => ls.revoked);
  m.counter('etcd_debugging_lease_renewed_total', 'The number of renewed leases seen by the leader.', () => ls.renewed);
  m.histogram('etcd_debugging_lease_ttl_total', 'Bucketed histogram of lease TTLs.', () => [
    { h: { bounds: LEASE_TTL_BUCKETS_SEC, counts: ls.ttlBuckets, sum: ls.ttlSum, count: sumOf(ls.ttlBuckets) } },
  ]);
  m.counter('etcd_debugging_server_lease_expired_total', 'The total number of expired leases.', () => ls.expired);
  m.defaults();
  return m;
}

/** Open file descriptors of this process (Linux: /proc/self/fd; elsewhere none reported). */
function fdsUsed(): Series[] {
  try {
    return [{ value: readdirSync('/proc/self/fd').length }];
  } catch {
    return [];
  }
}

/** The soft limit on open files (Linux: /proc/self/limits). */
function fdLimit(): Series[] {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const v = Number(line?.split(/\s+/)[3]);
    return Number.isFinite(v) ? [{ value: v }] : [];
  } catch {
    return [];
  }
}

function sumOf(a: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += a[i];
  return n;
}

/** etcd_server_health_success / _failures of each member (memberHealthy counts into it). */
const countHealth = new WeakMap<MemberApi, { success: number; failures: number }>();

/**
 * etcd 3.4's health check: unhealthy with any alarm, without a leader or after a fatal error (a failed
 * WAL), else healthy if a linearizable read completes within a second.
 */
export async function memberHealthy(s: MemberApi): Promise<boolean> {
  const ok = await checkHealth(s);
  const c = countHealth.get(s);
  if (c !== undefined) {
    if (ok) c.success++;
    else c.failures++;
  }
  return ok;
}

async function checkHealth(s: MemberApi): Promise<boolean> {
  // etcd serves no client until its member published itself: until then nothing says it is healthy.
  if (!s.publishedSelf) return false;
  if (s.alarms().length > 0 || !s.hasLeader || s.observe().failed) return false;
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

/** The member's HttpBackend, with the metrics it renders and room for its client processes' ones. */
export interface MemberHttp extends HttpBackend {
  readonly metrics: Metrics;
  /** With client processes: each one's metrics (their grpc_server_* counters), summed into /metrics. */
  clientMetrics: (() => Promise<MetricJson[][]>) | undefined;
}

/** The HttpBackend of a member serving its own clients (or, with client processes, their member). */
export function memberHttpBackend(s: MemberApi): MemberHttp {
  const metrics = memberMetrics(s);
  // promhttp's own counters, as etcd's Go handler keeps them (a scrape counts itself as in flight).
  const scrapes = { inFlight: 0, ok: 0, failed: 0 };
  metrics.gauge('promhttp_metric_handler_requests_in_flight', 'Current number of scrapes being served.', () => scrapes.inFlight);
  metrics.counter('promhttp_metric_handler_requests_total', 'Total number of scrapes by HTTP status code.', () => [
    { labels: { code: '200' }, value: scrapes.ok },
    { labels: { code: '500' }, value: scrapes.failed },
    { labels: { code: '503' }, value: 0 },
  ]);
  const render = async (): Promise<string> => {
    if (http.clientMetrics === undefined) return metrics.text();
    const [own, others] = await Promise.all([metrics.json(), http.clientMetrics()]);
    return mergedText([own, ...others]);
  };
  const http: MemberHttp = {
    metrics,
    clientMetrics: undefined,
    healthy: () => memberHealthy(s),
    metricsText: async () => {
      scrapes.inFlight++;
      try {
        const text = await render();
        scrapes.ok++;
        return text;
      } catch (err) {
        scrapes.failed++;
        throw err;
      } finally {
        scrapes.inFlight--;
      }
    },
  };
  return http;
}

/** Which endpoints a listener serves: the client port's, or a metrics listener's (/metrics and /health only). */
export type HttpListenerKind = 'client' | 'metrics';

/**
 * The HTTP/1.1 handler for a client listener or a metrics listener.
 *
 *   ClientListener.listen({ url, grpc, http1: httpHandler(memberHttpBackend(server)) });
 */
export function httpHandler(backend: HttpBackend, kind: HttpListenerKind = 'client'): RequestListener {
  const cors = kind === 'client';
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    switch (url.pathname) {
      case '/version':
        if (kind !== 'client') break;
        if (req.method !== 'GET') return httpError(res, 405, 'Method Not Allowed', cors, { Allow: 'GET' });
        reply(res, 200, 'application/json', JSON.stringify({ etcdserver: ETCD_SERVER_VERSION, etcdcluster: ETCD_CLUSTER_VERSION }), cors);
        return;
      case '/metrics':
        Promise.resolve(backend.metricsText()).then(
          (text) => reply(res, 200, PROMETHEUS_CONTENT_TYPE, text, cors),
          (err: unknown) => httpError(res, 500, err instanceof Error ? err.message : String(err), cors),
        );
        return;
      case '/health':
        if (req.method !== 'GET') return httpError(res, 405, 'Method Not Allowed', cors, { Allow: 'GET' });
        void backend.healthy().then((ok) => {
          if (ok) reply(res, 200, 'text/plain; charset=utf-8', '{"health":"true"}', cors);
          else reply(res, 503, 'text/plain; charset=utf-8', '{"health":"false"}', cors);
        });
        return;
    }
    httpError(res, 404, '404 page not found', cors);
  };
}
