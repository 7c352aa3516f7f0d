// /metrics, /health and /version as etcd 3.4 serves them: etcd and tetcd run side by side, the same work
// is done on both, and their /metrics are compared family by family (name, type, label names, histogram
// buckets); tetcd's must parse as strict Prometheus text and move when work happens. Also: the metrics
// listeners (--listen-metrics-urls), --metrics extensive, and on three members the peer metrics and
// /health without a leader. Runs in both serving modes (test/run.ts: observability/ is a member suite).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { track } from '../helpers/cleanup.js';
import { readdirSync, readFileSync } from 'node:fs';
import { startMember, startCluster, httpGet, type Member } from '../helpers/member.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { oracleGate } from '../helpers/oracle.js';
import { freePort } from '../../tools/lib/ports.js';
import { parsePrometheusText, sampleValue, bucketBounds, labelNames, type PromFamily } from '../helpers/prom.js';

/** etcd 3.4 metric families tetcd deliberately does not serve, each with the reason. */
const ABSENT: Readonly<Record<string, string>> = {
  etcd_debugging_auth_revision: 'auth is not implemented yet',
  etcd_debugging_disk_backend_commit_rebalance_duration_seconds: "bbolt's commit phases; LMDB's commit has none",
  etcd_debugging_disk_backend_commit_spill_duration_seconds: "bbolt's commit phases; LMDB's commit has none",
  etcd_debugging_disk_backend_commit_write_duration_seconds: "bbolt's commit phases; LMDB's commit has none",
  etcd_mvcc_db_open_read_transactions: "bbolt's read transactions; LMDB readers are not tracked",
  etcd_debugging_mvcc_db_compaction_keys_total: 'compaction is not instrumented yet',
  etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds: 'compaction is not instrumented yet',
  etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds: 'compaction is not instrumented yet',
  etcd_debugging_mvcc_events_total: 'watch internals are not instrumented yet',
  etcd_debugging_mvcc_pending_events_total: 'watch internals are not instrumented yet',
  etcd_debugging_mvcc_watch_stream_total: 'watch internals are not instrumented yet',
  etcd_debugging_snap_save_marshalling_duration_seconds: 'snapshot saving is not instrumented yet',
  etcd_snap_db_fsync_duration_seconds: 'snapshot receiving is not instrumented yet',
  etcd_snap_db_save_total_duration_seconds: 'snapshot receiving is not instrumented yet',
  etcd_snap_fsync_duration_seconds: 'snapshot saving is not instrumented yet',
  etcd_disk_backend_defrag_duration_seconds: 'Defragment is not implemented yet',
  etcd_disk_defrag_inflight: 'Defragment is not implemented yet',
  etcd_mvcc_hash_duration_seconds: 'Hash is not implemented yet',
  etcd_mvcc_hash_rev_duration_seconds: 'HashKV is not implemented yet',
  etcd_server_client_requests_total: "the client's API version is not tracked yet",
  etcd_server_go_version: 'Go; tetcd runs on Node.js (nodejs_version_info)',
  process_virtual_memory_max_bytes: "Go's procfs collector; prom-client has no such metric",
};
/** Whole groups of etcd 3.4's families that do not apply to tetcd. */
const ABSENT_PREFIXES: Readonly<Record<string, string>> = {
  go_: 'the Go runtime; tetcd runs on Node.js (nodejs_*)',
  etcd_debugging_store_: 'the v2 store; tetcd serves v3 only',
  etcd_grpc_proxy_: 'grpc-proxy mode is not part of tetcd',
};

function absentReason(name: string): string | undefined {
  if (name in ABSENT) return ABSENT[name];
  for (const [p, why] of Object.entries(ABSENT_PREFIXES)) if (name.startsWith(p)) return why;
  return undefined;
}

/** gRPC methods etcd 3.4 serves and tetcd does not register yet (their series are absent). */
const METHODS_NOT_SERVED: Readonly<Record<string, string>> = {
  'grpc.health.v1.Health/Check': 'the gRPC health service is not implemented yet',
  'grpc.health.v1.Health/Watch': 'the gRPC health service is not implemented yet',
  'etcdserverpb.Maintenance/Defragment': 'not implemented yet',
  'etcdserverpb.Maintenance/Hash': 'not implemented yet',
  'etcdserverpb.Maintenance/HashKV': 'not implemented yet',
  ...Object.fromEntries(
    [
      'AuthEnable',
      'AuthDisable',
      'Authenticate',
      'UserAdd',
      'UserGet',
      'UserList',
      'UserDelete',
      'UserChangePassword',
      'UserGrantRole',
      'UserRevokeRole',
      'RoleAdd',
      'RoleGet',
      'RoleList',
      'RoleDelete',
      'RoleGrantPermission',
      'RoleRevokePermission',
    ].map((m) => [`etcdserverpb.Auth/${m}`, 'auth is not implemented yet']),
  ),
};

/** Families etcd 3.4 shows only once a label value exists (a peer, a To/From): present on clusters. */
const PEER_FAMILIES = [
  'etcd_network_peer_sent_bytes_total',
  'etcd_network_peer_received_bytes_total',
  'etcd_network_peer_round_trip_time_seconds',
  'etcd_network_active_peers',
];

async function scrape(url: string): Promise<Map<string, PromFamily>> {
  const r = await httpGet(`${url}/metrics`, 10_000);
  assert.is(r.status, 200, `${url}/metrics: ${r.text.slice(0, 200)}`);
  return parsePrometheusText(r.text);
}

/** GET/POST with status, a few headers and the body. */
function request(url: string, method = 'GET'): Promise<{ status: number; body: string; cors: boolean; allow: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body,
          cors: res.headers['access-control-allow-origin'] === '*',
          allow: res.headers.allow as string | undefined,
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

async function ctl(m: Member, args: string[]): Promise<string> {
  const r = await etcdctl(m.endpoint, args);
  return `${r.code} ${r.stdout}${r.stderr}`;
}

/** The same work on either member: 5 puts, 1 get, 1 put refused by validation. */
async function work(m: Member, prefix: string): Promise<void> {
  for (let i = 0; i < 5; i++) assert.match(await ctl(m, ['put', `${prefix}${i}`, 'v']), /^0 OK/);
  assert.match(await ctl(m, ['get', `${prefix}0`]), /^0 /);
  assert.match(await ctl(m, ['put', '', 'v']), /key is not provided/);
}

const oracle = oracleGate(test);

let etcd: Member | undefined;
let tetcd: Member | undefined;
let etcdMetricsUrl = '';
let tetcdMetricsUrl = '';

test.before(async () => {
  const [ep, tp] = [await freePort(), await freePort()];
  etcdMetricsUrl = `http://127.0.0.1:${ep}`;
  tetcdMetricsUrl = `http://127.0.0.1:${tp}`;
  // A snapshot every few entries, so the snapshot metrics move too.
  const opts = (url: string) => ({ extraArgs: ['--metrics', 'extensive', '--listen-metrics-urls', url, '--snapshot-count', '3'] });
  [etcd, tetcd] = await Promise.all([startMember('etcd', opts(etcdMetricsUrl)), startMember('tetcd', opts(tetcdMetricsUrl))]);
});

test.after(async () => {
  await Promise.all([etcd?.stop(), tetcd?.stop()]);
});

oracle("every etcd 3.4 family is served with etcd's type, label names and buckets (or is listed absent with a reason)", async () => {
  await Promise.all([work(etcd!, 'cmp/'), work(tetcd!, 'cmp/')]);
  const [e, t] = await Promise.all([scrape(etcd!.clientUrl), scrape(tetcd!.clientUrl)]);
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const [name, ef] of e) {
    const tf = t.get(name);
    const why = absentReason(name);
    if (why !== undefined) {
      // A listed absence that tetcd serves after all is a stale list.
      assert.not.ok(tf, `${name} is listed absent (${why}) but tetcd serves it: drop it from the list`);
      continue;
    }
    if (tf === undefined) {
      missing.push(name);
      continue;
    }
    if (tf.type !== ef.type) wrong.push(`${name}: type ${tf.type}, etcd ${ef.type}`);
    if (ef.samples.length > 0 && tf.samples.length > 0) {
      const [el, tl] = [labelNames(ef).join(','), labelNames(tf).join(',')];
      if (el !== tl) wrong.push(`${name}: labels [${tl}], etcd [${el}]`);
      if (ef.type === 'histogram') {
        const [eb, tb] = [bucketBounds(ef).join(' '), bucketBounds(tf).join(' ')];
        if (eb !== tb) wrong.push(`${name}: buckets ${tb}, etcd ${eb}`);
      }
    }
  }
  assert.equal(missing, [], `etcd families tetcd lacks: ${missing.join(', ')}`);
  assert.equal(wrong, []);
  // The gRPC families carry every method and code as etcd's do, before any call.
  for (const name of ['grpc_server_started_total', 'grpc_server_handled_total', 'grpc_server_msg_sent_total']) {
    const series = (f: PromFamily) => new Set(f.samples.map((s) => JSON.stringify(Object.entries(s.labels).sort())));
    const tetcdSeries = series(t.get(name)!);
    const lacking = [...series(e.get(name)!)]
      .filter((s) => !tetcdSeries.has(s))
      .map((s) => JSON.parse(s) as [string, string][])
      .map((l) => Object.fromEntries(l))
      .filter((l) => !(`${l.grpc_service}/${l.grpc_method}` in METHODS_NOT_SERVED))
      .map((l) => `${l.grpc_service}/${l.grpc_method} ${l.grpc_code ?? ''}`);
    assert.equal(lacking, [], `${name}: series etcd has and tetcd lacks`);
  }
});

test('the metrics move when work happens (gRPC counters summed over client processes, disk, raft, mvcc)', async () => {
  const m = tetcd!;
  const before = await scrape(m.clientUrl);
  await work(m, 'move/');
  const rev = sampleValue(await scrape(m.clientUrl), 'etcd_debugging_mvcc_current_revision');
  assert.match(await ctl(m, ['compact', String(rev - 1)]), /^0 compacted/);
  // The backend commits on its batch interval: wait for it to show.
  let after = await scrape(m.clientUrl);
  const commits = (f: Map<string, PromFamily>) =>
    sampleValue(f, 'etcd_disk_backend_commit_duration_seconds', {}, 'etcd_disk_backend_commit_duration_seconds_count');
  const compactions = (f: Map<string, PromFamily>) =>
    sampleValue(
      f,
      'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds',
      {},
      'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count',
    );
  for (let i = 0; i < 30 && (commits(after) === commits(before) || compactions(after) === compactions(before)); i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await scrape(m.clientUrl);
  }
  const delta = (name: string, labels: Record<string, string> = {}, sample = name) =>
    sampleValue(after, name, labels, sample) - sampleValue(before, name, labels, sample);
  const put = { grpc_method: 'Put', grpc_service: 'etcdserverpb.KV', grpc_type: 'unary' };
  assert.is(delta('grpc_server_started_total', put), 6);
  assert.is(delta('grpc_server_handled_total', { ...put, grpc_code: 'OK' }), 5);
  assert.is(delta('grpc_server_handled_total', { ...put, grpc_code: 'InvalidArgument' }), 1);
  assert.is(delta('grpc_server_msg_received_total', put), 6);
  assert.is(delta('grpc_server_msg_sent_total', put), 5);
  assert.is(delta('grpc_server_handled_total', { grpc_method: 'Range', grpc_code: 'OK' }), 1);
  assert.is(delta('grpc_server_handling_seconds', put, 'grpc_server_handling_seconds_count'), 6);
  assert.ok(delta('etcd_network_client_grpc_received_bytes_total') > 5 * 'move/0v'.length);
  assert.ok(delta('etcd_network_client_grpc_sent_bytes_total') > 0);
  assert.ok(delta('etcd_server_proposals_committed_total') >= 5);
  assert.ok(delta('etcd_server_proposals_applied_total') >= 5);
  assert.is(sampleValue(after, 'etcd_server_proposals_pending'), 0);
  assert.is(delta('etcd_mvcc_put_total'), 5);
  assert.is(delta('etcd_debugging_mvcc_keys_total'), 5);
  assert.is(delta('etcd_debugging_mvcc_current_revision'), 5);
  assert.is(delta('etcd_mvcc_range_total'), 1);
  assert.ok(delta('etcd_disk_wal_fsync_duration_seconds', {}, 'etcd_disk_wal_fsync_duration_seconds_count') >= 1);
  assert.ok(delta('etcd_disk_wal_write_bytes_total') > 0);
  assert.ok(commits(after) > commits(before));
  assert.is(compactions(after) - compactions(before), 1);
  assert.is(sampleValue(after, 'etcd_debugging_mvcc_compact_revision'), rev - 1);
  assert.ok(
    delta('etcd_debugging_snap_save_total_duration_seconds', {}, 'etcd_debugging_snap_save_total_duration_seconds_count') >= 1,
    'a snapshot was saved (--snapshot-count 3)',
  );
  assert.ok(delta('tetcd_proposal_batch_size', {}, 'tetcd_proposal_batch_size_count') >= 1);
  assert.is(sampleValue(after, 'etcd_server_has_leader'), 1);
  assert.is(sampleValue(after, 'etcd_server_is_leader'), 1);
  assert.is(sampleValue(after, 'etcd_server_leader_changes_seen_total'), 1);
  assert.ok(sampleValue(after, 'etcd_mvcc_db_total_size_in_bytes') >= sampleValue(after, 'etcd_mvcc_db_total_size_in_use_in_bytes'));
  assert.ok(sampleValue(after, 'etcd_mvcc_db_total_size_in_use_in_bytes') > 0);
  assert.ok(sampleValue(after, 'process_resident_memory_bytes') > 0);
  assert.ok(after.has('nodejs_heap_size_used_bytes'));
  // The metrics listener answers from the member itself: the same whole-member counts.
  const direct = await scrape(tetcdMetricsUrl);
  assert.is(sampleValue(direct, 'grpc_server_started_total', put), sampleValue(after, 'grpc_server_started_total', put));
  if (process.env.TETCD_CLIENT_WORKERS) {
    assert.ok(sampleValue(after, 'tetcd_client_processes') >= 1);
    assert.ok(after.has('tetcd_client_process_channel_calls_total'));
  }
});

oracle('/health and /version answer as etcd 3.4 on the client port and on a metrics listener', async () => {
  const cases: [string, string][] = [
    ['GET', '/version'],
    ['GET', '/health'],
    ['POST', '/health'],
    ['POST', '/version'],
    ['GET', '/nope'],
  ];
  for (const [port, eBase, tBase] of [
    ['client', etcd!.clientUrl, tetcd!.clientUrl],
    ['metrics', etcdMetricsUrl, tetcdMetricsUrl],
  ] as const) {
    for (const [method, path] of cases) {
      const [e, t] = await Promise.all([request(eBase + path, method), request(tBase + path, method)]);
      assert.equal(t, e, `${method} ${path} on the ${port} port`);
    }
  }
  const text = await httpGet(`${tetcdMetricsUrl}/metrics`, 5_000);
  assert.is(text.status, 200);
  parsePrometheusText(text.text);
});

/** Process IDs of a process's children (a member's client processes). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    if (text !== '') out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

if (process.env.TETCD_CLIENT_WORKERS) {
  test('a client process that does not answer is left out of a scrape after a second, and scrapes do not queue on it', async () => {
    const m = tetcd!;
    const kids = childPids(m.proc!.pid!);
    assert.ok(kids.length >= 2, `client processes: ${kids.join(' ')}`);
    const stopped = kids[0];
    process.kill(stopped, 'SIGSTOP');
    try {
      // The metrics listener is the member's own: it answers without the stopped process's counters.
      let t0 = Date.now();
      const one = await httpGet(`${tetcdMetricsUrl}/metrics`, 10_000);
      const waited = Date.now() - t0;
      assert.is(one.status, 200);
      parsePrometheusText(one.text);
      assert.ok(waited >= 900 && waited < 5_000, `waited ${waited} ms for the stopped process`);
      // Eight requests may wait on it at once; past them a scrape leaves it out at once.
      t0 = Date.now();
      const many = await Promise.all(
        Array.from({ length: 12 }, () => httpGet(`${tetcdMetricsUrl}/metrics`, 10_000).then(() => Date.now() - t0)),
      );
      many.sort((a, b) => a - b);
      assert.ok(many[0] < 900, `a scrape past the eight waiting ones answered at once (${many.join(' ')} ms)`);
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
  });
}

test('an open watch shows in etcd_debugging_mvcc_watcher_total', async () => {
  const m = tetcd!;
  const before = sampleValue(await scrape(m.clientUrl), 'etcd_debugging_mvcc_watcher_total');
  const watcher = track(
    spawn('etcdctl', [`--endpoints=${m.endpoint}`, 'watch', 'w/', '--prefix'], { env: { ...process.env, ETCDCTL_API: '3' } }),
  );
  try {
    let now = before;
    for (let i = 0; i < 50 && now === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = sampleValue(await scrape(m.clientUrl), 'etcd_debugging_mvcc_watcher_total');
    }
    assert.is(now, before + 1);
  } finally {
    watcher.kill();
  }
});

test('three members: peer metrics per peer, and no leader makes /health false and has_leader 0', async () => {
  const ms = await startCluster('tetcd', ['a', 'b', 'c']);
  try {
    assert.match(await ctl(ms[0], ['put', 'k', 'v']), /^0 OK/);
    // The leader sends to both peers (a follower only to the leader).
    const all = await Promise.all(ms.map((m) => scrape(m.clientUrl)));
    const li = all.findIndex((f) => sampleValue(f, 'etcd_server_is_leader') === 1);
    assert.ok(li >= 0, 'a leader');
    const leader = ms[li];
    const others = ms.filter((m) => m !== leader);
    // A round trip is sampled once a second per peer.
    let f = all[li];
    for (let i = 0; i < 40; i++) {
      const rtt = f.get('etcd_network_peer_round_trip_time_seconds')!;
      if (rtt.samples.filter((s) => s.name.endsWith('_count') && s.value > 0).length === 2) break;
      await new Promise((r) => setTimeout(r, 100));
      f = await scrape(leader.clientUrl);
    }
    for (const name of PEER_FAMILIES) {
      const fam = f.get(name);
      assert.ok(fam, name);
      const peers = new Set(fam.samples.map((s) => s.labels.To ?? s.labels.From ?? s.labels.Remote));
      assert.is(peers.size, 2, `${name}: one series per peer`);
    }
    for (const s of f.get('etcd_network_peer_sent_bytes_total')!.samples) assert.ok(s.value > 0, 'bytes sent to each peer');
    for (const s of f.get('etcd_network_peer_received_bytes_total')!.samples) assert.ok(s.value > 0, 'bytes from each peer');
    for (const s of f.get('etcd_network_peer_round_trip_time_seconds')!.samples)
      if (s.name.endsWith('_count')) assert.ok(s.value > 0, 'a round trip to each peer');
    assert.not.ok(f.has('grpc_server_handling_seconds'), '--metrics basic keeps no handling histograms');
    assert.is(sampleValue(f, 'etcd_server_has_leader'), 1);
    // Quorum lost: the survivor loses its leader after an election timeout.
    await Promise.all(others.map((m) => m.stop()));
    let health = await httpGet(`${leader.clientUrl}/health`, 5_000);
    for (let i = 0; i < 50 && health.text !== '{"health":"false"}'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      health = await httpGet(`${leader.clientUrl}/health`, 5_000);
    }
    assert.is(health.status, 503);
    assert.is(health.text, '{"health":"false"}');
    f = await scrape(leader.clientUrl);
    assert.ok(sampleValue(f, 'etcd_server_health_failures') >= 1);
    for (let i = 0; i < 50 && sampleValue(f, 'etcd_server_has_leader') !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      f = await scrape(leader.clientUrl);
    }
    assert.is(sampleValue(f, 'etcd_server_has_leader'), 0);
    const failures = f.get('etcd_network_peer_sent_failures_total')!.samples;
    assert.ok(
      failures.some((s) => s.value > 0),
      'messages to the stopped peers are counted as send failures',
    );
  } finally {
    await Promise.all(ms.map((m) => m.stop()));
  }
});

test.run();
