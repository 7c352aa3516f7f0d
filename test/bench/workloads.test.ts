// The workloads' pre-encoded requests decode to what the issue asks for: 8-byte keys, 256-byte values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodePutRequest, decodeRangeRequest } from '../../src/proto/rpc.js';
import {
  WORKLOADS,
  keyOf,
  valueFor,
  putBodies,
  rangeBodies,
  requestsFor,
  Rng,
  KEY_BYTES,
  VALUE_BYTES,
  PUT_KEY_SPACE,
} from '../../bench/lib/workloads.js';

test('keys are 8 bytes, values 256, both deterministic', () => {
  assert.is(keyOf('k', 42).toString(), 'k0000042');
  assert.is(keyOf('m', 9_999_999).length, KEY_BYTES);
  assert.throws(() => keyOf('k', 10_000_000));
  assert.throws(() => keyOf('kk', 1));
  assert.equal(valueFor(VALUE_BYTES, 7), valueFor(VALUE_BYTES, 7));
  assert.not.equal(valueFor(VALUE_BYTES, 7), valueFor(VALUE_BYTES, 8));
  const r = new Rng(1);
  for (let i = 0; i < 1000; i++) {
    const x = r.intn(10);
    assert.ok(x >= 0 && x < 10);
  }
});

test('put bodies spread over the key space and carry a 256-byte value', () => {
  const bodies = putBodies(2000, PUT_KEY_SPACE, 99);
  const keys = new Set<string>();
  for (const b of bodies) {
    const p = decodePutRequest(b);
    assert.is(p.key.length, KEY_BYTES);
    assert.is(p.value.length, VALUE_BYTES);
    const n = Number(Buffer.from(p.key).toString().slice(1));
    assert.ok(n >= 0 && n < PUT_KEY_SPACE);
    keys.add(Buffer.from(p.key).toString());
  }
  assert.ok(keys.size > 1900, `distinct keys ${keys.size}`);
  assert.equal(putBodies(10, PUT_KEY_SPACE, 99), bodies.slice(0, 10));
});

test('range bodies read single keys, serializable only when asked', () => {
  const lin = rangeBodies(3, false).map(decodeRangeRequest);
  assert.equal(
    lin.map((r) => Buffer.from(r.key).toString()),
    ['k0000000', 'k0000001', 'k0000002'],
  );
  assert.ok(lin.every((r) => !r.serializable && r.range_end.length === 0));
  assert.ok(
    rangeBodies(3, true)
      .map(decodeRangeRequest)
      .every((r) => r.serializable),
  );
});

test('the standard workloads are the ones the issue names', () => {
  const byName = new Map(WORKLOADS.map((w) => [w.name, w]));
  for (const n of ['put-1', 'range-lin-1', 'range-ser-1'])
    assert.equal({ c: byName.get(n)!.concurrency, n: byName.get(n)!.connections }, { c: 1, n: 1 }, n);
  for (const n of ['put-1000', 'range-lin-1000', 'range-ser-1000', 'c3-put-1000', 'c3-range-lin-1000']) {
    const w = byName.get(n)!;
    assert.is(w.concurrency, 1000);
    assert.is(w.connections, 100);
    assert.ok(w.inDefault);
  }
  assert.is(byName.get('c3-put-1000')!.members, 3);
  assert.is(byName.get('range-ser-1000')!.serializable, true);
  assert.is(byName.get('memory')!.kind, 'memory');
  assert.is(requestsFor(byName.get('range-ser-1000')!, 1).path, '/etcdserverpb.KV/Range');
  assert.is(requestsFor(byName.get('put-1000')!, 1).path, '/etcdserverpb.KV/Put');
});

test.run();
