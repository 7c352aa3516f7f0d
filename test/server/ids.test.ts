// Member and cluster IDs: etcd's own test vectors, then real etcd clusters (1 and 3 members, default and
// custom tokens, and a member added at run time) whose `member list` IDs and header cluster_id must equal ours.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapIds, clusterId, formatId, memberId, parseId, runtimeMemberId } from '../../src/server/ids.js';
import { runningChildren } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { startCluster, startEtcd, type Member } from '../helpers/member.js';
import { oracleGate } from '../helpers/oracle.js';
import { freePort } from '../../tools/lib/ports.js';

const at1984 = Date.parse('1984-12-23T15:04:05Z') / 1000;

test('memberId matches etcd membership/member_test.go vectors', () => {
  assert.is(memberId(['http://10.0.0.8:2379'], ''), 14544069596553697298n);
  assert.is(memberId(['http://10.0.0.8:2379'], '', at1984), 2448790162483548276n);
  assert.is(memberId(['http://10.0.0.8:2379'], 'etcd', at1984), 6973882743191604649n);
  assert.is(memberId(['http://10.0.0.1:2379'], '', at1984), 1466075294948436910n);
  assert.is(memberId(['http://10.0.0.1:2379', 'http://10.0.0.2:2379'], ''), 16552244735972308939n);
  assert.is(memberId(['http://10.0.0.2:2379', 'http://10.0.0.1:2379'], ''), 16552244735972308939n, 'URL order must not matter');
});

test('clusterId depends on the set of members, not their order', () => {
  const a = clusterId([1n, 2n]);
  assert.is(clusterId([2n, 1n]), a);
  assert.is.not(clusterId([1n, 2n, 3n]), a);
  assert.is.not(a, 0n);
  assert.throws(() => clusterId([-1n]), /not a uint64/);
});

test('bootstrapIds sorts members by ID and refuses identical IDs', () => {
  const r = bootstrapIds(
    [
      { name: 'b', peerUrls: ['http://127.0.0.1:2380'] },
      { name: 'a', peerUrls: ['http://127.0.0.1:2381'] },
    ],
    'etcd-cluster',
  );
  assert.ok(r.members[0]!.id < r.members[1]!.id);
  assert.is(r.clusterId, clusterId(r.members.map((m) => m.id)));
  assert.throws(
    () =>
      bootstrapIds(
        [
          { name: 'a', peerUrls: ['http://127.0.0.1:2380'] },
          { name: 'b', peerUrls: ['http://127.0.0.1:2380'] },
        ],
        't',
      ),
    /identical ID/,
  );
});

test('formatId and parseId round-trip etcd hex', () => {
  assert.is(formatId(0x8e9e05c52164694dn), '8e9e05c52164694d');
  assert.is(formatId(0xabcn), 'abc');
  assert.is(parseId('8e9e05c52164694d'), 0x8e9e05c52164694dn);
  assert.throws(() => parseId('xyz'));
  assert.throws(() => parseId('1'.repeat(17)));
});

/** `member list -w json` as bigints (etcdctl prints uint64 IDs as JSON numbers past 2^53). */
async function memberList(m: Member): Promise<{ clusterId: bigint; ids: Map<string, bigint> }> {
  const r = await etcdctl(m.endpoint, ['member', 'list', '-w', 'json']);
  assert.is(r.code, 0, r.stderr);
  const cid = /"cluster_id":(\d+)/.exec(r.stdout);
  assert.ok(cid, r.stdout);
  const ids = new Map<string, bigint>();
  for (const mm of r.stdout.matchAll(/"ID":(\d+),"name":"([^"]*)"/g)) ids.set(mm[2]!, BigInt(mm[1]!));
  return { clusterId: BigInt(cid[1]!), ids };
}

const t = oracleGate(test);

t('one-member etcd with the default token: same member and cluster ID', async () => {
  const m = await startEtcd({ name: 'solo' });
  try {
    const got = await memberList(m);
    const want = bootstrapIds([{ name: 'solo', peerUrls: [m.peerUrl] }], 'etcd-cluster');
    assert.is(got.ids.get('solo'), want.members[0]!.id);
    assert.is(got.clusterId, want.clusterId);
  } finally {
    await m.stop();
  }
});

t('three-member etcd with a custom token: every ID and the cluster ID match', async () => {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const ms = await startCluster('etcd', ['n1', 'n2', 'n3'], { initialClusterToken: token });
  try {
    const want = bootstrapIds(
      ms.map((m) => ({ name: m.name, peerUrls: [m.peerUrl] })),
      token,
    );
    for (const m of ms) {
      const got = await memberList(m);
      assert.is(got.clusterId, want.clusterId, `cluster_id seen by ${m.name}`);
      for (const w of want.members) assert.is(got.ids.get(w.name), w.id, `ID of ${w.name} seen by ${m.name}`);
    }
  } finally {
    await Promise.all(ms.map((m) => m.stop()));
  }
});

t('a learner added at run time gets runtimeMemberId: no token, hashed with the add time', async () => {
  const token = 'learner-token';
  const m = await startEtcd({ name: 'base', initialClusterToken: token });
  try {
    const peer = `http://127.0.0.1:${await freePort()}`;
    const beforeS = Math.floor(Date.now() / 1000);
    const r = await etcdctl(m.endpoint, ['member', 'add', 'late', '--learner', `--peer-urls=${peer}`, '-w', 'json']);
    const afterS = Math.ceil(Date.now() / 1000);
    assert.is(r.code, 0, r.stderr);
    const id = BigInt(/"member":\{"ID":(\d+)/.exec(r.stdout)![1]!);
    const candidates = [];
    for (let s = beforeS - 1; s <= afterS + 1; s++) candidates.push(runtimeMemberId([peer], s));
    assert.ok(candidates.includes(id), `ID ${formatId(id)} is not runtimeMemberId([${peer}], t) for t in [${beforeS - 1}, ${afterS + 1}]`);
    assert.is.not(id, memberId([peer], token), 'a runtime member must not get the bootstrap ID');
  } finally {
    await m.stop();
  }
});

t('nothing left running', () => {
  assert.is(runningChildren(), 0);
});

test.run();
