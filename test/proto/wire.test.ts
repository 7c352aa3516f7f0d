// Wire primitives at their edges: varint sizes vs what is written, zigzag exactness, floats,
// unknown fields and groups, wrong wire types, packed and unpacked repeated fields, truncation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ProtoReader,
  ProtoWriter,
  ProtoDecodeError,
  sizeVarint32,
  sizeVarint64,
  sizeVarintBig,
  sizeSint64,
  sizeSint64Big,
  sizeSint32,
  sizeInt32,
  nestingDepthMax,
} from '../../src/proto/wire.js';
import * as rpc from '../../src/proto/rpc.js';
import { decodeKeyValue, encodeKeyValue } from '../../src/proto/kv.js';
import * as all from './gen/alltypes.js';
import { Rng, hex } from './helpers.js';

function isDecodeError(e: unknown): boolean {
  return e instanceof ProtoDecodeError;
}

test('varint sizes match the bytes written, at every power of two', () => {
  for (let bit = 0; bit <= 53; bit++) {
    for (const v of [2 ** bit - 1, 2 ** bit, 2 ** bit + 1].filter((x) => Number.isSafeInteger(x))) {
      for (const s of [v, -v]) {
        const w = new ProtoWriter(sizeVarint64(s));
        w.int64(s);
        w.finish();
        const r = new ProtoReader(w.buf);
        assert.is(r.int64(), s, `int64 ${s}`);
        const z = new ProtoWriter(sizeSint64(s));
        z.sint64(s);
        z.finish();
        assert.is(new ProtoReader(z.buf).sint64(), s, `sint64 ${s}`);
      }
    }
  }
  for (let bit = 0; bit <= 64; bit++) {
    for (const v of [2n ** BigInt(bit) - 1n, 2n ** BigInt(bit)]) {
      for (const s of [v, -v]) {
        const w = new ProtoWriter(sizeVarintBig(s));
        w.int64Big(s);
        w.finish();
        assert.is(new ProtoReader(w.buf).uint64Big(), BigInt.asUintN(64, s), `varint ${s}`);
        const z = new ProtoWriter(sizeSint64Big(BigInt.asIntN(64, s)));
        z.sint64Big(BigInt.asIntN(64, s));
        z.finish();
        assert.is(new ProtoReader(z.buf).sint64Big(), BigInt.asIntN(64, s), `sint64 big ${s}`);
      }
    }
  }
  for (const v of [0, 1, 127, 128, 2 ** 31 - 1, -1, -(2 ** 31), 2 ** 32 - 1]) {
    const w0 = new ProtoWriter(10);
    w0.uint32(v);
    assert.is(sizeVarint32(v), w0.pos, `uint32 ${v}`);
    const w = new ProtoWriter(sizeInt32(v | 0));
    w.int32(v | 0);
    w.finish();
    assert.is(new ProtoReader(w.buf).int32(), v | 0);
    const z = new ProtoWriter(sizeSint32(v | 0));
    z.sint32(v | 0);
    z.finish();
    assert.is(new ProtoReader(z.buf).sint32(), v | 0);
  }
});

test('the bigint split/join memories never return a stale value', () => {
  // Three values cycling through a two-entry memory, and the same 64 bits read signed and unsigned.
  const vals = [2n ** 64n - 1n, -1n, 12021080376571006341n, 15181106712054921186n, 2n ** 32n, 5n];
  for (let round = 0; round < 3; round++) {
    for (const v of vals) {
      const w = new ProtoWriter(sizeVarintBig(v));
      w.int64Big(v);
      w.finish();
      assert.is(new ProtoReader(w.buf).uint64Big(), BigInt.asUintN(64, v));
      assert.is(new ProtoReader(w.buf).int64Big(), BigInt.asIntN(64, v));
      assert.is(new ProtoReader(w.buf).uint64Big(), BigInt.asUintN(64, v));
    }
  }
});

test('the all-types fixture round-trips extremes of every scalar type', () => {
  const m: all.ScalarsInit = {
    f_double: -1.5e300,
    f_float: Math.fround(3.4e38),
    f_int32: -2147483648,
    f_uint32: 4294967295,
    f_sint32: -2147483648,
    f_fixed32: 4294967295,
    f_sfixed32: -2147483648,
    f_int64: Number.MIN_SAFE_INTEGER,
    f_uint64: Number.MAX_SAFE_INTEGER,
    f_sint64: Number.MIN_SAFE_INTEGER,
    f_fixed64: Number.MAX_SAFE_INTEGER,
    f_sfixed64: Number.MIN_SAFE_INTEGER,
    f_bool: true,
    f_string: 'ü€😀',
    f_bytes: Uint8Array.from([0, 255]),
    f_enum: all.Color.INFRARED,
    b_int64: -(2n ** 63n),
    b_uint64: 2n ** 64n - 1n,
    b_sint64: -(2n ** 63n),
    b_fixed64: 2n ** 64n - 1n,
    b_sfixed64: -(2n ** 63n),
  };
  const d = all.decodeScalars(all.encodeScalars(m));
  for (const k of Object.keys(m) as (keyof all.ScalarsInit)[]) {
    const a = d[k],
      b = m[k];
    if (a instanceof Uint8Array && b instanceof Uint8Array) assert.is(hex(a), hex(b), k);
    else assert.is(a, b, k);
  }
  assert.equal(all.scalarsToJson(d).f_enum, 'INFRARED');
  assert.ok(Number.isNaN(all.decodeScalars(all.encodeScalars({ f_double: NaN })).f_double));
  assert.equal(all.scalarsToJson({ f_double: NaN, f_float: -Infinity }), { f_double: 'NaN', f_float: '-Infinity' });
  assert.is(all.scalarsFromJson({ f_double: 'Infinity', f_float: '1.5' }).f_double, Infinity);
});

test('packed fields are also read unpacked, and unpacked fields also packed', () => {
  // WatchCreateRequest.filters (field 5) written unpacked: tag 40 per element.
  const unpacked = Uint8Array.from([40, 1, 40, 0, 40, 1]);
  assert.equal(rpc.decodeWatchCreateRequest(unpacked).filters, [1, 0, 1]);
  // Packed: tag 42, length 3.
  assert.equal(rpc.decodeWatchCreateRequest(Uint8Array.from([42, 3, 1, 0, 1])).filters, [1, 0, 1]);
  // Both forms in one message concatenate.
  assert.equal(rpc.decodeWatchCreateRequest(Uint8Array.from([42, 1, 1, 40, 0])).filters, [1, 0]);
  // Our encoder writes packed.
  assert.equal([...rpc.encodeWatchCreateRequest({ filters: [1, 0, 1] })], [42, 3, 1, 0, 1]);
  // [packed = false] writes one tag per element and still reads packed input.
  assert.equal([...all.encodeRepeated({ r_unpacked: [1, 2] })], [176, 1, 1, 176, 1, 2]);
  assert.equal(all.decodeRepeated(Uint8Array.from([178, 1, 2, 1, 2])).r_unpacked, [1, 2]);
  // A packed body that ends inside an element.
  assert.throws(() => rpc.decodeWatchCreateRequest(Uint8Array.from([42, 1, 0x80, 1])), isDecodeError);
});

test('unknown fields of every wire type are skipped; groups must be balanced', () => {
  const kv = encodeKeyValue({ key: Buffer.from('k'), version: 3 });
  const unknown = [
    0xf8,
    0x07,
    0x96,
    0x01, // field 127 varint 150
    0x81,
    0x08,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8, // field 128 fixed64
    0x8a,
    0x08,
    2,
    9,
    9, // field 129 bytes
    0x95,
    0x08,
    1,
    2,
    3,
    4, // field 130 fixed32
    0x9b,
    0x08,
    0x08,
    0x01,
    0x13,
    0x14,
    0x9c,
    0x08, // field 131 group holding field 1 varint and an empty group 2
  ];
  const buf = Uint8Array.from([...unknown, ...kv]);
  const d = decodeKeyValue(buf);
  assert.is(Buffer.from(d.key).toString(), 'k');
  assert.is(d.version, 3);
  // An end tag for the wrong group, a group that never ends, a stray end group.
  assert.throws(() => decodeKeyValue(Uint8Array.from([0x9b, 0x08, 0xa4, 0x08])), isDecodeError);
  assert.throws(() => decodeKeyValue(Uint8Array.from([0x9b, 0x08, 0x08, 0x01])), isDecodeError);
  assert.throws(() => decodeKeyValue(Uint8Array.from([0x9c, 0x08])), isDecodeError);
  // Groups nested past the limit are refused instead of overflowing the stack.
  const deep = new Uint8Array(2 * 100_000).fill(0x0b); // field 1 start-group, over and over
  assert.throws(() => rpc.decodeHashRequest(deep), isDecodeError);
  const ok = Uint8Array.from([...new Array(nestingDepthMax).fill(0x0b), ...new Array(nestingDepthMax).fill(0x0c)]);
  rpc.decodeHashRequest(ok);
});

test('field number 0, invalid wire types and wrong wire types for known fields are errors', () => {
  assert.throws(() => decodeKeyValue(Uint8Array.from([0x00, 0x01])), isDecodeError);
  assert.throws(() => decodeKeyValue(Uint8Array.from([0x0e])), isDecodeError); // wire type 6
  assert.throws(() => decodeKeyValue(Uint8Array.from([0x0f])), isDecodeError); // wire type 7
  // KeyValue.key (bytes) sent as a varint, KeyValue.version (int64) sent as bytes.
  assert.throws(
    () => decodeKeyValue(Uint8Array.from([0x08, 0x01])),
    (e: unknown) => isDecodeError(e) && String(e).includes('KeyValue.key'),
  );
  assert.throws(
    () => decodeKeyValue(Uint8Array.from([0x22, 0x01, 0x01])),
    (e: unknown) => isDecodeError(e) && String(e).includes('KeyValue.version'),
  );
  // A message field sent as a varint.
  assert.throws(() => rpc.decodeRangeResponse(Uint8Array.from([0x08, 0x01])), isDecodeError);
});

test('truncated input is an error at every cut point', () => {
  const full = rpc.encodeTxnRequest({
    compare: [{ key: Buffer.from('abc'), target: rpc.Compare_CompareTarget.VALUE, value: Buffer.from('v'), range_end: Buffer.from('abd') }],
    success: [
      { request_put: { key: Buffer.from('abc'), value: Buffer.alloc(300, 1), lease: 2n ** 62n } },
      { request_txn: { success: [{ request_range: { key: Buffer.from('x'), limit: 2 ** 40 } }] } },
    ],
  });
  rpc.decodeTxnRequest(full);
  let errors = 0;
  for (let cut = 1; cut < full.length; cut++) {
    try {
      rpc.decodeTxnRequest(full.subarray(0, cut));
    } catch (e) {
      assert.ok(isDecodeError(e), `cut at ${cut}: ${e}`);
      errors++;
    }
  }
  // A cut can land between top-level fields, leaving a valid shorter message; most cuts cannot.
  assert.ok(errors > full.length * 0.9, `${errors} of ${full.length - 1} cuts failed`);
});

test('deeply nested txns are refused before the stack runs out', () => {
  // success { request_txn { success { request_txn ... } } } built inside out.
  let inner: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < 1000; i++) {
    const txnField = Uint8Array.from([0x22, ...varint(inner.length), ...inner]); // RequestOp.request_txn
    inner = Uint8Array.from([0x12, ...varint(txnField.length), ...txnField]); // TxnRequest.success
  }
  assert.throws(
    () => rpc.decodeTxnRequest(inner),
    (e: unknown) => isDecodeError(e) && String(e).includes('nested too deeply'),
  );
  let ok: rpc.TxnRequestInit = {};
  for (let i = 0; i < 40; i++) ok = { success: [{ request_txn: ok }] };
  rpc.decodeTxnRequest(rpc.encodeTxnRequest(ok));
});

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

test('a oneof decodes to its last member and encode refuses two members', () => {
  const both = Uint8Array.from([
    ...rpc.encodeRequestOp({ request_range: { key: Buffer.from('a') } }),
    ...rpc.encodeRequestOp({ request_put: { key: Buffer.from('b') } }),
  ]);
  const op = rpc.decodeRequestOp(both);
  assert.is(op.request_range, undefined);
  assert.is(Buffer.from(op.request_put?.key ?? []).toString(), 'b');
  assert.equal(Object.keys(op), ['request_put']);
  assert.throws(() => rpc.encodeRequestOp({ request_range: {}, request_put: {} }), /more than one field of oneof request/);
  assert.throws(() => rpc.encodeCompare({ version: 0, value: Buffer.from('x') }), /oneof target_union/);
});

test('decoded bytes are views into the input (no copy)', () => {
  const buf = encodeKeyValue({ key: Buffer.from('key'), value: Buffer.from('value') });
  const d = decodeKeyValue(buf);
  assert.is(d.value.buffer, buf.buffer);
});

test('strings with 1- to 4-byte UTF-8 characters survive', () => {
  const rng = new Rng(99);
  for (let i = 0; i < 200; i++) {
    let s = '';
    for (let j = 0; j < 20; j++) s += String.fromCodePoint(rng.pick([0x24, 0xa2, 0x939, 0x20ac, 0xd55c, 0x10348, 0x1f600]));
    const d = rpc.decodeAuthenticateRequest(rpc.encodeAuthenticateRequest({ name: s, password: s + s }));
    assert.is(d.name, s);
    assert.is(d.password, s + s);
  }
});

test.run();
