// Helpers for fault tests on real member processes: a cluster from the launcher whose processes die with
// the test, an exact-outcome KV client with Txn (compare-and-set), etcdctl status and dumps, convergence
// and no-loss checks, a put load, a write prober, and the nemesis and clients of the linearizability run.
import http2 from 'node:http2';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster, type ClusterMember, type ClusterOptions } from '../../tools/cluster.js';
import type { PeerNet } from '../../tools/lib/peer_proxy.js';
import type { HistoryRecorder } from '../../tools/lincheck/history.js';
import {
  encodePutRequest,
  decodePutResponse,
  encodeRangeRequest,
  decodeRangeResponse,
  encodeTxnRequest,
  decodeTxnResponse,
  encodeDeleteRangeRequest,
  decodeDeleteRangeResponse,
  encodeCompactionRequest,
  decodeCompactionResponse,
  Compare_CompareResult,
  Compare_CompareTarget,
  type CompareInit,
  type DeleteRangeResponse,
  type TxnRequestInit,
  type TxnResponse,
} from '../../src/proto/rpc.js';
import type { KeyValue } from '../../src/proto/kv.js';
import { track, tempDir } from './cleanup.js';
import { etcdctl } from './etcdctl.js';
import { modeArgs } from './member.js';
import { GrpcStatusError, KvClient, prefixEnd, unaryCall } from './grpc-kv.js';

export { GrpcStatusError, prefixEnd };

/** etcd's defaults; the fault tests run with them so the timing claims are about a stock configuration. */
export const HEARTBEAT_MS = 100;
export const ELECTION_MS = 1000;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A seeded PRNG (xorshift32): a failing run replays its choices from the seed it printed. */
export function seededRng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** The seed of a run: $TETCD_FAULTS_SEED, else `fixed`, else a fresh one. */
export function runSeed(fixed?: number): number {
  const env = process.env.TETCD_FAULTS_SEED;
  if (env !== undefined && env !== '') return Number(env) >>> 0;
  return fixed ?? (Math.random() * 2 ** 32) >>> 0;
}

/** The system under test: tetcd, or real etcd with TETCD_FAULTS_TARGET=etcd (proves the tests themselves). */
export const FAULTS_TARGET: 'tetcd' | 'etcd' = process.env.TETCD_FAULTS_TARGET === 'etcd' ? 'etcd' : 'tetcd';

/** True under `npm run test:faults` (TETCD_FAULTS_LONG=1): long durations, more nemesis variety. */
export const LONG = process.env.TETCD_FAULTS_LONG === '1';

/**
 * A cluster from tools/cluster.ts whose members are killed if the test process dies and whose data lives
 * in a temp dir removed at exit (kept with TETCD_KEEP_TMP=1). `extraArgs` come after the timing flags.
 */
export async function startFaultCluster(opts: Partial<ClusterOptions> = {}): Promise<LocalCluster> {
  return LocalCluster.start({
    size: 3,
    kind: FAULTS_TARGET,
    dataDir: tempDir('tetcd-faults-'),
    readyTimeoutMs: 30_000,
    ...opts,
    extraArgs: [
      '--heartbeat-interval',
      String(HEARTBEAT_MS),
      '--election-timeout',
      String(ELECTION_MS),
      ...(FAULTS_TARGET === 'tetcd' ? modeArgs() : []),
      ...(opts.extraArgs ?? []),
    ],
    onSpawn: (child) => {
      track(child);
      opts.onSpawn?.(child);
    },
  });
}

/** Every member's log tail, for assertion messages. */
export function clusterLogs(c: LocalCluster, bytes = 6 * 1024): string {
  return c.members.map((m) => `---- ${m.name} (${m.endpoint}) ----\n${m.logTail(bytes)}`).join('\n');
}

/** Throws when a member exited without being asked to (a crash), with its log. */
export function assertNoCrash(c: LocalCluster): void {
  for (const m of c.members) {
    if (m.unexpectedExits.length > 0) {
      throw new Error(`${m.name} exited on its own (${JSON.stringify(m.unexpectedExits)}):\n${m.logTail(16 * 1024)}`);
    }
  }
}

// ---- an exact-outcome KV client (Range, Put, Txn) ----

/** A Txn compare-and-set's answer. */
export interface CasResult {
  succeeded: boolean;
  revision: number;
  /** When the compare failed: the key as the failure branch read it (null = absent). */
  current: KeyValue | null;
}

/**
 * One HTTP/2 connection to a member; one stream per call, no retries, no reconnection: a call that does
 * not get its answer fails, and the caller decides what the outcome means. Encodes with the project's
 * codecs (src/proto/rpc.ts).
 *
 *   const kv = new ExactKv('127.0.0.1:2379'); await kv.cas(k, { value: old }, next, 2000); kv.close();
 */
export class ExactKv {
  private readonly session: http2.ClientHttp2Session;

  constructor(readonly endpoint: string) {
    this.session = http2.connect(`http://${endpoint}`);
    this.session.on('error', () => {
      /* each call reports its own failure */
    });
  }

  /** The connection is gone; make a new client. */
  get broken(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  private call(path: string, body: Uint8Array, timeoutMs: number): Promise<Buffer> {
    return unaryCall(this.session, path, body, timeoutMs);
  }

  async put(key: Uint8Array, value: Uint8Array, timeoutMs: number): Promise<{ revision: number }> {
    const r = decodePutResponse(await this.call('/etcdserverpb.KV/Put', encodePutRequest({ key, value }), timeoutMs));
    return { revision: r.header?.revision ?? 0 };
  }

  /** Range over one key (linearizable unless `serializable`). */
  async get(key: Uint8Array, timeoutMs: number, serializable = false): Promise<{ revision: number; kv: KeyValue | null }> {
    const r = await this.range(key, null, timeoutMs, serializable);
    return { revision: r.revision, kv: r.kvs[0] ?? null };
  }

  /** Range over [key, rangeEnd). */
  async range(
    key: Uint8Array,
    rangeEnd: Uint8Array | null,
    timeoutMs: number,
    serializable = false,
  ): Promise<{ revision: number; kvs: KeyValue[] }> {
    const req = encodeRangeRequest({ key, ...(rangeEnd ? { range_end: rangeEnd } : {}), serializable });
    const r = decodeRangeResponse(await this.call('/etcdserverpb.KV/Range', req, timeoutMs));
    return { revision: r.header?.revision ?? 0, kvs: r.kvs };
  }

  /**
   * Txn: if the key's value equals `expect.value` (or its mod_revision equals `expect.modRevision`; 0 =
   * absent) put `value`, else read the key.
   */
  async cas(
    key: Uint8Array,
    expect: { value: Uint8Array } | { modRevision: number },
    value: Uint8Array,
    timeoutMs: number,
  ): Promise<CasResult> {
    const compare: CompareInit =
      'value' in expect
        ? { key, target: Compare_CompareTarget.VALUE, result: Compare_CompareResult.EQUAL, value: expect.value }
        : { key, target: Compare_CompareTarget.MOD, result: Compare_CompareResult.EQUAL, mod_revision: expect.modRevision };
    const req = encodeTxnRequest({ compare: [compare], success: [{ request_put: { key, value } }], failure: [{ request_range: { key } }] });
    const r = decodeTxnResponse(await this.call('/etcdserverpb.KV/Txn', req, timeoutMs));
    const out: CasResult = { succeeded: r.succeeded, revision: r.header?.revision ?? 0, current: null };
    if (!r.succeeded) {
      const range = r.responses[0]?.response_range;
      if (range === undefined) throw new Error('Txn: the failure branch answered without its range');
      out.current = range.kvs[0] ?? null;
    }
    return out;
  }

  /** DeleteRange over [key, rangeEnd) (null: the key alone), with the deleted pairs when `prevKv`. */
  async deleteRange(key: Uint8Array, rangeEnd: Uint8Array | null, timeoutMs: number, prevKv = false): Promise<DeleteRangeResponse> {
    const req = encodeDeleteRangeRequest({ key, ...(rangeEnd ? { range_end: rangeEnd } : {}), prev_kv: prevKv });
    return decodeDeleteRangeResponse(await this.call('/etcdserverpb.KV/DeleteRange', req, timeoutMs));
  }

  /** Any Txn, answered as the member answers it. */
  async txn(req: TxnRequestInit, timeoutMs: number): Promise<TxnResponse> {
    return decodeTxnResponse(await this.call('/etcdserverpb.KV/Txn', encodeTxnRequest(req), timeoutMs));
  }

  /** Compact at `revision` (not physical: the answer comes when the compaction is applied). */
  async compact(revision: number, timeoutMs: number): Promise<{ revision: number }> {
    const r = decodeCompactionResponse(await this.call('/etcdserverpb.KV/Compact', encodeCompactionRequest({ revision }), timeoutMs));
    return { revision: r.header?.revision ?? 0 };
  }

  close(): void {
    this.session.destroy();
  }
}

// ---- etcdctl views ----

/** What `etcdctl endpoint status -w json` says about one member. */
export interface EndpointStatus {
  endpoint: string;
  memberId: string;
  leader: string;
  revision: number;
  raftTerm: number;
  /** The response header's raft_term. */
  headerRaftTerm: number;
  raftIndex: number;
  raftAppliedIndex: number;
}

/** `etcdctl endpoint status -w json` for one endpoint. */
export async function endpointStatus(endpoint: string, timeoutMs = 5_000): Promise<EndpointStatus> {
  const r = await etcdctl(endpoint, ['endpoint', 'status', '-w', 'json', `--command-timeout=${Math.ceil(timeoutMs / 1000)}s`], {
    timeoutMs: timeoutMs + 2_000,
  });
  if (r.code !== 0) throw new Error(`etcdctl endpoint status ${endpoint}: exit ${r.code}: ${r.stderr}`);
  const [s] = JSON.parse(r.stdout) as Array<{
    Endpoint: string;
    Status: {
      header: { member_id: number | string; revision: number; raft_term: number };
      leader: number | string;
      raftIndex: number;
      raftTerm: number;
      raftAppliedIndex: number;
    };
  }>;
  if (s === undefined) throw new Error(`etcdctl endpoint status ${endpoint}: no answer in ${r.stdout}`);
  // IDs use all 64 bits: read them from the text, JSON.parse would round them.
  return {
    endpoint: s.Endpoint,
    memberId: /"member_id":(\d+)/.exec(r.stdout)?.[1] ?? String(s.Status.header.member_id),
    leader: /"leader":(\d+)/.exec(r.stdout)?.[1] ?? String(s.Status.leader),
    revision: s.Status.header.revision,
    raftTerm: s.Status.raftTerm,
    headerRaftTerm: s.Status.header.raft_term,
    raftIndex: s.Status.raftIndex,
    raftAppliedIndex: s.Status.raftAppliedIndex,
  };
}

/**
 * Every key of a member as `etcdctl get "" --from-key --consistency=s -w json` shows it (served from the
 * member's own state), one line per key.
 */
export async function serializableDump(endpoint: string): Promise<{ revision: number; lines: string[] }> {
  const r = await etcdctl(endpoint, ['get', '', '--from-key', '--consistency=s', '-w', 'json', '--command-timeout=20s'], {
    timeoutMs: 30_000,
  });
  if (r.code !== 0) throw new Error(`etcdctl get --consistency=s ${endpoint}: exit ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
  const doc = JSON.parse(r.stdout) as {
    header: { revision: number };
    kvs?: Array<{ key: string; value?: string; create_revision: number; mod_revision: number; version: number }>;
  };
  const lines = (doc.kvs ?? []).map(
    (kv) =>
      `${Buffer.from(kv.key, 'base64').toString('latin1')} = ${Buffer.from(kv.value ?? '', 'base64').toString('latin1')} (create ${kv.create_revision}, mod ${kv.mod_revision}, version ${kv.version})`,
  );
  return { revision: doc.header.revision, lines };
}

/**
 * Waits until every running member reports the same revision and applied index (twice in a row), then
 * checks that their serializable dumps of all keys are identical. Returns the common revision and dump.
 */
export async function waitConverged(c: LocalCluster, timeoutMs: number): Promise<{ revision: number; lines: string[] }> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let stableRounds = 0;
  while (Date.now() < deadline) {
    const live = c.members.filter((m) => m.running && !m.paused);
    let statuses: EndpointStatus[];
    try {
      statuses = await Promise.all(live.map((m) => endpointStatus(m.endpoint)));
    } catch (e) {
      last = (e as Error).message;
      stableRounds = 0;
      await sleep(300);
      continue;
    }
    last = statuses
      .map(
        (s) =>
          `${s.endpoint}: revision ${s.revision}, applied ${s.raftAppliedIndex}, index ${s.raftIndex}, term ${s.raftTerm}, leader ${s.leader}`,
      )
      .join('\n');
    const same = statuses.every((s) => s.revision === statuses[0]!.revision && s.raftAppliedIndex === statuses[0]!.raftAppliedIndex);
    stableRounds = same ? stableRounds + 1 : 0;
    if (stableRounds >= 2) {
      const dumps = await Promise.all(live.map((m) => serializableDump(m.endpoint)));
      const first = dumps[0]!;
      const differ = dumps.findIndex((d) => d.revision !== first.revision || d.lines.join('\n') !== first.lines.join('\n'));
      if (differ < 0) return first;
      last = `dumps differ: ${live[0]!.name} vs ${live[differ]!.name}:\n${diffLines(first.lines, dumps[differ]!.lines)}`;
      stableRounds = 0;
    }
    await sleep(300);
  }
  throw new Error(`members did not converge within ${timeoutMs} ms:\n${last}`);
}

function diffLines(a: string[], b: string[], max = 10): string {
  const out: string[] = [];
  const sa = new Set(a);
  const sb = new Set(b);
  for (const l of a) if (!sb.has(l) && out.length < max) out.push(`- ${l}`);
  for (const l of b) if (!sa.has(l) && out.length < max) out.push(`+ ${l}`);
  return out.join('\n');
}

// ---- a put load with exact bookkeeping ----

/** An acknowledged put of the load. */
export interface AckedPut {
  value: Buffer;
  revision: number;
  endpoint: string;
  returnMs: number;
}

/**
 * `writers` concurrent clients, each putting fresh keys `<prefix>/<writer>/<seq>` through one member at a
 * time (moving to the next member after an error). Every key is written once, so "no acknowledged write
 * lost" is exact: each acked key must exist with its value and revision; any other key present must be
 * one whose put had an unknown outcome. Uses grpc-kv's KvClient (no retries).
 *
 *   const load = new PutLoad(cluster, 'load', 4); load.start(); ...; await load.stop();
 */
export class PutLoad {
  readonly acked = new Map<string, AckedPut>();
  readonly unknown = new Set<string>();
  errors = 0;
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly cluster: LocalCluster,
    readonly prefix: string,
    private readonly writers: number,
    private readonly opTimeoutMs = 1_000,
  ) {}

  start(): void {
    if (this.running) throw new Error('load already running');
    this.running = true;
    for (let w = 0; w < this.writers; w++) this.loops.push(this.writer(w));
  }

  private async writer(w: number): Promise<void> {
    const endpoints = this.cluster.members.map((m) => m.endpoint);
    let at = w % endpoints.length;
    let client: KvClient | null = null;
    for (let seq = 0; this.running; seq++) {
      client ??= new KvClient(endpoints[at]!);
      const key = `${this.prefix}/${w}/${seq}`;
      const value = Buffer.from(`v${w}.${seq}`);
      this.unknown.add(key);
      try {
        const r = await client.put(Buffer.from(key), value, this.opTimeoutMs);
        this.unknown.delete(key);
        this.acked.set(key, { value, revision: Number(r.revision), endpoint: endpoints[at]!, returnMs: Date.now() });
      } catch {
        this.errors++;
        client.close();
        client = null;
        at = (at + 1) % endpoints.length;
        await sleep(20);
      }
    }
    client?.close();
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  /**
   * Reads the whole prefix through `endpoint` (linearizable) and returns every discrepancy: an acked key
   * missing or with another value or revision, or a key no one tried to write.
   */
  async lostWrites(endpoint: string): Promise<string[]> {
    const kv = new ExactKv(endpoint);
    try {
      const p = Buffer.from(this.prefix + '/');
      const r = await kv.range(p, prefixEnd(p), 10_000);
      const present = new Map<string, KeyValue>();
      for (const x of r.kvs) present.set(Buffer.from(x.key).toString('latin1'), x);
      const problems: string[] = [];
      for (const [key, a] of this.acked) {
        const x = present.get(key);
        if (x === undefined) problems.push(`acknowledged ${key} (revision ${a.revision} via ${a.endpoint}) is missing`);
        else if (!Buffer.from(x.value).equals(a.value) || x.mod_revision !== a.revision) {
          problems.push(`acknowledged ${key} = ${a.value} at ${a.revision} reads back as ${Buffer.from(x.value)} at ${x.mod_revision}`);
        }
      }
      for (const key of present.keys()) {
        if (!this.acked.has(key) && !this.unknown.has(key)) problems.push(`${key} exists but was never written`);
      }
      return problems;
    } finally {
      kv.close();
    }
  }
}

/**
 * Fires a put every `intervalMs` at each of `members` (at most `inFlightMax` unanswered at once) until one
 * succeeds; resolves with when (Date.now()) and through whom. Measures "a write succeeds via the survivors".
 */
export async function firstWrite(
  members: readonly ClusterMember[],
  key: Uint8Array,
  timeoutMs: number,
  intervalMs = 50,
  inFlightMax = 200,
): Promise<{ atMs: number; via: string }> {
  const clients = members.map((m) => ({ m, kv: new ExactKv(m.endpoint) }));
  const deadline = Date.now() + timeoutMs;
  let inFlight = 0;
  let seq = 0;
  try {
    return await new Promise((resolve, reject) => {
      let done = false;
      const fire = () => {
        if (done) return;
        if (Date.now() > deadline) {
          done = true;
          clearInterval(timer);
          reject(new Error(`no write succeeded within ${timeoutMs} ms`));
          return;
        }
        for (const c of clients) {
          if (inFlight >= inFlightMax) break;
          if (c.kv.broken) c.kv = new ExactKv(c.m.endpoint);
          inFlight++;
          c.kv.put(key, Buffer.from(`probe-${seq++}`), 2_000).then(
            () => {
              inFlight--;
              if (!done) {
                done = true;
                clearInterval(timer);
                resolve({ atMs: Date.now(), via: c.m.name });
              }
            },
            () => {
              inFlight--;
            },
          );
        }
      };
      const timer = setInterval(fire, intervalMs);
      fire();
    });
  } finally {
    for (const c of clients) c.kv.close();
  }
}

// ---- the linearizability run: clients and nemesis ----

/** Knobs of a linearizability run. */
export interface LinRunOptions {
  clients: number;
  keys: number;
  durationMs: number;
  opTimeoutMs: number;
  seed: number;
  /** Nemesis variety of the long run (rolling restarts, long pauses). */
  long: boolean;
  /**
   * Most operations per second, all clients together (0 = as fast as the cluster answers). Keeps a long
   * run's history within the recorder's and the checker's bounds however fast the server gets, while
   * operations still overlap every fault of the whole run.
   */
  opsPerSecondMax?: number;
  /**
   * Gets and ranges are serializable (served from the member's own state, no ReadIndex): only for proving a
   * harness catches the stale reads that allows.
   */
  serializableReads?: boolean;
  log: (line: string) => void;
}

/** Faults beyond kills and pauses, for the long run. */
export interface NemesisExtras {
  /** Partitions through the peer proxies of a peerProxy cluster. */
  net?: PeerNet;
  /** Rolls back a killed member's unsynced writes (members under the power-loss shim); returns a summary. */
  powerLoss?: (m: ClusterMember) => string;
  /** Sets (or clears) the disk failure a member's shim injects from its next start (POWERLOSS_FAIL syntax). */
  failDisk?: (m: ClusterMember, spec: string | undefined) => void;
}

/** What the nemesis did, for the report. */
export interface NemesisEvent {
  atMs: number;
  what: string;
}

/**
 * Faults, one member at a time (a minority of 3), with the member healthy again before the next:
 * SIGKILL of the leader or of a random member then restart; SIGSTOP of the leader or a random member for a
 * few seconds then SIGCONT; in the long run also longer pauses (a member cut off) and rolling graceful
 * restarts. Actions are dealt from a shuffled deck, so every kind happens once before any repeats (a short
 * run cannot miss one by chance). Runs until `untilMs` (Date.now() scale).
 */
export async function runNemesis(
  c: LocalCluster,
  untilMs: number,
  rng: () => number,
  long: boolean,
  log: (l: string) => void,
  extras: NemesisExtras = {},
): Promise<NemesisEvent[]> {
  const events: NemesisEvent[] = [];
  const started = Date.now();
  const note = (what: string) => {
    events.push({ atMs: Date.now() - started, what });
    log(`nemesis +${((Date.now() - started) / 1000).toFixed(1)}s: ${what}`);
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
  const between = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo));
  const actions = long
    ? ['kill-leader', 'kill-random', 'pause-leader', 'pause-random', 'pause-long', 'rolling-restart', 'kill-restart-now']
    : ['kill-leader', 'kill-random', 'pause-leader', 'pause-random'];
  if (long && extras.net) actions.push('partition-leader', 'partition-out-leader', 'partition-random');
  if (long && extras.powerLoss) actions.push('power-loss-random', 'power-loss-all');
  if (long && extras.powerLoss && extras.failDisk) actions.push('disk-error-random', 'disk-error-leader');
  let deck: string[] = [];
  while (Date.now() < untilMs) {
    await sleep(between(1_000, 3_000));
    if (Date.now() >= untilMs) break;
    if (deck.length === 0) {
      deck = [...actions];
      for (let i = deck.length - 1; i > 0; i--) {
        const j = Math.floor(rng() * (i + 1));
        [deck[i], deck[j]] = [deck[j]!, deck[i]!];
      }
    }
    const action = deck.pop()!;
    let target: ClusterMember;
    if (action.endsWith('-leader')) {
      try {
        target = await c.leader(5_000);
      } catch {
        deck.push(action);
        note('no leader to hit; waiting');
        continue;
      }
    } else {
      target = pick(c.members);
    }
    switch (action) {
      case 'kill-leader':
      case 'kill-random':
      case 'kill-restart-now': {
        await target.kill('SIGKILL');
        const downMs = action === 'kill-restart-now' ? 0 : between(500, 4_000);
        note(`SIGKILL ${target.name}${action === 'kill-leader' ? ' (leader)' : ''}, restart in ${downMs} ms`);
        await sleep(downMs);
        target.start();
        break;
      }
      case 'pause-leader':
      case 'pause-random':
      case 'pause-long': {
        const pauseMs = action === 'pause-long' ? between(8_000, 15_000) : between(1_500, 5_000);
        target.pause();
        note(`SIGSTOP ${target.name}${action === 'pause-leader' ? ' (leader)' : ''} for ${pauseMs} ms`);
        await sleep(pauseMs);
        target.resume();
        break;
      }
      case 'partition-leader':
      case 'partition-out-leader':
      case 'partition-random': {
        const net = extras.net!;
        const holdMs = between(2_000, 8_000);
        const others = c.members.filter((m) => m !== target).map((m) => m.name);
        if (action === 'partition-out-leader') net.setLinks([target.name], others, { drop: true });
        else net.isolate(target.name, rng() < 0.5 ? 'drop' : 'cut');
        note(
          `${action === 'partition-out-leader' ? 'drop the outgoing peer traffic of' : 'isolate'} ${target.name}${action.endsWith('-leader') ? ' (leader)' : ''} for ${holdMs} ms`,
        );
        await sleep(holdMs);
        net.heal();
        break;
      }
      case 'power-loss-random':
      case 'power-loss-all': {
        const hit = action === 'power-loss-all' ? c.members : [target];
        for (const m of hit) if (m.running) await m.kill('SIGKILL');
        const summaries = hit.map((m) => `${m.name}: ${extras.powerLoss!(m)}`);
        note(`power loss of ${hit.map((m) => m.name).join(', ')} (${summaries.join('; ')})`);
        for (const m of hit) m.start();
        if (action === 'power-loss-all') await c.waitHealthy(30_000);
        break;
      }
      case 'disk-error-random':
      case 'disk-error-leader': {
        // Restarted on a disk that fails one call: the member stops writing (and says why); then it loses power
        // (what its failed syncs did not make durable is gone) and comes back on a healthy disk.
        const spec = pick([
          `fdatasync:/member/wal/:${between(5, 60)}:EIO`,
          `write:/member/wal/:${between(10, 120)}:ENOSPC`,
          `fdatasync:/member/snap/db:${between(2, 8)}:EIO`,
        ]);
        await target.kill('SIGKILL');
        extras.failDisk!(target, spec);
        target.start();
        const brokenMs = between(3_000, 8_000);
        note(`${target.name}${action.endsWith('-leader') ? ' (leader)' : ''} restarted on a failing disk (${spec}) for ${brokenMs} ms`);
        await sleep(brokenMs);
        await target.kill('SIGKILL');
        const summary = extras.powerLoss!(target);
        extras.failDisk!(target, undefined);
        note(`${target.name} back on a healthy disk after a power loss (${summary})`);
        target.start();
        break;
      }
      case 'rolling-restart':
        note('rolling restart (SIGTERM, start, healthy) of every member');
        for (const m of c.members) {
          await m.stop();
          m.start();
          await m.waitHealthy(30_000);
        }
        break;
    }
    await target.waitHealthy(30_000);
  }
  return events;
}

/** Per-client view of a key: what it last read, for its next compare-and-set. */
interface Seen {
  value: Buffer | null;
  mod: number;
}

/** The keys of a linearizability run share this prefix. */
const KEY_PREFIX = Buffer.from('lin/');
/** A range reads at most this many keys (each is an op of the per-key check). */
const RANGE_KEYS_MAX = 4;

/**
 * `clients` concurrent clients doing get, range over up to RANGE_KEYS_MAX neighbouring keys, put, txn
 * putting 2-3 keys, and cas (by value or by mod_revision) on `keys` keys against every member until `untilMs`
 * (a time, or a function asked before each operation), recording everything in `h` (ranges and txns as
 * groups). Any error is an unknown outcome; the client then reconnects to the next member (`c.members` is read
 * again then: a cluster that grows or shrinks). Values are unique (`c<client>-<seq>[.i]`).
 */
export async function runClients(
  c: LocalCluster,
  h: HistoryRecorder,
  o: LinRunOptions,
  untilMs: number | (() => number),
  rng: () => number,
): Promise<void> {
  const until = typeof untilMs === 'number' ? () => untilMs : untilMs;
  const keys = Array.from({ length: o.keys }, (_, i) => Buffer.from(`${KEY_PREFIX.toString('latin1')}k${i}`));
  const sorted = [...keys].sort(Buffer.compare);
  // Read again at each (re)connection: a cluster whose membership changes during the run has new members.
  const endpoints = () => c.members.map((m) => m.endpoint);
  const one = async (id: number): Promise<void> => {
    let at = id;
    let kv: ExactKv | null = null;
    const seen = new Map<number, Seen>();
    const gapMs = (o.opsPerSecondMax ?? 0) > 0 ? (o.clients * 1000) / o.opsPerSecondMax! : 0;
    let nextAt = Date.now();
    for (let seq = 0; Date.now() < until(); seq++) {
      if (gapMs > 0) {
        nextAt += gapMs;
        const wait = nextAt - Date.now();
        if (wait > 0) await sleep(wait);
        else if (wait < -1000) nextAt = Date.now(); // after a stall, do not burst to catch up
      }
      if (kv === null) {
        const eps = endpoints();
        kv = new ExactKv(eps[at % eps.length]!);
      }
      const ki = Math.floor(rng() * keys.length);
      const key = keys[ki]!;
      const r = rng();
      let failed = false;
      if (r < 0.1) {
        // A range over up to RANGE_KEYS_MAX keys next to each other: one snapshot of several keys.
        const at0 = Math.floor(rng() * sorted.length);
        const inRange = sorted.slice(at0, at0 + 1 + Math.floor(rng() * RANGE_KEYS_MAX));
        const end = at0 + inRange.length < sorted.length ? sorted[at0 + inRange.length]! : prefixEnd(KEY_PREFIX);
        const ops = h.invokeGroup(id, 'get', inRange);
        try {
          const g = await kv.range(inRange[0]!, end, o.opTimeoutMs, o.serializableReads === true);
          const got = new Map(g.kvs.map((x) => [Buffer.from(x.key).toString('latin1'), x]));
          h.okGroup(
            ops,
            inRange.map((k) => {
              const x = got.get(k.toString('latin1'));
              return { found: x ? x.value : null, modRevision: x ? x.mod_revision : 0, revision: g.revision };
            }),
          );
          if (g.kvs.length > inRange.length) throw new Error(`range ${inRange[0]}: ${g.kvs.length} keys, asked ${inRange.length}`);
        } catch (err) {
          if (ops[0]!.status === 'ok') throw err;
          failed = true;
        }
      } else if (r < 0.18) {
        // A txn putting 2-3 keys at once.
        const n = 2 + Math.floor(rng() * 2);
        const chosen = [...new Set(Array.from({ length: n }, () => keys[Math.floor(rng() * keys.length)]!))];
        const values = chosen.map((_, i) => Buffer.from(`c${id}-${seq}.${i}`));
        const ops = h.invokeGroup(id, 'put', chosen, values);
        try {
          const t = await kv.txn({ success: chosen.map((k, i) => ({ request_put: { key: k, value: values[i]! } })) }, o.opTimeoutMs);
          const revision = t.header?.revision ?? 0;
          h.okGroup(
            ops,
            ops.map(() => ({ revision })),
          );
          chosen.forEach((k, i) => seen.set(keys.indexOf(k), { value: values[i]!, mod: revision }));
        } catch {
          failed = true;
        }
      } else if (r < 0.4) {
        const op = h.invoke(id, 'get', key);
        try {
          const g = await kv.get(key, o.opTimeoutMs, o.serializableReads === true);
          h.ok(op, { found: g.kv ? g.kv.value : null, modRevision: g.kv ? g.kv.mod_revision : 0, revision: g.revision });
          seen.set(ki, { value: g.kv ? Buffer.from(g.kv.value) : null, mod: g.kv ? g.kv.mod_revision : 0 });
        } catch {
          h.unknown(op);
          failed = true;
        }
      } else if (r < 0.7) {
        const value = Buffer.from(`c${id}-${seq}`);
        const op = h.invoke(id, 'put', key, { value });
        try {
          const p = await kv.put(key, value, o.opTimeoutMs);
          h.ok(op, { revision: p.revision });
          seen.set(ki, { value, mod: p.revision });
        } catch {
          h.unknown(op);
          failed = true;
        }
      } else {
        const s = seen.get(ki) ?? { value: null, mod: 0 };
        const value = Buffer.from(`c${id}-${seq}`);
        // etcd's value compare on a missing key always fails, so "absent" is asked as mod_revision = 0.
        const byMod = s.value === null || rng() < 0.5;
        const op = h.invoke(id, 'cas', key, { value, expect: s.value, ...(byMod ? { expectModRevision: s.mod } : {}) });
        try {
          const x = await kv.cas(key, byMod ? { modRevision: s.mod } : { value: s.value! }, value, o.opTimeoutMs);
          if (x.succeeded) {
            h.ok(op, { succeeded: true, revision: x.revision });
            seen.set(ki, { value, mod: x.revision });
          } else {
            h.ok(op, {
              succeeded: false,
              found: x.current ? x.current.value : null,
              modRevision: x.current ? x.current.mod_revision : 0,
              revision: x.revision,
            });
            seen.set(ki, { value: x.current ? Buffer.from(x.current.value) : null, mod: x.current ? x.current.mod_revision : 0 });
          }
        } catch {
          h.unknown(op);
          failed = true;
        }
      }
      if (failed) {
        kv.close();
        kv = null;
        at++;
        await sleep(50);
      }
    }
    kv?.close();
  };
  await Promise.all(Array.from({ length: o.clients }, (_, i) => one(i)));
}

/** Reads every key through every member (linearizable) into the history: the last word on lost writes. */
export async function finalReads(c: LocalCluster, h: HistoryRecorder, keys: number, client: number): Promise<void> {
  for (const m of c.members) {
    const kv = new ExactKv(m.endpoint);
    try {
      for (let i = 0; i < keys; i++) {
        const key = Buffer.from(`lin/k${i}`);
        const op = h.invoke(client, 'get', key);
        try {
          const g = await kv.get(key, 10_000);
          h.ok(op, { found: g.kv ? g.kv.value : null, modRevision: g.kv ? g.kv.mod_revision : 0, revision: g.revision });
        } catch {
          h.unknown(op);
        }
      }
    } finally {
      kv.close();
    }
  }
}

/** Saves a history where it survives the test's temp-dir cleanup; returns the path. */
export function saveHistory(json: string, seed: number): string {
  const dir = join('/tmp', 'tetcd-lincheck');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `history-${seed}-${Date.now()}.json`);
  writeFileSync(file, json);
  return file;
}
