// The `etcd3` npm client's lease API against a fresh etcd 3.4 and the system under test, outcomes compared
// after normalizing IDs (helpers/normalize.ts) and bucketing remaining TTLs: grant, put with a lease,
// keepaliveOnce, the automatic keep-alive stream, time-to-live with keys, the lease list, a revoke by someone
// else seen as the `lost` event, revoke, client-chosen IDs, the TTL limit, and a keep-alive of an unknown lease.
import { Etcd3, type Lease } from 'etcd3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runningChildren } from '../helpers/cleanup.js';
import { startMember, type Member } from '../helpers/member.js';
import { Normalizer } from '../helpers/normalize.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { outcome } from '../helpers/outcome.js';

interface Ctx {
  client: Etcd3;
  lease?: Lease;
  lease2?: Lease;
  /** Lease IDs (decimal strings) the steps granted, to be learned by the normalizer. */
  ids: string[];
  lost: Promise<string>;
}

type Step = [name: string, run: (c: Ctx) => Promise<unknown>];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A remaining TTL compared as "within (0, granted]", the part both servers must agree on. */
const ttlBucket = (ttl: unknown, granted: number): unknown => {
  const n = Number(ttl);
  return n > 0 && n <= granted ? `(0, ${granted}]` : ttl;
};

const STEPS: Step[] = [
  [
    'grant a 10 s lease (automatic keep-alive)',
    async (c) => {
      c.lease = c.client.lease(10);
      const id = await c.lease.grant();
      c.ids.push(id);
      return { id };
    },
  ],
  ['put two keys under the lease', async (c) => [await c.lease!.put('la').value('1').exec(), await c.lease!.put('lb').value('2').exec()]],
  ['get la: the kv carries the lease', (c) => c.client.get('la').exec()],
  ['keepaliveOnce', (c) => c.lease!.keepaliveOnce()],
  [
    'leaseTimeToLive with keys',
    async (c) => {
      const r = await c.client.leaseClient.leaseTimeToLive({ ID: c.ids[0], keys: true });
      return { ...r, TTL: ttlBucket(r.TTL, 10), keys: r.keys.map((k) => Buffer.from(k).toString()).sort() };
    },
  ],
  ['leaseLeases', (c) => c.client.leaseClient.leaseLeases()],
  [
    'the keep-alive stream keeps it alive past its TTL (12 s)',
    async (c) => {
      await sleep(12_000);
      const r = await c.client.leaseClient.leaseTimeToLive({ ID: c.ids[0] });
      return { alive: Number(r.TTL) > 0, keys: await c.client.getAll().prefix('l').keys() };
    },
  ],
  [
    'a second lease revoked by another caller: its holder sees `lost`, its key is gone',
    async (c) => {
      c.lease2 = c.client.lease(6);
      const id = await c.lease2.grant();
      c.ids.push(id);
      c.lost = new Promise<string>((resolve) =>
        c.lease2!.on('lost', (err) => resolve(`${err.constructor.name}: ${err.message.replace(id, '<this lease>')}`)),
      );
      await c.lease2.put('lc').value('3').exec();
      await c.client.leaseClient.leaseRevoke({ ID: id });
      const lost = await Promise.race([c.lost, sleep(8_000).then(() => 'no lost event within 8 s')]);
      return { lost, lc: await c.client.get('lc').string() };
    },
  ],
  [
    'revoke the first lease: its keys are deleted in one revision',
    async (c) => {
      const before = await c.client.get('zz').exec();
      await c.lease!.revoke();
      const after = await c.client.getAll().prefix('l').exec();
      return { revisionsAdvanced: Number(after.header.revision) - Number(before.header.revision), kvs: after.kvs };
    },
  ],
  ['revoke it again: not found', (c) => c.client.leaseClient.leaseRevoke({ ID: c.ids[0] })],
  ['time-to-live of the revoked lease: TTL -1', (c) => c.client.leaseClient.leaseTimeToLive({ ID: c.ids[0], keys: true })],
  ['grant with a client-chosen ID', (c) => c.client.leaseClient.leaseGrant({ ID: 12345, TTL: 30 })],
  ['grant the same ID again: already exists', (c) => c.client.leaseClient.leaseGrant({ ID: 12345, TTL: 30 })],
  ['grant with TTL 9000000001: too large', (c) => c.client.leaseClient.leaseGrant({ TTL: 9000000001 })],
  ['grant with a negative TTL: raised to the minimum', (c) => c.client.leaseClient.leaseGrant({ ID: 777, TTL: -3 })],
  [
    'txn comparing a key lease',
    async (c) => {
      await c.client.put('lt').value('x').lease('12345').exec();
      return c.client.if('lt', 'Lease', '==', '12345').then(c.client.get('lt')).commit();
    },
  ],
  [
    'a keep-alive of an unknown lease on the raw stream answers TTL 0',
    async (c) => {
      const stream = await c.client.leaseClient.leaseKeepAlive();
      const got = new Promise((resolve) => stream.on('data', resolve));
      stream.write({ ID: 4242 });
      const r = await got;
      stream.end();
      return r;
    },
  ],
  [
    'revoke the client-chosen leases',
    async (c) => [await c.client.leaseClient.leaseRevoke({ ID: 12345 }), await c.client.leaseClient.leaseRevoke({ ID: 777 })],
  ],
];

const target = compatTarget();
const t = oracleGate(test);
const members: Member[] = [];
const sides: Array<{ ctx: Ctx; norm: Normalizer; learned: number }> = [];

t(`start a fresh etcd (oracle) and a fresh ${target}; connect etcd3 clients`, async () => {
  const [a, b] = await Promise.all([startMember('etcd', { name: 'm1' }), startMember(target, { name: 'm1' })]);
  members.push(a!, b!);
  for (const m of [a!, b!]) {
    const client = new Etcd3({ hosts: m.clientUrl, dialTimeout: 5_000 });
    const norm = new Normalizer({ clientPort: m.clientPort, peerPort: m.peerPort });
    const status = await client.maintenance.status();
    norm.learnId(BigInt(status.header.member_id), '<MEMBER_ID>');
    norm.learnId(BigInt(status.header.cluster_id), '<CLUSTER_ID>');
    sides.push({ ctx: { client, ids: [], lost: Promise.resolve('') }, norm, learned: 0 });
  }
});

/** Runs a step on one side; lease IDs it granted are learned before its output is normalized. */
async function runOn(side: (typeof sides)[0], run: Step[1]): Promise<string> {
  const out = await outcome(side.ctx, run);
  for (; side.learned < side.ctx.ids.length; side.learned++) side.norm.learnLease(BigInt(side.ctx.ids[side.learned]).toString(16));
  // The client-chosen IDs are the same on both sides: keep them as they are.
  return side.norm.normalize(out);
}

for (const [name, run] of STEPS) {
  t(name, async () => {
    assert.is(sides.length, 2, 'clients did not connect');
    const [o, s] = sides as [(typeof sides)[0], (typeof sides)[0]];
    // Both sides run concurrently: the slow steps (waiting out TTLs) then cost their time once.
    const [expected, actual] = await Promise.all([runOn(o, run), runOn(s, run)]);
    if (process.env.TETCD_COMPAT_VERBOSE === '1') process.stdout.write(`\n# ${name}\n${expected}\n`);
    assert.is(actual, expected, `${name}\n  etcd:   ${expected}\n  ${target}: ${actual}`);
  });
}

t('close clients and stop both members', async () => {
  for (const s of sides) {
    s.ctx.lease2?.release();
    s.ctx.client.close();
  }
  await Promise.all(members.map((m) => m.stop()));
  assert.is(runningChildren(), 0);
});

test.run();
