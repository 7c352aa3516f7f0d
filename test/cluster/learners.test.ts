// Learners beyond etcd 3.4, on real processes through etcdctl: more than one learner with
// --experimental-max-learners (etcd 3.6's flag; etcd 3.4 has no such flag and always allows one, which the
// membership oracle, compat/member-etcdctl, compares), and --learner-auto-promote (tetcd's: the leader
// promotes a learner by itself once it caught up, etcd #15107); and MemberList's `linearizable` field
// (etcd 3.5's; etcd 3.4's clients send none and get the member's applied state).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import * as http2 from 'node:http2';
import { decodeMemberListResponse } from '../../src/proto/rpc.js';
import { unaryCall } from '../helpers/grpc-kv.js';
import { Member, startMember } from '../helpers/member.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { tempDir, runningChildren } from '../helpers/cleanup.js';
import { endpointStatus, sleep } from '../helpers/faults.js';
import { freePort } from '../../tools/lib/ports.js';

const FLAGS = ['--heartbeat-interval', '100', '--election-timeout', '1000'];

async function ctl(m: Member, args: string[]): Promise<string> {
  const r = await etcdctl(m.endpoint, args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} on ${m.name}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `member list -w json`: ID (hex) → whether it is a learner. */
async function learners(m: Member): Promise<Map<string, boolean>> {
  const out = JSON.parse(await ctl(m, ['member', 'list', '-w', 'json'])) as { members: Array<{ ID: string; isLearner?: boolean }> };
  // etcdctl's JSON prints IDs as decimal numbers; the text is parsed before precision is lost.
  const ids = [...(await ctl(m, ['member', 'list', '-w', 'json'])).matchAll(/"ID":(\d+)/g)].map((x) => BigInt(x[1]!).toString(16));
  return new Map(out.members.map((x, i) => [ids[i]!, x.isLearner === true]));
}

test('--experimental-max-learners 2: two learners are added, a third is refused with etcd 3.6’s error', async () => {
  const m1 = await startMember('tetcd', { name: 'm1', extraArgs: [...FLAGS, '--experimental-max-learners', '2'] });
  try {
    const add = async (port: number) =>
      etcdctl(m1.endpoint, ['member', 'add', `l${port}`, '--learner', `--peer-urls=http://127.0.0.1:${port}`]);
    const [a, b, c] = [await add(await freePort()), await add(await freePort()), await add(await freePort())];
    assert.is(a.code, 0, a.stderr);
    assert.is(b.code, 0, b.stderr);
    assert.is(c.code, 1);
    assert.match(c.stderr, /^Error: etcdserver: too many learner members in cluster$/m);
    assert.equal([...(await learners(m1)).values()].filter(Boolean).length, 2);
  } finally {
    await m1.stop();
  }
  assert.is(runningChildren(), 0);
});

test('--learner-auto-promote: a learner that caught up becomes a voter by itself; without the flag it stays a learner', async () => {
  const members: Member[] = [];
  try {
    for (const auto of [true, false]) {
      const m1 = await startMember('tetcd', { name: 'm1', extraArgs: [...FLAGS, ...(auto ? ['--learner-auto-promote'] : [])] });
      members.push(m1);
      for (let i = 0; i < 50; i++) await ctl(m1, ['put', `k${i}`, 'v']);
      const [client, peer] = [await freePort(), await freePort()];
      const out = await ctl(m1, ['member', 'add', 'l', '--learner', `--peer-urls=http://127.0.0.1:${peer}`]);
      const id = /Member +([0-9a-f]+) added/.exec(out)![1]!;
      const learner = new Member('tetcd', 'l', join(tempDir('tetcd-learner-'), 'data'), client, peer, {
        initialCluster: /ETCD_INITIAL_CLUSTER="([^"]*)"/.exec(out)![1]!,
        initialClusterState: 'existing',
        extraArgs: FLAGS,
        waitReady: false,
      });
      members.push(learner);
      await learner.start();
      // etcd's health interval (5 s connected) plus a few election timeouts of the check; without the flag,
      // past where it would have been promoted.
      const deadline = Date.now() + (auto ? 20_000 : 8_000);
      while ((await learners(m1)).get(id) === true && Date.now() < deadline) await sleep(250);
      const isLearner = (await learners(m1)).get(id);
      if (!auto) {
        assert.is(isLearner, true, 'without --learner-auto-promote the learner waits for MemberPromote');
        break;
      }
      assert.is(isLearner, false, `the learner was not promoted:\n${m1.logs().slice(-3000)}`);
      assert.match(m1.logs(), /promoted a learner that caught up/);
      // A voter now: it serves linearizable reads and writes, and the two make the quorum.
      assert.is(await ctl(learner, ['put', 'after', 'promotion']), 'OK\n');
      assert.match(await ctl(learner, ['get', 'k49']), /^k49\nv\n$/);
      assert.is((await endpointStatus(learner.endpoint)).raftAppliedIndex > 0, true);
      await Promise.all(members.splice(0).map((m) => m.stop()));
    }
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
  assert.is(runningChildren(), 0);
});

test('MemberList with linearizable set waits for a quorum; without it the member answers from what it applied', async () => {
  const m1 = await startMember('tetcd', { name: 'm1', extraArgs: FLAGS });
  const session = http2.connect(`http://${m1.endpoint}`);
  session.on('error', () => {});
  const list = async (linearizable: boolean, timeoutMs: number) =>
    decodeMemberListResponse(
      await unaryCall(session, '/etcdserverpb.Cluster/MemberList', Buffer.from(linearizable ? [0x08, 1] : []), timeoutMs),
    ).members.length;
  try {
    assert.is(await list(true, 5_000), 1);
    // A second voter that never starts: two voters, one up, no quorum.
    await ctl(m1, ['member', 'add', 'absent', `--peer-urls=http://127.0.0.1:${await freePort()}`]);
    assert.is(await list(false, 5_000), 2);
    const t0 = Date.now();
    const err = await list(true, 15_000).then(
      (n) => `answered ${n} members`,
      (e: Error) => e.message,
    );
    assert.match(err, /request timed out/);
    assert.ok(Date.now() - t0 >= 5_000, 'it waited for the quorum');
  } finally {
    session.close();
    await m1.stop();
  }
  assert.is(runningChildren(), 0);
});

test.run();
