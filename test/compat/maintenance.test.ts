// Oracle scenario of the Maintenance RPCs: `etcdctl endpoint hashkv` (the hash must be the SAME number as
// etcd 3.4's, since tetcd's revision keys and KeyValue bytes are bbolt's), its errors for compacted and
// future revisions, `etcdctl defrag`, and the quota flow: a put past --quota-backend-bytes is refused with
// NOSPACE, reads still work, writes stay refused until compact + defrag + `alarm disarm`, then work again
// with nothing lost.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMember, type Member } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { registerScenario, type Step } from '../helpers/scenario.js';
import { etcdctl } from '../helpers/etcdctl.js';

const txn = (compares: string[], success: string[], failure: string[]): string =>
  [compares, success, failure].map((lines) => lines.map((l) => l + '\n').join('') + '\n').join('');

const HASH_STEPS: Step[] = [
  { args: ['endpoint', 'hashkv'] }, // an empty store
  { args: ['put', 'a', '1'] }, // rev 2
  { args: ['put', 'b', '2'] }, // rev 3
  { args: ['put', 'a', '3'] }, // rev 4
  { args: ['del', 'b'] }, // rev 5
  { args: ['txn', '-i'], stdin: txn([], ['put c 4', 'put d 5', 'del a'], []) }, // rev 6
  { args: ['put', 'b', 'again'] }, // rev 7
  { args: ['endpoint', 'hashkv'] },
  { args: ['endpoint', 'hashkv', '-w', 'json'] },
  { args: ['endpoint', 'hashkv', '--rev', '3'] },
  { args: ['endpoint', 'hashkv', '--rev', '7'] },
  { args: ['endpoint', 'hashkv', '--rev', '8'] },
  { args: ['endpoint', 'hashkv', '--rev', '-5'] },
  { args: ['endpoint', 'hash'] }, // etcdctl 3.4 takes it as a prefix of hashkv
  { args: ['compaction', '4'] },
  { args: ['endpoint', 'hashkv', '--rev', '4'] },
  { args: ['endpoint', 'hashkv', '--rev', '5'] },
  { args: ['endpoint', 'hashkv', '-w', 'json'] },
  { args: ['del', 'c'] }, // rev 8
  { args: ['compaction', '--physical', '8'] },
  { args: ['endpoint', 'hashkv'] },
  { args: ['defrag'] },
  { args: ['endpoint', 'hashkv'] },
  { args: ['get', '', '--prefix', '-w', 'json'] },
  { args: ['put', 'after', 'defrag'] }, // rev 9
  { args: ['endpoint', 'hashkv', '-w', 'json'] },
];

const t = oracleGate(test);
registerScenario(t, HASH_STEPS);

// One put larger than the quota trips it on both servers whatever their empty file's size.
const big = 'x'.repeat(96 * 1024);

const QUOTA_STEPS: Step[] = [
  { args: ['put', 'k1', 'v1'] }, // rev 2
  { args: ['put', 'k2', 'v2'] }, // rev 3
  { args: ['put', 'big', big] },
  { args: ['alarm', 'list'] },
  { args: ['get', 'k', '--prefix'] },
  { args: ['put', 'k3', 'v3'] },
  { args: ['del', 'k2'] }, // rev 4: deletes still work
  { args: ['endpoint', 'status', '-w', 'json'] },
  { args: ['compaction', '4'] },
  { args: ['defrag'] },
  { args: ['put', 'k3', 'v3'] }, // still refused: the alarm stays until disarmed
  { args: ['alarm', 'disarm'] },
  { args: ['alarm', 'list'] },
  { args: ['put', 'k3', 'v3'] }, // rev 5
  { args: ['get', 'k', '--prefix', '-w', 'json'] },
  { args: ['endpoint', 'status'] },
];

registerScenario(t, QUOTA_STEPS, { extraArgs: ['--quota-backend-bytes', String(64 * 1024)] });

// With auth on, Hash, HashKV and Defragment are root's (etcd's authMaintenanceServer); Status is anyone's.
const AUTH_STEPS: Step[] = [
  { args: ['put', 'a', '1'] },
  { args: ['user', 'add', 'root:rootpw'] },
  { args: ['user', 'add', 'alice:alicepw'] },
  { args: ['auth', 'enable'] },
  { args: ['endpoint', 'hashkv'] },
  { args: ['--user', 'alice:alicepw', 'endpoint', 'hashkv'] },
  { args: ['--user', 'root:rootpw', 'endpoint', 'hashkv'] },
  { args: ['--user', 'alice:alicepw', 'defrag'] },
  { args: ['--user', 'root:rootpw', 'defrag'] },
  { args: ['--user', 'alice:alicepw', 'endpoint', 'status', '-w', 'json'] },
];

registerScenario(t, AUTH_STEPS);

/** Status dbSize of a member, through etcdctl. */
async function dbSize(m: Member): Promise<number> {
  const r = await etcdctl(m.endpoint, ['endpoint', 'status', '-w', 'json']);
  return (JSON.parse(r.stdout) as Array<{ Status: { dbSize: number } }>)[0].Status.dbSize;
}

/**
 * The quota flow on one server, outcomes only (the two files differ in size, so where the quota trips does
 * too): fill with 20 KB values until NOSPACE, every acknowledged key still readable, then delete most,
 * compact, defragment (the file shrinks), disarm, and puts fit again.
 */
async function quotaFlow(m: Member): Promise<string[]> {
  const value = 'v'.repeat(20_000);
  const acked: string[] = [];
  let refusal = '';
  for (let i = 0; i < 100 && refusal === ''; i++) {
    const r = await etcdctl(m.endpoint, ['put', `fill${String(i).padStart(3, '0')}`, value]);
    if (r.code === 0) acked.push(`fill${String(i).padStart(3, '0')}`);
    else refusal = r.stderr.split('\n').find((l) => l.startsWith('Error:')) ?? r.stderr;
  }
  const keys = (await etcdctl(m.endpoint, ['get', 'fill', '--prefix', '--keys-only'])).stdout.split('\n').filter((l) => l !== '');
  // (A put can fail on a busy machine yet be applied: keys may hold more than was acknowledged, never less.)
  await etcdctl(m.endpoint, ['del', 'fill002', 'fill100']);
  const rev = JSON.parse((await etcdctl(m.endpoint, ['get', 'x', '-w', 'json'])).stdout).header.revision as number;
  await etcdctl(m.endpoint, ['compaction', '--physical', String(rev)]);
  const before = await dbSize(m);
  const defrag = await etcdctl(m.endpoint, ['defrag']);
  const after = await dbSize(m);
  await etcdctl(m.endpoint, ['alarm', 'disarm']);
  let refill = 0;
  for (let i = 0; i < 4; i++) if ((await etcdctl(m.endpoint, ['put', `refill${i}`, value])).code === 0) refill++;
  const still = (await etcdctl(m.endpoint, ['get', 'fill', '--prefix', '--keys-only'])).stdout.split('\n').filter((l) => l !== '');
  return [
    `refused with: ${refusal}`,
    `acknowledged puts readable: ${acked.every((k) => keys.includes(k))}`,
    `defrag: exit ${defrag.code}, file shrank: ${after < before}`,
    // Without the defragment the file would stay past the quota and every put would be refused again.
    `after disarm, puts accepted again: ${refill > 0}`,
    `kept keys intact: ${JSON.stringify(still) === JSON.stringify(['fill000', 'fill001'])}`,
  ];
}

t('quota: fill to NOSPACE, nothing lost, delete + compact + defrag + disarm make room again (same outcomes as etcd)', async () => {
  const opts = { extraArgs: ['--quota-backend-bytes', String(512 * 1024)] };
  const [etcd, sut] = await Promise.all([startMember('etcd', opts), startMember(compatTarget(), opts)]);
  try {
    const [a, b] = await Promise.all([quotaFlow(etcd), quotaFlow(sut)]);
    assert.equal(b, a);
    assert.equal(a, [
      'refused with: Error: etcdserver: mvcc: database space exceeded',
      'acknowledged puts readable: true',
      'defrag: exit 0, file shrank: true',
      'after disarm, puts accepted again: true',
      'kept keys intact: true',
    ]);
  } finally {
    await Promise.all([etcd.stop(), sut.stop()]);
  }
});

/** The JSON gateway's answer to a POST, with the header's per-member fields taken out. */
async function gateway(m: Member, path: string, body: unknown): Promise<string> {
  const res = await fetch(`${m.clientUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
  const json = (await res.json()) as Record<string, unknown>;
  if (typeof json.header === 'object') json.header = Object.keys(json.header as object).sort();
  if (typeof json.hash === 'number') json.hash = '<HASH>'; // Hash covers the whole file: bbolt's is not LMDB's
  return `${res.status} ${JSON.stringify(json)}`;
}

t('gateway: /v3/maintenance/hash is Hash (not HashKV), /v3/maintenance/defragment answers {}', async () => {
  const [etcd, sut] = await Promise.all([startMember('etcd'), startMember(compatTarget())]);
  try {
    for (const m of [etcd, sut]) await gateway(m, '/v3/kv/put', { key: 'YQ==', value: 'MQ==' });
    for (const [path, body] of [
      ['/v3/maintenance/hash', {}],
      ['/v3/maintenance/hash', { revision: '1' }],
      ['/v3/maintenance/defragment', {}],
    ] as const) {
      assert.is(await gateway(sut, path, body), await gateway(etcd, path, body), `${path} ${JSON.stringify(body)}`);
    }
  } finally {
    await Promise.all([etcd.stop(), sut.stop()]);
  }
});

test.run();
