// The KV applier and request validation. Expected values come from etcd 3.4.23 (JSON gateway and
// etcdctl against a fresh single-member etcd); the etcd answers are quoted next to each check,
// with etcd's revision where the history lines up.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdError, GrpcCode } from '../../src/errors.js';
import type { Mvcc } from '../../src/mvcc/index.js';
import type { KeyValueInit } from '../../src/proto/kv.js';
import { decodeKeyValue } from '../../src/proto/kv.js';
import type {
  RangeResponseInit,
  ResponseOpInit,
  TxnRequestInit,
  TxnResponseInit,
  RequestOpInit,
  CompareInit,
} from '../../src/proto/rpc.js';
import {
  applyCompaction,
  applyDeleteRange,
  applyPut,
  applyRange,
  applyTxn,
  isTxnReadonly,
  noLeases,
  validateDeleteRangeRequest,
  validatePutRequest,
  validateRangeRequest,
  validateTxnRequest,
  type KvLimits,
  type LeaseHooks,
} from '../../src/server/apply_kv.js';
import { b, cleanup, openTemp } from '../mvcc/helpers.js';

const limits: KvLimits = { maxTxnOps: 128, maxRangeResponseBytes: 0 };

const kvStr = (kv: KeyValueInit): string =>
  `${Buffer.from(kv.key ?? []).toString('latin1')}=${Buffer.from(kv.value ?? []).toString('latin1')}@c${kv.create_revision ?? 0}m${kv.mod_revision ?? 0}v${kv.version ?? 0}${kv.lease ? 'l' + kv.lease : ''}`;

function rangeStr(r: RangeResponseInit): string {
  const kvs = (r.kvs_encoded ?? []).map((k) => kvStr(decodeKeyValue(k))).join(' ');
  return `rev=${r.header?.revision} count=${r.count ?? 0} more=${r.more ?? false} kvs=[${kvs}]`;
}

function opStr(o: ResponseOpInit): string {
  if (o.response_range) return `range(${rangeStr(o.response_range)})`;
  if (o.response_put)
    return `put(rev=${o.response_put.header?.revision}${o.response_put.prev_kv ? ' prev=' + kvStr(o.response_put.prev_kv) : ''})`;
  if (o.response_delete_range) {
    const d = o.response_delete_range;
    return `del(rev=${d.header?.revision} deleted=${d.deleted ?? 0}${d.prev_kvs ? ' prev=[' + d.prev_kvs.map(kvStr).join(' ') + ']' : ''})`;
  }
  if (o.response_txn) return `txn(${txnStr(o.response_txn)})`;
  return 'empty';
}

function txnStr(t: TxnResponseInit): string {
  return `rev=${t.header?.revision ?? '-'} succeeded=${t.succeeded ?? false} [${(t.responses ?? []).map(opStr).join(', ')}]`;
}

function throwsEtcd(fn: () => unknown, code: number, message: string): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, EtcdError);
    assert.is((e as EtcdError).message, message);
    assert.is((e as EtcdError).code, code);
    return;
  }
  assert.unreachable(`expected ${message}`);
}

const M = {
  emptyKey: 'etcdserver: key is not provided',
  keyNotFound: 'etcdserver: key not found',
  valueProvided: 'etcdserver: value is provided',
  leaseProvided: 'etcdserver: lease is provided',
  leaseNotFound: 'etcdserver: requested lease not found',
  compacted: 'etcdserver: mvcc: required revision has been compacted',
  future: 'etcdserver: mvcc: required revision is a future revision',
  tooMany: 'etcdserver: too many operations in txn request',
  dup: 'etcdserver: duplicate key given in txn request',
};

const putOp = (key: string, value = 'v', extra: object = {}): RequestOpInit => ({
  request_put: { key: b(key), value: b(value), ...extra },
});
const rangeOp = (key: string, extra: object = {}): RequestOpInit => ({ request_range: { key: b(key), ...extra } });
const delOp = (key: string, end?: string, extra: object = {}): RequestOpInit => ({
  request_delete_range: { key: b(key), range_end: end === undefined ? undefined : b(end), ...extra },
});
const cmp = (key: string, target: number, result: number, v: Partial<CompareInit> = {}): CompareInit => ({
  key: b(key),
  target,
  result,
  ...v,
});
// Compare targets / results
const VERSION = 0,
  CREATE = 1,
  MOD = 2,
  VALUE = 3,
  LEASE = 4;
const EQUAL = 0,
  GREATER = 1,
  LESS = 2,
  NOT_EQUAL = 3;

async function withStore(fn: (s: Mvcc) => void | Promise<void>): Promise<void> {
  const { s, dir } = await openTemp();
  try {
    await fn(s);
  } finally {
    await s.close();
    cleanup(dir);
  }
}

const put = (s: Mvcc, key: string, value: string, extra: object = {}, leases: LeaseHooks = noLeases) =>
  applyPut(s, { key: b(key), value: b(value), ...extra }, leases).response;
const get = (s: Mvcc, key: string, extra: object = {}) => rangeStr(applyRange(s, { key: b(key), ...extra }, limits));
const txn = (s: Mvcc, req: TxnRequestInit, leases: LeaseHooks = noLeases) => {
  validateTxnRequest(req, limits);
  return txnStr(applyTxn(s, req, limits, leases).response);
};

test('validation: empty keys, ignore_value/ignore_lease conflicts, unknown sort target', () => {
  throwsEtcd(() => validateRangeRequest({ key: b('') }), GrpcCode.InvalidArgument, M.emptyKey);
  throwsEtcd(() => validatePutRequest({ key: b(''), value: b('x') }), GrpcCode.InvalidArgument, M.emptyKey);
  throwsEtcd(() => validateDeleteRangeRequest({}), GrpcCode.InvalidArgument, M.emptyKey);
  throwsEtcd(() => validatePutRequest({ key: b('a'), value: b('x'), ignore_value: true }), GrpcCode.InvalidArgument, M.valueProvided);
  throwsEtcd(() => validatePutRequest({ key: b('a'), lease: 5n, ignore_lease: true }), GrpcCode.InvalidArgument, M.leaseProvided);
  validatePutRequest({ key: b('a'), ignore_value: true, ignore_lease: true });
  // etcd 3.4 panics on an unknown sort target; we refuse it.
  assert.throws(
    () => validateRangeRequest({ key: b('a'), sort_target: 9, sort_order: 1 }),
    (e: unknown) => e instanceof EtcdError && e.code === GrpcCode.InvalidArgument,
  );
});

test('validation: txn op counts, empty compare keys and ops, duplicate keys (etcd checkIntervals)', () => {
  const v = (req: TxnRequestInit, max = 128) => validateTxnRequest(req, { maxTxnOps: max, maxRangeResponseBytes: 0 });
  const many = (n: number) => Array.from({ length: n }, (_, i) => putOp(`k${i}`));
  v({ success: many(128) });
  throwsEtcd(() => v({ success: many(129) }), GrpcCode.InvalidArgument, M.tooMany);
  throwsEtcd(() => v({ compare: Array.from({ length: 4 }, () => cmp('a', VERSION, EQUAL)) }, 3), GrpcCode.InvalidArgument, M.tooMany);
  // a nested txn gets what the outer level leaves: 3 ops outer, max 5 → nested may have 2
  v({ success: [putOp('a'), putOp('b'), { request_txn: { success: [putOp('c'), putOp('d')] } }] }, 5);
  throwsEtcd(
    () => v({ success: [putOp('a'), putOp('b'), { request_txn: { success: [putOp('c'), putOp('d'), putOp('e')] } }] }, 5),
    GrpcCode.InvalidArgument,
    M.tooMany,
  );
  throwsEtcd(() => v({ compare: [cmp('', VERSION, EQUAL)] }), GrpcCode.InvalidArgument, M.emptyKey); // etcd: key is not provided
  throwsEtcd(() => v({ success: [putOp('', 'x')] }), GrpcCode.InvalidArgument, M.emptyKey);
  throwsEtcd(() => v({ success: [{}] }), GrpcCode.InvalidArgument, M.keyNotFound); // etcd: "txn empty op" => key not found
  throwsEtcd(() => v({ success: [putOp('d', '1'), putOp('d', '2')] }), GrpcCode.InvalidArgument, M.dup);
  throwsEtcd(() => v({ success: [putOp('d', '1'), delOp('a', 'z')] }), GrpcCode.InvalidArgument, M.dup);
  v({ success: [putOp('d', '1'), delOp('a', '\0')] }); // etcd accepts: "\0" is a literal end in its interval tree
  throwsEtcd(() => v({ success: [putOp('d', '1'), { request_txn: { success: [putOp('d', '2')] } }] }), GrpcCode.InvalidArgument, M.dup);
  v({ success: [{ request_txn: { success: [putOp('d2', '2')], failure: [putOp('d2', '3')] } }] });
  v({ success: [putOp('d3', '1')], failure: [putOp('d3', '2')] });
  throwsEtcd(() => v({ success: [delOp('d4'), { request_txn: { success: [putOp('d4', '2')] } }] }), GrpcCode.InvalidArgument, M.dup);
  throwsEtcd(() => v({ success: [{ request_txn: { success: [delOp('a', 'c')] } }, putOp('b')] }), GrpcCode.InvalidArgument, M.dup);
  throwsEtcd(
    () => v({ success: [{ request_txn: { success: [putOp('x')] } }, { request_txn: { failure: [putOp('x')] } }] }),
    GrpcCode.InvalidArgument,
    M.dup,
  );
  v({ success: [delOp('a', 'z'), delOp('b')] }); // overlapping deletes are fine
});

test('put/range/delete: revisions, prev_kv, ignore_value, errors leave no revision', () =>
  withStore((s) => {
    // etcd: empty get => rev=1
    assert.is(get(s, 'a'), 'rev=1 count=0 more=false kvs=[]');
    assert.equal(put(s, 'a', '1'), { header: { revision: 2 } });
    // etcd: put a=1 same (prev_kv) => rev=3 prev=[a=1@c2m2v1]
    const p = put(s, 'a', '1', { prev_kv: true });
    assert.is(`${p.header?.revision} ${kvStr(p.prev_kv!)}`, '3 a=1@c2m2v1');
    put(s, 'b', '2');
    put(s, 'c', '3');
    // etcd: del nothing => rev=5 (deleted absent)
    assert.equal(applyDeleteRange(s, { key: b('zz') }, noLeases).response, { header: { revision: 5 }, deleted: 0 });
    // etcd: del a prev => rev=6 deleted=1 prev=[a=1@c2m3v2]
    const d = applyDeleteRange(s, { key: b('a'), prev_kv: true }, noLeases);
    assert.is(`${d.response.header?.revision} ${d.response.deleted} ${d.response.prev_kvs!.map(kvStr)}`, '6 1 a=1@c2m3v2');
    assert.equal(
      d.events.map((e) => `${e.type}:${Buffer.from(e.kv.key)}@${e.kv.mod_revision}`),
      ['1:a@6'],
    );
    put(s, 'a', '9');
    assert.is(get(s, 'a'), 'rev=7 count=1 more=false kvs=[a=9@c7m7v1]');
    assert.is(get(s, 'a', { revision: 2 }), 'rev=7 count=1 more=false kvs=[a=1@c2m2v1]');
    throwsEtcd(() => get(s, 'a', { revision: 99 }), GrpcCode.OutOfRange, M.future);
    // etcd: put ignore_value missing => key not found; lease missing => requested lease not found
    throwsEtcd(() => put(s, 'q', '', { ignore_value: true }), GrpcCode.InvalidArgument, M.keyNotFound);
    throwsEtcd(() => put(s, 'a', 'x', { lease: 5n }), GrpcCode.NotFound, M.leaseNotFound);
    assert.is(s.currentRevision, 7);
    // etcd: put ignore_value a (prev_kv) => rev=8 prev=[a=9@c7m7v1]; get a => a=9@c7m8v2
    const iv = put(s, 'a', '', { ignore_value: true, prev_kv: true });
    assert.is(`${iv.header?.revision} ${kvStr(iv.prev_kv!)}`, '8 a=9@c7m7v1');
    assert.is(get(s, 'a'), 'rev=8 count=1 more=false kvs=[a=9@c7m8v2]');
    // etcd: put c prev missing => no prev; del prefix prev => deleted=2 prev=[..]; del missing prev => nothing
    assert.equal(put(s, 'n', '1', { prev_kv: true }), { header: { revision: 9 } });
    const dp = applyDeleteRange(s, { key: b('a'), range_end: b('c'), prev_kv: true }, noLeases).response;
    assert.is(`${dp.header?.revision} ${dp.deleted} ${dp.prev_kvs!.map(kvStr).join(' ')}`, '10 2 a=9@c7m8v2 b=2@c4m4v1');
    const dm = applyDeleteRange(s, { key: b('a'), range_end: b('c'), prev_kv: true }, noLeases).response;
    assert.equal(dm, { header: { revision: 10 }, deleted: 0, prev_kvs: [] });
    // from-key delete
    const df = applyDeleteRange(s, { key: b('c'), range_end: b('\0') }, noLeases).response;
    assert.equal(df, { header: { revision: 11 }, deleted: 2 });
  }));

test('range through the applier: limit, count_only, keys_only, sort, byte budget', () =>
  withStore((s) => {
    for (const [k, v] of [
      ['s/a', 'z'],
      ['s/b', 'y'],
      ['s/c', 'z'],
      ['s/d', 'x'],
      ['s/b', 'y'],
      ['s/d', 'w'],
      ['s/a', 'z'],
    ])
      put(s, k, v);
    const r = (extra: object, lim = limits) => rangeStr(applyRange(s, { key: b('s/'), range_end: b('s0'), ...extra }, lim));
    // etcd (its revisions are ours + 7): val desc lim2 => more=true [s/a=z s/c=z]
    assert.is(r({ sort_order: 2, sort_target: 4, limit: 2 }), 'rev=8 count=4 more=true kvs=[s/a=z@c2m8v2 s/c=z@c4m4v1]');
    assert.is(r({ count_only: true, limit: 1 }), 'rev=8 count=4 more=false kvs=[]');
    assert.is(r({ keys_only: true, limit: 1 }), 'rev=8 count=4 more=true kvs=[s/a=@c2m8v2]');
    assert.is(r({ min_mod_revision: 7, limit: 1 }), 'rev=8 count=4 more=true kvs=[s/a=z@c2m8v2]');
    assert.is(r({}, { maxTxnOps: 128, maxRangeResponseBytes: 20 }), 'rev=8 count=4 more=true kvs=[s/a=z@c2m8v2]');
  }));

test('txn compares: every target on a missing key, values, range compares (etcd answers)', () =>
  withStore((s) => {
    for (const [k, v] of [
      ['s/a', 'z'],
      ['s/b', 'y'],
      ['s/c', 'z'],
      ['s/d', 'x'],
      ['s/b', 'y'],
      ['s/d', 'w'],
      ['s/a', 'z'],
    ])
      put(s, k, v);
    const ok = (c: CompareInit) => applyTxn(s, { compare: [c] }, limits, noLeases).response.succeeded;
    assert.is(ok(cmp('nokey', VERSION, EQUAL, { version: 0 })), true);
    assert.is(ok(cmp('nokey', CREATE, EQUAL, { create_revision: 0 })), true);
    assert.is(ok(cmp('nokey', MOD, LESS, { mod_revision: 5 })), true);
    assert.is(ok(cmp('nokey', LEASE, EQUAL, { lease: 0n })), true);
    assert.is(ok(cmp('nokey', VALUE, EQUAL, { value: b('') })), false); // a missing key's value never compares true
    assert.is(ok(cmp('nokey', VALUE, NOT_EQUAL, { value: b('x') })), false);
    assert.is(ok(cmp('s/a', VALUE, GREATER, { value: b('y') })), true);
    assert.is(ok(cmp('s/a', VALUE, EQUAL)), false); // no value given compares with ""
    assert.is(ok(cmp('s/a', VERSION, EQUAL, { create_revision: 2 })), false); // wrong union member counts as 0
    assert.is(ok(cmp('s/', VERSION, GREATER, { version: 1, range_end: b('s0') })), false); // s/c has version 1
    assert.is(ok(cmp('s/', VERSION, GREATER, { version: 0, range_end: b('s0') })), true);
    assert.is(ok(cmp('x/', VERSION, EQUAL, { version: 0, range_end: b('x0') })), true); // empty range = missing key
    assert.is(ok(cmp('x/', VERSION, GREATER, { version: 0, range_end: b('x0') })), false);
    assert.is(ok(cmp('s/', CREATE, GREATER, { create_revision: 1, range_end: b('\0') })), true);
    assert.is(ok(cmp('s/a', 9, EQUAL)), true); // unknown target: result 0
    assert.is(s.currentRevision, 8, 'compare-only txns make no revision');
  }));

test('txn: read-your-writes, nested compares see the pre-txn state, one revision, branches', () =>
  withStore((s) => {
    for (let i = 0; i < 14; i++) put(s, `pad${i}`, 'x'); // line up with etcd's revisions (next is 16)
    // etcd: put then read => rev=16 [put(16), range(t1@16), put(16), range(t1,t2)]
    assert.is(
      txn(s, { success: [putOp('t1'), rangeOp('t1'), putOp('t2', 'v', { prev_kv: true }), rangeOp('t', { range_end: b('u') })] }),
      'rev=16 succeeded=true [put(rev=16), range(rev=16 count=1 more=false kvs=[t1=v@c16m16v1]), put(rev=16), range(rev=16 count=2 more=false kvs=[t1=v@c16m16v1 t2=v@c16m16v1])]',
    );
    // etcd: nested sees pre-state => rev=17 [put(17), txn(header {} succeeded=true [put(17)])]
    const nested = applyTxn(
      s,
      {
        success: [
          putOp('n1'),
          {
            request_txn: {
              compare: [cmp('n1', VERSION, EQUAL, { version: 0 })],
              success: [putOp('n2', 'ok')],
              failure: [putOp('n3', 'bad')],
            },
          },
        ],
      },
      limits,
      noLeases,
    ).response;
    assert.is(txnStr(nested), 'rev=17 succeeded=true [put(rev=17), txn(rev=- succeeded=true [put(rev=17)])]');
    assert.equal(nested.responses![1].response_txn!.header, {});
    // etcd: readonly txn => rev=17, no new revision
    assert.is(
      txn(s, { success: [rangeOp('n', { range_end: b('o') })] }),
      'rev=17 succeeded=true [range(rev=17 count=2 more=false kvs=[n1=v@c17m17v1 n2=ok@c17m17v1])]',
    );
    assert.is(
      txn(s, { compare: [cmp('n1', VALUE, EQUAL, { value: b('nope') })], success: [putOp('f1', 's')], failure: [rangeOp('n1')] }),
      'rev=17 succeeded=false [range(rev=17 count=1 more=false kvs=[n1=v@c17m17v1])]',
    );
    assert.is(txn(s, {}), 'rev=17 succeeded=true []');
    // etcd: txn lease missing => error, and nothing of the txn happened
    throwsEtcd(() => txn(s, { success: [putOp('l1'), putOp('l2', 'v', { lease: 7n })] }), GrpcCode.NotFound, M.leaseNotFound);
    assert.is(get(s, 'l1'), 'rev=17 count=0 more=false kvs=[]');
    // the failing op in the branch not taken does not matter: rev=18
    assert.is(txn(s, { success: [putOp('l1')], failure: [putOp('l2', 'v', { lease: 7n })] }), 'rev=18 succeeded=true [put(rev=18)]');
    throwsEtcd(() => txn(s, { success: [putOp('iv', '', { ignore_value: true })] }), GrpcCode.InvalidArgument, M.keyNotFound);
    throwsEtcd(() => txn(s, { success: [putOp('x1'), rangeOp('x1', { revision: 1000 })] }), GrpcCode.OutOfRange, M.future);
    assert.is(s.currentRevision, 18);
    // no-op deletes only: no revision; deletes after a put share its revision
    assert.is(txn(s, { success: [delOp('nope'), delOp('nope2')] }), 'rev=18 succeeded=true [del(rev=18 deleted=0), del(rev=18 deleted=0)]');
    assert.is(txn(s, { success: [putOp('zz1'), delOp('nope')] }), 'rev=19 succeeded=true [put(rev=19), del(rev=19 deleted=0)]');
  }));

test('txn: put then from-key delete removes the key it just put (etcd deleted it too)', () =>
  withStore((s) => {
    put(s, 'a', '1');
    put(s, 'b', '2');
    const r = applyTxn(s, { success: [putOp('d', '1'), delOp('a', '\0', { prev_kv: true })] }, limits, noLeases);
    assert.is(txnStr(r.response), 'rev=4 succeeded=true [put(rev=4), del(rev=4 deleted=3 prev=[a=1@c2m2v1 b=2@c3m3v1 d=1@c4m4v1])]');
    assert.equal(
      r.events.map((e) => `${e.type ? 'DEL' : 'PUT'} ${Buffer.from(e.kv.key)}@${e.kv.mod_revision}`),
      ['PUT d@4', 'DEL a@4', 'DEL b@4', 'DEL d@4'],
    );
    assert.is(get(s, '\0', { range_end: b('\0') }), 'rev=4 count=0 more=false kvs=[]');
    assert.is(get(s, 'd', { revision: 3 }), 'rev=4 count=0 more=false kvs=[]');
    put(s, 'd', '2');
    assert.is(get(s, 'd'), 'rev=5 count=1 more=false kvs=[d=2@c5m5v1]');
  }));

test('txn range revisions: compacted, exactly compacted, negative (etcd quirks)', () =>
  withStore((s) => {
    put(s, 'a', '1'); // 2
    // etcd: txn range rev -5 (never compacted) => compacted; rev -1 => fine; plain range rev -5 => fine
    throwsEtcd(() => txn(s, { success: [rangeOp('a', { revision: -5 })] }), GrpcCode.OutOfRange, M.compacted);
    assert.is(
      txn(s, { success: [rangeOp('a', { revision: -1 })] }),
      'rev=2 succeeded=true [range(rev=2 count=1 more=false kvs=[a=1@c2m2v1])]',
    );
    assert.is(get(s, 'a', { revision: -5 }), 'rev=2 count=1 more=false kvs=[a=1@c2m2v1]');
    put(s, 'b', '2'); // 3
    applyCompaction(s, { revision: 2 });
    throwsEtcd(() => txn(s, { success: [rangeOp('a', { revision: -1 })] }), GrpcCode.OutOfRange, M.compacted);
    assert.is(
      txn(s, { success: [rangeOp('a', { revision: 2 })] }),
      'rev=3 succeeded=true [range(rev=3 count=1 more=false kvs=[a=1@c2m2v1])]',
    );
    throwsEtcd(() => txn(s, { success: [rangeOp('a', { revision: 1 })] }), GrpcCode.OutOfRange, M.compacted);
  }));

test('compaction through the applier', async () =>
  withStore(async (s) => {
    put(s, 'a', '1');
    put(s, 'a', '2');
    throwsEtcd(() => applyCompaction(s, { revision: 4 }), GrpcCode.OutOfRange, M.future);
    const { response, physicalDone } = applyCompaction(s, { revision: 3, physical: true });
    assert.equal(response, { header: { revision: 3 } });
    throwsEtcd(() => applyCompaction(s, { revision: 3 }), GrpcCode.OutOfRange, M.compacted);
    s.commit(1, 1);
    await physicalDone;
    throwsEtcd(() => get(s, 'a', { revision: 2 }), GrpcCode.OutOfRange, M.compacted);
    assert.is(get(s, 'a', { revision: 3 }), 'rev=3 count=1 more=false kvs=[a=2@c2m3v2]');
  }));

test('leases: existence check, attach, detach on overwrite and delete, ignore_lease keeps it', () =>
  withStore((s) => {
    const log: string[] = [];
    const leases: LeaseHooks = {
      exists: (id) => id === 10n || id === 11n,
      attach: (id, key) => log.push(`attach ${id} ${Buffer.from(key)}`),
      detach: (id, key) => log.push(`detach ${id} ${Buffer.from(key)}`),
    };
    put(s, 'a', '1', { lease: 10n }, leases);
    put(s, 'a', '2', { ignore_lease: true }, leases);
    assert.is(get(s, 'a'), 'rev=3 count=1 more=false kvs=[a=2@c2m3v2l10]');
    put(s, 'a', '3', { lease: 11n }, leases);
    put(s, 'a', '4', {}, leases);
    put(s, 'b', '1', { lease: 11n }, leases);
    throwsEtcd(() => put(s, 'c', '1', { lease: 12n }, leases), GrpcCode.NotFound, M.leaseNotFound);
    applyDeleteRange(s, { key: b('a'), range_end: b('z') }, leases);
    assert.equal(log, [
      'attach 10 a',
      'detach 10 a',
      'attach 10 a',
      'detach 10 a',
      'attach 11 a',
      'detach 11 a',
      'attach 11 b',
      'detach 11 b',
    ]);
  }));

test('isTxnReadonly follows etcd: a nested txn makes it a write', () => {
  assert.ok(isTxnReadonly({ success: [rangeOp('a')], failure: [rangeOp('b')] }));
  assert.ok(isTxnReadonly({}));
  assert.not.ok(isTxnReadonly({ success: [rangeOp('a'), { request_txn: { success: [rangeOp('a')] } }] }));
  assert.not.ok(isTxnReadonly({ failure: [delOp('a')] }));
});

test.run();
