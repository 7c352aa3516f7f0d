// The Lock and Election services, sent as raw gRPC to etcd 3.4 and tetcd and compared call by call:
// acquiring, waiting and hand-over (unlock, lease revoke), a waiter that gives up (its key goes again),
// a missing lease, an empty key; campaigning, proclaiming, resigning, a second candidate taking over,
// Leader and Observe, and the errors etcd's election server answers with. Lease IDs are the cluster's
// own, so each one is replaced by its order of appearance; revisions must match exactly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '../../tools/lib/grpcjs.js';
import { decodeLockResponse, decodeUnlockResponse, encodeLockRequest, encodeUnlockRequest } from '../../src/proto/v3lock.js';
import type { LockRequestInit, UnlockRequestInit } from '../../src/proto/v3lock.js';
import {
  decodeCampaignResponse,
  decodeLeaderResponse,
  decodeProclaimResponse,
  decodeResignResponse,
  encodeCampaignRequest,
  encodeLeaderRequest,
  encodeProclaimRequest,
  encodeResignRequest,
  type CampaignRequestInit,
  type LeaderKey,
  type LeaderRequestInit,
  type LeaderResponse,
  type ProclaimRequestInit,
  type ResignRequestInit,
} from '../../src/proto/v3election.js';
import {
  decodeLeaseGrantResponse,
  decodeLeaseRevokeResponse,
  decodeRangeResponse,
  encodeLeaseGrantRequest,
  encodeLeaseRevokeRequest,
  encodeRangeRequest,
} from '../../src/proto/rpc.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { runningChildren, track } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { startMember, type MemberKind } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const b = (s: string): Buffer => Buffer.from(s);

/** Replaces lease IDs (decimal or hex) with L1, L2, … in order of appearance. */
class LeaseNames {
  private readonly names = new Map<string, string>();
  add(id: bigint): string {
    const k = id.toString();
    let n = this.names.get(k);
    if (n === undefined) this.names.set(k, (n = `L${this.names.size + 1}`));
    return n;
  }
  text(s: string): string {
    let out = s;
    for (const [dec, name] of this.names) {
      out = out.split(BigInt(dec).toString(16)).join(name).split(dec).join(name);
    }
    return out;
  }
}

/**
 * An error as the comparison sees it. A call that outlives its deadline ends either by the client's own timer
 * (DEADLINE_EXCEEDED, whose text names the client's timings) or by the server's context, which etcd answers as
 * Unknown "context deadline exceeded": which one comes first is a race between two timers on the same instant
 * (seen both ways against etcd 3.4), so both read as one outcome.
 */
function showError(err: grpc.ServiceError): string {
  const serverDeadline = err.code === grpc.status.UNKNOWN && err.details === 'context deadline exceeded';
  if (err.code === grpc.status.DEADLINE_EXCEEDED || serverDeadline) return 'deadline exceeded';
  return `code=${err.code} ${err.details}`;
}

type Unary = <Req>(path: string, enc: (r: Req) => Uint8Array, req: Req, deadlineMs?: number) => Promise<{ err?: string; body?: Buffer }>;

function unaryOf(client: grpc.Client): Unary {
  return (path, enc, req, deadlineMs = 5000) =>
    new Promise((resolve) => {
      client.makeUnaryRequest(
        path,
        (x: Uint8Array) => Buffer.from(x),
        (x: Buffer) => x,
        enc(req),
        { deadline: Date.now() + deadlineMs },
        (err: grpc.ServiceError | null, body?: Buffer) => resolve(err ? { err: showError(err) } : { body }),
      );
    });
}

async function scenario(kind: MemberKind): Promise<string[]> {
  const m = await startMember(kind, { name: 'm1' });
  const client = new grpc.Client(m.endpoint, grpc.credentials.createInsecure());
  const call = unaryOf(client);
  const leases = new LeaseNames();
  const log: string[] = [];
  const note = (what: string, s: string): void => {
    log.push(`${what}: ${leases.text(s)}`);
  };
  // Client-chosen IDs, each below the last: later waiters' keys sort before earlier ones, so only an
  // order by create revision (not by key) picks the right holder.
  let nextId = 0x7000n;
  const grant = async (ttl: number): Promise<bigint> => {
    nextId -= 0x100n;
    const r = await call('/etcdserverpb.Lease/LeaseGrant', encodeLeaseGrantRequest, { TTL: ttl, ID: nextId });
    assert.ok(r.body, r.err);
    const id = decodeLeaseGrantResponse(r.body).ID;
    leases.add(id);
    return id;
  };
  const keys = async (prefix: string): Promise<string> => {
    const end = Buffer.from(prefix);
    end[end.length - 1]++;
    const r = await call('/etcdserverpb.KV/Range', encodeRangeRequest, { key: b(prefix), range_end: end });
    const res = decodeRangeResponse(r.body!);
    for (const kv of res.kvs) leases.add(kv.lease);
    return res.kvs.map((kv) => `${Buffer.from(kv.key)}@${kv.create_revision}`).join(' ');
  };
  const lock = async (req: LockRequestInit, deadlineMs?: number): Promise<string> => {
    const r = await call('/v3lockpb.Lock/Lock', encodeLockRequest, req, deadlineMs);
    if (r.err !== undefined) return r.err;
    const res = decodeLockResponse(r.body!);
    return `key=${Buffer.from(res.key)} rev=${res.header?.revision}`;
  };
  const unlock = async (req: UnlockRequestInit): Promise<string> => {
    const r = await call('/v3lockpb.Lock/Unlock', encodeUnlockRequest, req);
    return r.err ?? `rev=${decodeUnlockResponse(r.body!).header?.revision}`;
  };
  const campaign = async (req: CampaignRequestInit, deadlineMs?: number): Promise<{ text: string; leader?: LeaderKey }> => {
    const r = await call('/v3electionpb.Election/Campaign', encodeCampaignRequest, req, deadlineMs);
    if (r.err !== undefined) return { text: r.err };
    const res = decodeCampaignResponse(r.body!);
    const l = res.leader!;
    leases.add(l.lease);
    return { text: `rev=${res.header?.revision} leader=${Buffer.from(l.name)} ${Buffer.from(l.key)} ${l.rev} ${l.lease}`, leader: l };
  };
  const proclaim = async (req: ProclaimRequestInit): Promise<string> => {
    const r = await call('/v3electionpb.Election/Proclaim', encodeProclaimRequest, req);
    return r.err ?? `rev=${decodeProclaimResponse(r.body!).header?.revision}`;
  };
  const resign = async (req: ResignRequestInit): Promise<string> => {
    const r = await call('/v3electionpb.Election/Resign', encodeResignRequest, req);
    return r.err ?? `rev=${decodeResignResponse(r.body!).header?.revision}`;
  };
  const showLeader = (r: LeaderResponse): string => {
    const kv = r.kv!;
    leases.add(kv.lease);
    return `rev=${r.header?.revision} ${Buffer.from(kv.key)}=${Buffer.from(kv.value)} c${kv.create_revision} m${kv.mod_revision} v${kv.version} ${kv.lease}`;
  };
  const leader = async (req: LeaderRequestInit): Promise<string> => {
    const r = await call('/v3electionpb.Election/Leader', encodeLeaderRequest, req);
    return r.err ?? showLeader(decodeLeaderResponse(r.body!));
  };
  try {
    // --- Lock ---
    const l1 = await grant(30);
    note('lock free', await lock({ name: b('n'), lease: l1 }));
    note('lock again, same lease', await lock({ name: b('n'), lease: l1 }));
    note('lock missing lease', await lock({ name: b('n'), lease: 123n }));
    note('unlock empty key', await unlock({}));
    note('unlock missing key', await unlock({ key: b('nothing') }));
    // A waiter that gives up: its key is deleted again.
    const l2 = await grant(30);
    note('lock gives up', await lock({ name: b('n'), lease: l2 }, 600));
    await sleep(300);
    note('keys after giving up', await keys('n/'));
    // Hand-over on unlock.
    const l3 = await grant(30);
    const waiting = lock({ name: b('n'), lease: l3 });
    await sleep(300);
    note('keys while waiting', await keys('n/'));
    note('unlock holder', await unlock({ key: b(`n/${l1.toString(16)}`) }));
    note('waiter acquires', await waiting);
    // Hand-over on lease revoke.
    const l4 = await grant(30);
    const waiting2 = lock({ name: b('n'), lease: l4 });
    await sleep(300);
    const rv = await call('/etcdserverpb.Lease/LeaseRevoke', encodeLeaseRevokeRequest, { ID: l3 });
    note('revoke holder lease', rv.err ?? `rev=${decodeLeaseRevokeResponse(rv.body!).header?.revision}`);
    note('waiter acquires after revoke', await waiting2);
    // A Lock without a lease gets a session lease of its own.
    const solo = await lock({ name: b('solo') });
    note('solo keys', await keys('solo/')); // names the session's lease first
    note('lock without lease', solo);

    // --- Election ---
    note('leader, none', await leader({ name: b('e') }));
    note('proclaim without leader', await proclaim({ value: b('v') }));
    note('resign without leader', await resign({}));
    const observed: string[] = [];
    const obs = client.makeServerStreamRequest(
      '/v3electionpb.Election/Observe',
      (x: Uint8Array) => Buffer.from(x),
      (x: Buffer) => decodeLeaderResponse(x),
      encodeLeaderRequest({ name: b('e') }),
    );
    obs.on('data', (r: LeaderResponse) => observed.push(showLeader(r)));
    obs.on('error', () => {});
    await sleep(200);
    const e1 = await grant(30);
    const c1 = await campaign({ name: b('e'), lease: e1, value: b('one') });
    note('campaign first', c1.text);
    note('leader', await leader({ name: b('e') }));
    note('proclaim', await proclaim({ leader: c1.leader, value: b('uno') }));
    note('proclaim stale rev', await proclaim({ leader: { ...c1.leader!, rev: 1 }, value: b('x') }));
    note('proclaim empty key', await proclaim({ leader: { name: b('e'), lease: e1 }, value: b('x') }));
    note('campaign again, same lease, new value', (await campaign({ name: b('e'), lease: e1, value: b('eins') })).text);
    const e2 = await grant(30);
    const second = campaign({ name: b('e'), lease: e2, value: b('two') });
    await sleep(300);
    note('campaign missing lease', (await campaign({ name: b('e'), lease: 5n, value: b('x') })).text);
    note('campaign gives up', (await campaign({ name: b('e'), lease: await grant(30), value: b('three') }, 600)).text);
    await sleep(300);
    note('keys after campaign gave up', await keys('e/'));
    note('resign stale rev', await resign({ leader: { ...c1.leader!, rev: 1 } }));
    note('resign', await resign({ leader: c1.leader }));
    note('second elected', (await second).text);
    note('resign again', await resign({ leader: c1.leader }));
    note('leader after', await leader({ name: b('e') }));
    await sleep(300);
    obs.cancel();
    for (const o of observed) note('observed', o);
    return log;
  } finally {
    client.close();
    await m.stop();
  }
}

/** A long-running etcdctl (lock or elect holding on): its output so far, and a way to wait for a line. */
class Ctl {
  readonly child: ChildProcess;
  out = '';
  constructor(endpoint: string, args: string[]) {
    this.child = track(
      spawn('etcdctl', [`--endpoints=${endpoint}`, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ETCDCTL_API: '3' },
      }),
    );
    this.child.stdout!.on('data', (c: Buffer) => {
      this.out += c.toString();
    });
    this.child.stderr!.on('data', (c: Buffer) => {
      this.out += c.toString();
    });
  }
  async lines(n: number, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.out.split('\n').length - 1 < n && Date.now() < until) await sleep(20);
  }
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    // The child is unref'd (cleanup.ts): a ref'd timer keeps the test alive while it exits.
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    const exited = new Promise<number | null>((r) => this.child.once('exit', (code) => r(code)));
    this.child.kill('SIGINT');
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Session keys name a lease in hex: the comparison sees `name/<id>`. */
const ids = (s: string): string => s.replace(/\/[0-9a-f]{1,16}\b/g, '/<id>');

async function ctlScenario(kind: MemberKind): Promise<string[]> {
  const m = await startMember(kind, { name: 'm1' });
  const log: string[] = [];
  try {
    const once = await etcdctl(m.endpoint, ['lock', 'L', 'sh', '-c', 'echo "held $ETCD_LOCK_KEY"']);
    log.push(`lock with a command: ${once.code} ${ids(once.stdout + once.stderr)}`);
    const holder = new Ctl(m.endpoint, ['lock', 'L']);
    await holder.lines(1);
    const waiter = new Ctl(m.endpoint, ['lock', 'L', 'echo', 'second']);
    await sleep(500);
    log.push(`while held: holder ${ids(holder.out)} waiter ${JSON.stringify(waiter.out)}`);
    await holder.stop();
    await waiter.lines(1);
    log.push(`after the holder left: ${ids(waiter.out)}`);
    await waiter.stop();

    const observer = new Ctl(m.endpoint, ['elect', '-l', 'E']);
    const first = new Ctl(m.endpoint, ['elect', 'E', 'p1']);
    await first.lines(2);
    const second = new Ctl(m.endpoint, ['elect', 'E', 'p2']);
    await sleep(500);
    log.push(`elected: ${ids(first.out)} waiting: ${JSON.stringify(second.out)}`);
    await first.stop();
    await second.lines(2);
    await observer.lines(4);
    log.push(`next elected: ${ids(second.out)}`);
    log.push(`observed: ${ids(observer.out)}`);
    await second.stop();
    await observer.stop();
    return log;
  } finally {
    await m.stop();
  }
}

const target = compatTarget();
const t = oracleGate(test);

t(`Lock and Election answer as etcd's do (${target})`, async () => {
  const [want, got] = await Promise.all([scenario('etcd'), scenario(target)]);
  assert.equal(got, want);
  assert.is(runningChildren(), 0);
});

t(`etcdctl lock and elect behave as against etcd (${target})`, async () => {
  const [want, got] = await Promise.all([ctlScenario('etcd'), ctlScenario(target)]);
  assert.equal(got, want);
  assert.is(runningChildren(), 0);
});

test.run();
