// The membership oracle: one scenario of `etcdctl member add/list/remove/update/promote` and `move-leader`,
// run on a fresh etcd 3.4 and on the system under test side by side, outputs and errors compared line by
// line. IDs differ (a new member's ID hashes the clock) and so do ports: both are learned and normalized.
// The scenario grows a member into a learner (the errors of a second learner, of a taken or bad peer URL,
// of promoting a learner that has not caught up, a voter, an unknown ID), starts it as a joining member,
// checks what a learner refuses, promotes it, moves leadership to it, removes the first member (which
// stops itself) and lists the one left.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { oracleGate, compatTarget } from '../helpers/oracle.js';
import { prepareSide, compareResults, type Side } from '../helpers/scenario.js';
import { etcdctl, type CtlResult } from '../helpers/etcdctl.js';
import { startMember, Member, type MemberKind } from '../helpers/member.js';
import { freePort } from '../../tools/lib/ports.js';
import { tempDir, runningChildren } from '../helpers/cleanup.js';
import { join } from 'node:path';

const t = oracleGate(test);
const TIMING = ['--heartbeat-interval', '50', '--election-timeout', '500'];
/** etcd counts a peer as healthy once connected this long (HealthInterval); removals wait past it. */
const HEALTH_INTERVAL_MS = 5_000;

interface Outcome {
  label: string;
  result: CtlResult;
}

/** Everything one side ran, in order, normalized. */
async function scenario(kind: MemberKind): Promise<{ outcomes: Outcome[]; logs: () => string }> {
  const [p2, p2b, p3] = [await freePort(), await freePort(), await freePort()];
  const c2 = await freePort();
  const m1 = await startMember(kind, { name: 'm1', extraArgs: TIMING });
  const members: Member[] = [m1];
  const logs = () => members.map((m) => `--- ${m.name}\n${m.logs().slice(-3000)}`).join('\n');
  const side: Side = await prepareSide(m1);
  const ports: Array<[number, string]> = [
    [p2, '<M2_PEER_PORT>'],
    [p2b, '<M2_PEER_PORT_B>'],
    [p3, '<M3_PEER_PORT>'],
    [c2, '<M2_CLIENT_PORT>'],
  ];
  const outcomes: Outcome[] = [];
  let m2: Member | undefined;
  /** Runs one step; a new member's ID it prints is learned before the output is normalized. */
  const run = async (on: 'm1' | 'm2', args: string[]): Promise<CtlResult> => {
    const endpoint = on === 'm1' ? m1.endpoint : m2!.endpoint;
    const r = await etcdctl(endpoint, args);
    const added = /Member +([0-9a-f]+) added/.exec(r.stdout)?.[1];
    if (added !== undefined) side.norm.learnId(BigInt('0x' + added), '<M2_ID>');
    const norm = (s: string) => {
      for (const [port, token] of ports) s = s.replace(new RegExp(`:${port}\\b`, 'g'), `:${token}`);
      // etcdctl prints IDs as %16x: a shorter ID is padded with spaces, which its placeholder must not keep.
      return memberOrderFree(side.norm.normalize(s).replace(/ {2,}</g, ' <'));
    };
    outcomes.push({ label: `[${on}] etcdctl ${args.join(' ')}`, result: { code: r.code, stdout: norm(r.stdout), stderr: norm(r.stderr) } });
    return r;
  };
  const url = (port: number) => `http://127.0.0.1:${port}`;
  try {
    await run('m1', ['member', 'list']);
    await run('m1', ['member', 'list', '-w', 'json']);
    const added = await run('m1', ['member', 'add', 'm2', '--learner', `--peer-urls=${url(p2)}`]);
    const id2 = /Member +([0-9a-f]+) added/.exec(added.stdout)?.[1];
    if (id2 === undefined) throw new Error(`member add printed no ID: ${added.stdout}${added.stderr}`);
    const id1 = (await etcdctl(m1.endpoint, ['endpoint', 'status', '-w', 'json'])).stdout.match(/"member_id":(\d+)/)![1]!;
    const id1hex = BigInt(id1).toString(16);
    await run('m1', ['member', 'list']);
    await run('m1', ['member', 'add', 'm3', '--learner', `--peer-urls=${url(p3)}`]);
    // Two URLs, one taken: the new ID differs from m2's even within the same second (the ID hashes the clock).
    await run('m1', ['member', 'add', 'm3', `--peer-urls=${url(p3)},${url(p2)}`]);
    await run('m1', ['member', 'add', 'm3', '--peer-urls=127.0.0.1:1']);
    await run('m1', ['member', 'add', 'm3', '--peer-urls=http://127.0.0.1:1/path']);
    await run('m1', ['member', 'promote', id2]);
    await run('m1', ['member', 'promote', id1hex]);
    await run('m1', ['member', 'promote', '1234']);
    await run('m1', ['member', 'remove', '1234']);
    await run('m1', ['member', 'update', '1234', `--peer-urls=${url(p3)}`]);
    // Updates on the voter: etcd 3.4 drops a learner's isLearner when its peer URLs are updated (the member
    // list then calls it a voter while Raft keeps it a learner); tetcd keeps it a learner, so no oracle here.
    await run('m1', ['member', 'update', id1hex, `--peer-urls=${url(p2)}`]);
    await run('m1', ['member', 'update', id1hex, `--peer-urls=${url(p2b)}`]);
    await run('m1', ['member', 'list']);
    await run('m1', ['member', 'update', id1hex, `--peer-urls=${m1.peerUrl}`]);
    await run('m1', ['member', 'list', '-w', 'json']);

    // The learner joins with what `member add` printed.
    m2 = new Member(kind, 'm2', join(tempDir(`tetcd-${kind}-`), 'data'), c2, p2, {
      initialCluster: `m1=${m1.peerUrl},m2=${url(p2)}`,
      initialClusterState: 'existing',
      extraArgs: TIMING,
      waitReady: false,
    });
    members.push(m2);
    await m2.start();
    await waitCaughtUp(m1, m2);
    const joinedAt = Date.now();
    await run('m1', ['member', 'list']);
    await run('m2', ['get', 'foo', '--consistency=s']);
    await run('m2', ['get', 'foo']);
    await run('m2', ['put', 'foo', 'bar']);
    await run('m2', ['member', 'list']);
    await run('m1', ['member', 'promote', id2]);
    await run('m1', ['member', 'list']);
    await run('m1', ['put', 'foo', 'bar']);
    await run('m2', ['get', 'foo']);
    await run('m2', ['move-leader', id1hex]);
    await run('m1', ['move-leader', '1234']);
    await run('m1', ['move-leader', id2]);
    await run('m2', ['endpoint', 'status']);
    await run('m1', ['move-leader', id1hex]);
    // Past etcd's health interval, so removing a voter that is up is judged on a settled connection.
    const wait = joinedAt + HEALTH_INTERVAL_MS + 500 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await run('m2', ['member', 'remove', id1hex]);
    const stopped = await m1.exitsWithin(10_000);
    outcomes.push({ label: 'm1 stops itself once removed', result: { code: stopped ? 0 : 1, stdout: '', stderr: '' } });
    await run('m2', ['member', 'list']);
    await run('m2', ['put', 'after', 'removal']);
    return { outcomes, logs };
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
}

/**
 * Members are listed in ID order, and IDs differ between the two sides (a new member's hashes the clock):
 * member rows, the members of a JSON answer and ETCD_INITIAL_CLUSTER's entries are sorted after
 * normalization, so only which members there are, and what each says, is compared.
 */
function memberOrderFree(s: string): string {
  s = s.replace(/^(?:<\w+>, (?:started|unstarted), .*\n)+/gm, (rows) => rows.split('\n').filter(Boolean).sort().join('\n') + '\n');
  s = s.replace(
    /"members":\[((?:\{[^{}]*\},?)*)\]/g,
    (_m, list: string) => `"members":[${(list.match(/\{[^{}]*\}/g) ?? []).sort().join(',')}]`,
  );
  return s.replace(/ETCD_INITIAL_CLUSTER="([^"]*)"/g, (_m, v: string) => `ETCD_INITIAL_CLUSTER="${v.split(',').sort().join(',')}"`);
}

/** Waits until the learner applied what the first member has (its serializable status answers). */
async function waitCaughtUp(m1: Member, m2: Member): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const a = await etcdctl(m1.endpoint, ['endpoint', 'status', '-w', 'json']);
    const b = await etcdctl(m2.endpoint, ['endpoint', 'status', '-w', 'json']);
    const applied = (s: string) => Number(/"raftAppliedIndex":(\d+)/.exec(s)?.[1] ?? -1);
    if (b.code === 0 && applied(b.stdout) >= applied(a.stdout) && applied(a.stdout) > 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`m2 did not catch up:\n${m2.logs().slice(-3000)}`);
}

t(`etcdctl member and move-leader: etcd 3.4 and ${compatTarget()} agree`, async () => {
  const [oracle, sut] = await Promise.all([scenario('etcd'), scenario(compatTarget())]);
  assert.is(oracle.outcomes.length, sut.outcomes.length, 'both scenarios ran every step');
  const diffs: string[] = [];
  for (let i = 0; i < oracle.outcomes.length; i++) {
    const a = oracle.outcomes[i]!;
    const b = sut.outcomes[i]!;
    if (process.env.TETCD_COMPAT_VERBOSE === '1')
      process.stdout.write(`\n# ${a.label}\n[${a.result.code}] ${a.result.stdout}${a.result.stderr}`);
    const d = compareResults(a.label, a.result, b.result);
    if (d !== null) diffs.push(d);
  }
  if (diffs.length > 0) assert.unreachable(`${diffs.join('\n')}\n--- ${compatTarget()} logs:\n${sut.logs()}`);
  assert.is(runningChildren(), 0);
});

test.run();
