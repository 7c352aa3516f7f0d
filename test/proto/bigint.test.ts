// The 64-bit mapping: exactly the fields marked [jstype = JS_STRING] are bigint (the list in
// src/proto/README.md), every other int64/uint64 is a number that refuses values beyond 2^53.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as rpc from '../../src/proto/rpc.js';
import { decodeKeyValue, encodeKeyValue } from '../../src/proto/kv.js';
import { encodeLockRequest, decodeLockRequest } from '../../src/proto/v3lock.js';
import { decodeInternalRequest, encodeInternalRequest } from '../../src/proto/internal.js';
import { ProtoDecodeError, ProtoWriter } from '../../src/proto/wire.js';
import { schema, repoRoot } from './helpers.js';

/** Every bigint field of the etcd API and of our Raft envelope. */
const EXPECTED_BIGINT = [
  'mvccpb.KeyValue.lease',
  'etcdserverpb.ResponseHeader.cluster_id',
  'etcdserverpb.ResponseHeader.member_id',
  'etcdserverpb.PutRequest.lease',
  'etcdserverpb.Compare.lease',
  'etcdserverpb.LeaseGrantRequest.ID',
  'etcdserverpb.LeaseGrantResponse.ID',
  'etcdserverpb.LeaseRevokeRequest.ID',
  'etcdserverpb.LeaseCheckpoint.ID',
  'etcdserverpb.LeaseKeepAliveRequest.ID',
  'etcdserverpb.LeaseKeepAliveResponse.ID',
  'etcdserverpb.LeaseTimeToLiveRequest.ID',
  'etcdserverpb.LeaseTimeToLiveResponse.ID',
  'etcdserverpb.LeaseStatus.ID',
  'etcdserverpb.Member.ID',
  'etcdserverpb.MemberRemoveRequest.ID',
  'etcdserverpb.MemberUpdateRequest.ID',
  'etcdserverpb.MemberPromoteRequest.ID',
  'etcdserverpb.MoveLeaderRequest.targetID',
  'etcdserverpb.AlarmRequest.memberID',
  'etcdserverpb.AlarmMember.memberID',
  'etcdserverpb.StatusResponse.leader',
  'v3lockpb.LockRequest.lease',
  'v3electionpb.CampaignRequest.lease',
  'v3electionpb.LeaderKey.lease',
  'tetcdpb.RequestHeader.ID',
  'tetcdpb.InternalRequest.ID',
  'tetcdpb.MemberAttrSetRequest.member_ID',
];

function bigFields(): string[] {
  const out: string[] = [];
  for (const f of schema) {
    if (f.proto.startsWith('test/')) continue;
    for (const d of f.decls) {
      if (d.kind !== 'message') continue;
      for (const fld of d.message.fields) if (fld.big) out.push(`${d.message.fullName}.${fld.name}`);
    }
  }
  return out;
}

test('exactly the expected fields are bigint', () => {
  assert.equal(bigFields().sort(), [...EXPECTED_BIGINT].sort());
});

test('README lists every bigint field', () => {
  const readme = readFileSync(join(repoRoot, 'src/proto/README.md'), 'utf8');
  for (const f of EXPECTED_BIGINT) assert.ok(readme.includes(`\`${f}\``), `README misses ${f}`);
});

test('bigint fields decode as bigint at the 64-bit extremes', () => {
  const maxU = 2n ** 64n - 1n;
  const h = rpc.decodeResponseHeader(rpc.encodeResponseHeader({ cluster_id: maxU, member_id: 1n, revision: 5, raft_term: 2 }));
  assert.is(h.cluster_id, maxU);
  assert.is(h.member_id, 1n);
  assert.is(typeof h.revision, 'number');
  const minI = -(2n ** 63n);
  assert.is(decodeKeyValue(encodeKeyValue({ key: Buffer.from('k'), lease: minI })).lease, minI);
  assert.is(decodeKeyValue(encodeKeyValue({ key: Buffer.from('k') })).lease, 0n);
  assert.is(rpc.decodeLeaseGrantResponse(rpc.encodeLeaseGrantResponse({ ID: 2n ** 63n - 1n, TTL: 60 })).ID, 2n ** 63n - 1n);
  // A uint64 member ID written by Go as 10 bytes of all ones is the largest bigint, not -1.
  assert.is(rpc.decodeMember(rpc.encodeMember({ ID: -1n })).ID, maxU);
  // A negative lease ID (int64) is signed.
  assert.is(rpc.decodePutRequest(rpc.encodePutRequest({ lease: -5n })).lease, -5n);
  assert.is(decodeLockRequest(encodeLockRequest({ lease: 7587869999999999999n })).lease, 7587869999999999999n);
  const ir = decodeInternalRequest(
    encodeInternalRequest({ ID: maxU, header: { ID: maxU, username: 'u', auth_revision: 3 }, member_attr_set: { member_ID: maxU - 1n } }),
  );
  assert.is(ir.ID, maxU);
  assert.is(ir.header?.ID, maxU);
  assert.is(ir.member_attr_set?.member_ID, maxU - 1n);
});

/** A message holding field 1 as the given varint bytes. */
function varintField(field: number, bytes: number[]): Uint8Array {
  return Uint8Array.from([field << 3, ...bytes]);
}

test('number-mapped 64-bit fields refuse values beyond 2^53', () => {
  // 2^53 exactly: 0x80 x7 then 0x10
  const twoTo53 = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
  const twoTo53Minus1 = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
  assert.is(rpc.decodeCompactionRequest(varintField(1, twoTo53Minus1)).revision, Number.MAX_SAFE_INTEGER);
  assert.throws(
    () => rpc.decodeCompactionRequest(varintField(1, twoTo53)),
    (e: unknown) => e instanceof ProtoDecodeError,
  );
  // uint64 raft_term (field 4 of ResponseHeader) beyond 2^53
  assert.throws(
    () => rpc.decodeResponseHeader(Uint8Array.from([4 << 3, ...twoTo53])),
    (e: unknown) => e instanceof ProtoDecodeError,
  );
  // -1 as int64 is fine, as uint64 (SnapshotResponse.remaining_bytes) it is 2^64-1: refused
  const minusOne = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
  assert.is(rpc.decodeHashKVRequest(varintField(1, minusOne)).revision, -1);
  assert.throws(
    () => rpc.decodeSnapshotResponse(Uint8Array.from([2 << 3, ...minusOne])),
    (e: unknown) => e instanceof ProtoDecodeError,
  );
  // the most negative safe integer round-trips
  const w = new ProtoWriter(11);
  w.uint32(8);
  w.int64(Number.MIN_SAFE_INTEGER);
  assert.is(rpc.decodeCompactionRequest(w.finish()).revision, Number.MIN_SAFE_INTEGER);
});

test("bigint and number fields encode like Go does (two's complement, 10 bytes for negatives)", () => {
  assert.equal([...rpc.encodeLeaseRevokeRequest({ ID: -1n })], [8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.equal([...rpc.encodeCompactionRequest({ revision: -1 })], [8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.equal([...rpc.encodeMemberRemoveRequest({ ID: 2n ** 64n - 1n })], [8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.equal([...rpc.encodeLeaseRevokeRequest({ ID: 300n })], [8, 0xac, 0x02]);
});

test.run();
