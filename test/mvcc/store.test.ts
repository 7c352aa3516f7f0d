// Revisions, versions, create/mod revisions, tombstones and history reads, checked against what
// real etcd 3.4.23 answered for the same sequence (etcdctl / JSON gateway, recorded in comments).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdError } from '../../src/errors.js';
import { b, cleanup, del, openTemp, put, showAll } from './helpers.js';

function rangeStr(s: import('../../src/mvcc/index.js').Mvcc, key: string, end?: string, opts = {}): string {
  const r = s.range(b(key), end === undefined ? undefined : b(end), opts);
  return `rev=${r.rev} count=${r.count} more=${r.more} kvs=[${showAll(r.kvs)}]`;
}

test('etcd sequence: put, identical put, delete, recreate, history reads', async () => {
  const { s, dir } = await openTemp();
  try {
    // etcd: empty get => rev=1
    assert.is(s.currentRevision, 1);
    assert.is(rangeStr(s, 'a'), 'rev=1 count=0 more=false kvs=[]');
    assert.is(put(s, 'a', '1'), 2);
    // an identical value still makes a revision, version 2
    assert.is(put(s, 'a', '1'), 3);
    assert.is(put(s, 'b', '2'), 4);
    assert.is(put(s, 'c', '3'), 5);
    // a delete of nothing makes no revision
    assert.equal(del(s, 'zz'), { deleted: 0, rev: 5 });
    assert.is(s.currentRevision, 5);
    assert.is(rangeStr(s, '\0', '\0'), 'rev=5 count=3 more=false kvs=[a=1@c2m3v2 b=2@c4m4v1 c=3@c5m5v1]');
    assert.equal(del(s, 'a'), { deleted: 1, rev: 6 });
    assert.is(rangeStr(s, 'a'), 'rev=6 count=0 more=false kvs=[]');
    assert.is(put(s, 'a', '9'), 7);
    // version restarts after delete+recreate; create_revision is the recreate
    assert.is(rangeStr(s, 'a'), 'rev=7 count=1 more=false kvs=[a=9@c7m7v1]');
    assert.is(rangeStr(s, 'a', undefined, { rev: 2 }), 'rev=7 count=1 more=false kvs=[a=1@c2m2v1]');
    assert.is(rangeStr(s, 'a', undefined, { rev: 6 }), 'rev=7 count=0 more=false kvs=[]');
    assert.is(rangeStr(s, 'a', undefined, { rev: 5 }), 'rev=7 count=1 more=false kvs=[a=1@c2m3v2]');
    assert.throws(
      () => s.range(b('a'), undefined, { rev: 99 }),
      (e: unknown) => e instanceof EtcdError && e.message === 'etcdserver: mvcc: required revision is a future revision',
    );
    assert.is(rangeStr(s, 'a', 'z', { limit: 1 }), 'rev=7 count=3 more=true kvs=[a=9@c7m7v1]');
    assert.is(rangeStr(s, 'a', 'z', { limit: 3 }), 'rev=7 count=3 more=false kvs=[a=9@c7m7v1 b=2@c4m4v1 c=3@c5m5v1]');
    assert.is(rangeStr(s, 'b', '\0'), 'rev=7 count=2 more=false kvs=[b=2@c4m4v1 c=3@c5m5v1]');
    assert.is(rangeStr(s, 'a', 'z', { countOnly: true }), 'rev=7 count=3 more=false kvs=[]');
    assert.is(rangeStr(s, 'a', 'z', { keysOnly: true }), 'rev=7 count=3 more=false kvs=[a=@c7m7v1 b=@c4m4v1 c=@c5m5v1]');
    assert.is(rangeStr(s, 'c', 'a'), 'rev=7 count=0 more=false kvs=[]');
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('one write transaction = one revision with sub revisions; events; reads inside see own writes', async () => {
  const { s, dir } = await openTemp();
  try {
    put(s, 'x', '0');
    const t = s.write();
    assert.is(t.beginRev, 2);
    assert.is(t.rev, 2);
    assert.is(t.put(b('a'), b('1'), 0n), 3);
    assert.is(t.rev, 3);
    assert.is(t.put(b('a'), b('2'), 0n), 3); // the mvcc layer allows it; the applier's duplicate check does not
    assert.is(showAll(t.range(b('a')).kvs), 'a=2@c3m3v2');
    const d = t.deleteRange(b('a'), b('b'), true);
    assert.equal({ deleted: d.deleted, rev: d.rev, prev: showAll(d.prevKvs) }, { deleted: 1, rev: 3, prev: 'a=2@c3m3v2' });
    t.put(b('a'), b('3'), 0n);
    const { rev, events } = t.end();
    assert.is(rev, 3);
    assert.equal(
      events.map((e) => `${e.type}:${Buffer.from(e.kv.key)}=${Buffer.from(e.kv.value)}@${e.kv.mod_revision}v${e.kv.version}`),
      ['0:a=1@3v1', '0:a=2@3v2', '1:a=@3v0', '0:a=3@3v1'],
    );
    assert.is(showAll(s.range(b('a')).kvs), 'a=3@c3m3v1');
    // a transaction with only no-op deletes makes no revision
    const t2 = s.write();
    assert.equal(t2.deleteRange(b('zz'), undefined, true), { deleted: 0, rev: 3, prevKvs: [] });
    assert.equal(t2.end(), { rev: 3, events: [] });
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('guards: one open write transaction, no commit or compact inside it, applied index never goes back, staging limit', async () => {
  const { s, dir } = await openTemp({ pendingBytesMax: 10_000 });
  try {
    const t = s.write();
    assert.throws(() => s.write(), /already open/);
    assert.throws(() => s.commit(1, 1), /inside a write transaction/);
    assert.throws(() => s.compact(1), /inside a write transaction/);
    t.end();
    assert.throws(() => t.put(b('a'), b('1'), 0n), /already ended/);
    await s.commit(5, 1).committed;
    assert.throws(() => s.commit(4, 1), /going back/);
    const big = s.write();
    assert.throws(() => big.put(b('big'), Buffer.alloc(20_000), 0n), /staged without a commit/);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test.run();
