// The `etcd3` npm client (grpc-js based) against the system under test, compared with what the same calls
// return from a fresh real etcd 3.4: put/get/delete, range/prefix/sort/limit, revisions, txn if/then/else
// on every compare target (incl. lease), and the error cases. Responses are compared after normalizing the
// header's IDs and raft term and lease IDs (see helpers/normalize.ts); revisions and values are compared raw.
import { Etcd3 } from 'etcd3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runningChildren } from '../helpers/cleanup.js';
import { startMember, type Member } from '../helpers/member.js';
import { Normalizer } from '../helpers/normalize.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { outcome } from '../helpers/outcome.js';

/** Per-side state the steps share (the lease a step granted, on this side). */
interface Ctx {
  client: Etcd3;
  leaseId: string;
}

type Step = [name: string, run: (c: Ctx) => Promise<unknown>];

const STEPS: Step[] = [
  ['put foo=bar', (c) => c.client.put('foo').value('bar').exec()],
  ['get foo as string', (c) => c.client.get('foo').string()],
  ['get foo, full response', (c) => c.client.get('foo').exec()],
  ['put foo=baz returning the previous kv', (c) => c.client.put('foo').value('baz').getPrevious()],
  [
    'put foo1, foo2, fop, zoo',
    async (c) => {
      const out = [];
      for (const [k, v] of [
        ['foo1', 'a'],
        ['foo2', 'b'],
        ['fop', 'c'],
        ['zoo', 'd'],
      ] as const)
        out.push(await c.client.put(k).value(v).exec());
      return out;
    },
  ],
  ['exists foo / nothing', async (c) => [await c.client.get('foo').exists(), await c.client.get('nothing').exists()]],
  ['getAll prefix foo as strings', (c) => c.client.getAll().prefix('foo').strings()],
  ['getAll prefix f keys', (c) => c.client.getAll().prefix('f').keys()],
  ['getAll prefix f count', (c) => c.client.getAll().prefix('f').count()],
  ['getAll all, sorted by key descending, limit 2', (c) => c.client.getAll().all().sort('Key', 'Descend').limit(2).exec()],
  ['getAll prefix foo sorted by mod revision ascending', (c) => c.client.getAll().prefix('foo').sort('Mod', 'Ascend').keys()],
  ['getAll in range [foo1, zoo)', (c) => c.client.getAll().inRange({ start: 'foo1', end: 'zoo' }).strings()],
  ['get foo at revision 2', (c) => c.client.get('foo').revision(2).string()],
  ['get foo at revision 3, full response', (c) => c.client.get('foo').revision(3).exec()],
  ['get foo serializable', (c) => c.client.get('foo').serializable(true).string()],
  ['getAll with min/max mod revision filters', (c) => c.client.getAll().prefix('f').minModRevision(4).maxModRevision(6).keys()],
  ['delete fop', (c) => c.client.delete().key('fop').exec()],
  ['delete nothing', (c) => c.client.delete().key('nothing').exec()],
  ['delete prefix foo returning previous kvs', (c) => c.client.delete().prefix('foo').getPrevious()],
  ['get deleted foo', (c) => c.client.get('foo').string()],
  ['put t=a', (c) => c.client.put('t').value('a').exec()],
  [
    'txn if value(t)==a then put t=b, get t else get t',
    (c) => c.client.if('t', 'Value', '==', 'a').then(c.client.put('t').value('b'), c.client.get('t')).else(c.client.get('t')).commit(),
  ],
  [
    'txn if value(t)==a (now false) then put t=x else get t, put u=1',
    (c) =>
      c.client
        .if('t', 'Value', '==', 'a')
        .then(c.client.put('t').value('x'))
        .else(c.client.get('t'), c.client.put('u').value('1'))
        .commit(),
  ],
  [
    'txn if version(t)>1 and create(t)<100 and mod(t)!=0',
    (c) =>
      c.client.if('t', 'Version', '>', 1).and('t', 'Create', '<', 100).and('t', 'Mod', '!=', 0).then(c.client.delete().key('u')).commit(),
  ],
  [
    'txn if version(missing)==0 then put missing=1',
    (c) => c.client.if('missing', 'Version', '==', 0).then(c.client.put('missing').value('1')).commit(),
  ],
  // Lease steps (grant, attach, the lease compare, revoke, lost) are in etcd3-lease.test.ts.
  ['txn if lease(t)==0 (no lease attached)', (c) => c.client.if('t', 'Lease', '==', 0).then(c.client.get('t')).commit()],
  ['error: get empty key', (c) => c.client.get('').exec()],
  ['error: put with a missing lease', (c) => c.client.put('k').value('v').lease('123').exec()],
  [
    'error: txn with a duplicate put',
    (c) => c.client.if('t', 'Version', '>', 0).then(c.client.put('d').value('1'), c.client.put('d').value('2')).commit(),
  ],
  ['compact at revision 5', (c) => c.client.kv.compact({ revision: '5', physical: true })],
  ['error: get at a compacted revision', (c) => c.client.get('t').revision(3).exec()],
  ['error: get at a future revision', (c) => c.client.get('t').revision(100000).exec()],
  ['error: compact at a compacted revision', (c) => c.client.kv.compact({ revision: '4' })],
  ['everything left, full response', (c) => c.client.getAll().all().exec()],
];

const target = compatTarget();
const t = oracleGate(test);
const members: Member[] = [];
const sides: Array<{ ctx: Ctx; norm: Normalizer }> = [];

t(`start a fresh etcd (oracle) and a fresh ${target}; connect etcd3 clients`, async () => {
  const [a, b] = await Promise.all([startMember('etcd', { name: 'm1' }), startMember(target, { name: 'm1' })]);
  members.push(a!, b!);
  for (const m of [a!, b!]) {
    const client = new Etcd3({ hosts: m.clientUrl, dialTimeout: 5_000 });
    const norm = new Normalizer({ clientPort: m.clientPort, peerPort: m.peerPort });
    const status = await client.maintenance.status();
    norm.learnId(BigInt(status.header.member_id), '<MEMBER_ID>');
    norm.learnId(BigInt(status.header.cluster_id), '<CLUSTER_ID>');
    sides.push({ ctx: { client, leaseId: '0' }, norm });
  }
});

for (const [name, run] of STEPS) {
  t(name, async () => {
    assert.is(sides.length, 2, 'clients did not connect');
    const [o, s] = sides as [(typeof sides)[0], (typeof sides)[0]];
    const expected = o.norm.normalize(await outcome(o.ctx, run));
    if (o.ctx.leaseId !== '0') o.norm.learnLease(BigInt(o.ctx.leaseId).toString(16));
    const actual = s.norm.normalize(await outcome(s.ctx, run));
    if (s.ctx.leaseId !== '0') s.norm.learnLease(BigInt(s.ctx.leaseId).toString(16));
    if (process.env.TETCD_COMPAT_VERBOSE === '1') process.stdout.write(`\n# ${name}\n${expected}\n`);
    assert.is(actual, expected, `${name}\n  etcd:   ${expected}\n  ${target}: ${actual}`);
  });
}

t('close clients and stop both members', async () => {
  for (const s of sides) s.ctx.client.close();
  await Promise.all(members.map((m) => m.stop()));
  assert.is(runningChildren(), 0);
});

test.run();
