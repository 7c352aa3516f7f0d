// Quota and alarms: unit rules (costs, the alarm store, the capped applier), then a member with a tiny
// --quota-backend-bytes driven by etcdctl: writes refused with ErrNoSpace, NOSPACE raised and listed,
// /health false, reads and deletes still served, disarm clears it and survives a restart.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { costPut, costTxn, BackendQuota } from '../../src/server/quota.js';
import { AlarmStore, alarmText } from '../../src/server/alarms.js';
import type { MetaStore } from '../../src/server/membership.js';
import { AlarmType } from '../../src/proto/rpc.js';
import { startTetcd, httpGet } from '../helpers/member.js';
import { etcdctl } from '../helpers/etcdctl.js';

function memoryMeta(): MetaStore & { map: Map<string, Uint8Array> } {
  const map = new Map<string, Uint8Array>();
  const k = (b: string, key: Uint8Array) => `${b}/${Buffer.from(key).toString('hex')}`;
  return {
    map,
    metaGet: (b, key) => map.get(k(b, key)),
    metaPut: (b, key, v) => {
      map.set(k(b, key), v);
    },
    metaDelete: (b, key) => {
      map.delete(k(b, key));
    },
    *metaScan(b) {
      for (const [kk, v] of map) if (kk.startsWith(b + '/')) yield [Buffer.from(kk.slice(b.length + 1), 'hex'), v];
    },
  };
}

test("costs are etcd's: 256 bytes of overhead per put, the larger txn branch, nested txns not counted", () => {
  assert.is(costPut({ key: Buffer.from('ab'), value: Buffer.alloc(10) }), 268);
  assert.is(
    costTxn({ success: [{ request_put: { key: Buffer.from('a') } }, { request_range: { key: Buffer.from('a') } }], failure: [] }),
    257,
  );
  assert.is(costTxn({ success: [], failure: [{ request_put: { key: Buffer.from('a'), value: Buffer.alloc(100) } }] }), 357);
  assert.is(costTxn({ success: [{ request_txn: { success: [{ request_put: { key: Buffer.from('a') } }] } }] }), 0);
  const q = new BackendQuota(1000, 700);
  assert.ok(q.available(299));
  assert.not.ok(q.available(300));
  assert.ok(new BackendQuota(Infinity, 1e12).available(1e9), 'a negative --quota-backend-bytes means no quota');
});

test('writes accepted before a backend commit lands count at their cost, until it lands', () => {
  const q = new BackendQuota(1000, 100);
  q.charge(300);
  const mark = q.mark();
  q.charge(300);
  assert.is(q.estimatedBytes, 700);
  assert.not.ok(q.available(300), 'the backend has not grown yet, but the writes it will hold are counted');
  q.settled(mark, 350); // the commit with the first write landed; the second is still pending
  assert.is(q.estimatedBytes, 650);
  q.settled(q.mark(), 500);
  assert.is(q.estimatedBytes, 500);
  q.settled(mark, 500);
  assert.is(q.estimatedBytes, 500, 'a late older mark does not count writes twice');
});

test('the alarm store raises once, disarms, persists and prints as etcd does', () => {
  const meta = memoryMeta();
  const a = AlarmStore.load(meta);
  const m = a.activate(7n, AlarmType.NOSPACE, meta);
  assert.is(a.activate(7n, AlarmType.NOSPACE, meta), m, 'raising again returns the existing alarm');
  a.activate(3n, AlarmType.CORRUPT, meta);
  assert.equal(a.get().map(alarmText), ['memberID:3 alarm:CORRUPT ', 'memberID:7 alarm:NOSPACE ']);
  assert.equal(AlarmStore.load(meta).get(AlarmType.NOSPACE), [{ memberID: 7n, alarm: AlarmType.NOSPACE }]);
  assert.ok(a.deactivate(7n, AlarmType.NOSPACE, meta));
  assert.is(a.deactivate(7n, AlarmType.NOSPACE, meta), undefined);
  assert.not.ok(AlarmStore.load(meta).has(AlarmType.NOSPACE));
});

test('a member over its quota refuses puts, raises NOSPACE, stays readable; disarm clears it across a restart', async () => {
  const m = await startTetcd({ extraArgs: ['--quota-backend-bytes', '120000'] });
  try {
    const big = 'x'.repeat(30_000);
    let refused = '';
    for (let i = 0; i < 10 && !refused; i++) {
      const r = await etcdctl(m.endpoint, ['put', `big${i}`, big]);
      if (r.code !== 0) refused = r.stderr;
    }
    assert.ok(refused.includes('etcdserver: mvcc: database space exceeded'), `the refusal: ${refused || '(none)'}`);
    let list = '';
    for (let i = 0; i < 50 && !list.includes('NOSPACE'); i++) {
      list = (await etcdctl(m.endpoint, ['alarm', 'list'])).stdout;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(list, /^memberID:\d+ alarm:NOSPACE $/m);
    const small = await etcdctl(m.endpoint, ['put', 'small', 'v']);
    assert.match(small.stderr, 'database space exceeded', 'with NOSPACE raised even a small put is refused');
    assert.is((await httpGet(`${m.clientUrl}/health`, 2000)).text, '{"health":"false"}');
    assert.is((await etcdctl(m.endpoint, ['get', 'big0', '--keys-only'])).stdout.trim(), 'big0');
    assert.is((await etcdctl(m.endpoint, ['del', 'big0'])).stdout.trim(), '1');
    const status = JSON.parse((await etcdctl(m.endpoint, ['endpoint', 'status', '-w', 'json'])).stdout) as Array<{
      Status: { errors?: string[] };
    }>;
    assert.match(status[0].Status.errors?.[0] ?? '', /alarm:NOSPACE $/);
    await etcdctl(m.endpoint, ['alarm', 'disarm']);
    assert.is((await etcdctl(m.endpoint, ['alarm', 'list'])).stdout, '');
    await m.restart();
    assert.is((await etcdctl(m.endpoint, ['alarm', 'list'])).stdout, '', 'the disarm was persisted');
  } finally {
    await m.stop();
  }
});

test('--quota-auto-disarm: the room it asks for is under 90% of the quota, in use and as the quota counts it', () => {
  const q = new BackendQuota(1000, 950);
  assert.not.ok(q.roomAgain(100), 'the file still fills the quota (compacted, not defragmented)');
  q.resized(899);
  assert.not.ok(q.roomAgain(900));
  assert.ok(q.roomAgain(899));
  q.charge(1);
  assert.not.ok(q.roomAgain(100), 'writes accepted since count');
});

/** Fills a member to NOSPACE, then frees everything: delete, compact, defragment. */
async function fillThenFree(endpoint: string): Promise<void> {
  const big = 'x'.repeat(30_000);
  let refused = false;
  for (let i = 0; i < 10 && !refused; i++) refused = (await etcdctl(endpoint, ['put', `big${i}`, big])).code !== 0;
  assert.ok(refused, 'never refused');
  let list = '';
  for (let i = 0; i < 50 && !list.includes('NOSPACE'); i++) {
    list = (await etcdctl(endpoint, ['alarm', 'list'])).stdout;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.match(list, /alarm:NOSPACE/);
  assert.is((await etcdctl(endpoint, ['del', 'big', '--prefix'])).code, 0);
  const rev = /"revision":(\d+)/.exec((await etcdctl(endpoint, ['get', 'x', '-w', 'json'])).stdout)![1]!;
  assert.is((await etcdctl(endpoint, ['compaction', rev, '--physical'])).code, 0);
  const defrag = await etcdctl(endpoint, ['defrag']);
  assert.is(defrag.code, 0, defrag.stderr);
}

test('--quota-auto-disarm: NOSPACE clears itself after compact + defrag and puts work; without it, it stays (as etcd)', async () => {
  const auto = await startTetcd({ extraArgs: ['--quota-backend-bytes', '120000', '--quota-auto-disarm'] });
  try {
    await fillThenFree(auto.endpoint);
    let list = 'NOSPACE';
    for (let i = 0; i < 50 && list !== ''; i++) {
      list = (await etcdctl(auto.endpoint, ['alarm', 'list'])).stdout;
      if (list !== '') await new Promise((r) => setTimeout(r, 100));
    }
    assert.is(list, '', 'the alarm never cleared');
    const put = await etcdctl(auto.endpoint, ['put', 'after', 'v']);
    assert.is(put.code, 0, put.stderr);
    assert.is((await httpGet(`${auto.clientUrl}/health`, 2000)).text, '{"health":"true"}');
  } finally {
    await auto.stop();
  }
  const manual = await startTetcd({ extraArgs: ['--quota-backend-bytes', '120000'] });
  try {
    await fillThenFree(manual.endpoint);
    await new Promise((r) => setTimeout(r, 2500));
    assert.match((await etcdctl(manual.endpoint, ['alarm', 'list'])).stdout, /alarm:NOSPACE/);
    assert.match((await etcdctl(manual.endpoint, ['put', 'after', 'v'])).stderr, 'database space exceeded');
  } finally {
    await manual.stop();
  }
});

test.run();
