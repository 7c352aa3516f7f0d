// Micro-benchmark of the generated codecs against protobufjs's reflection codec (which compiles
// per-type encoders/decoders at run time, the same code its static generator emits).
//   node dist/bench/proto/codec.bench.js [--ms=300]
// Prints one line per case: ops/s for ours and protobufjs, and the ratio. Not part of npm test.
import * as rpc from '../../src/proto/rpc.js';
import { encodeKeyValue, type KeyValueInit } from '../../src/proto/kv.js';
import { findRepoRoot } from '../../tools/protogen/paths.js';
import { loadProtobufRoot } from '../../tools/protogen/load.js';
import { includeDirs } from '../../tools/protogen/config.js';

const msArg = process.argv.find((a) => a.startsWith('--ms='));
const runMs = msArg === undefined ? 300 : Number(msArg.slice(5));

const root = loadProtobufRoot(findRepoRoot(import.meta.url), ['src/proto/rpc.proto'], includeDirs);
const PbRangeResponse = root.lookupType('etcdserverpb.RangeResponse');
const PbPutRequest = root.lookupType('etcdserverpb.PutRequest');
const PbPutResponse = root.lookupType('etcdserverpb.PutResponse');
const PbTxnRequest = root.lookupType('etcdserverpb.TxnRequest');
const PbWatchResponse = root.lookupType('etcdserverpb.WatchResponse');

let sink = 0;

/** Runs fn repeatedly for about runMs (after a warm-up) and returns operations per second. */
function opsPerSec(fn: () => number): number {
  const warmUntil = performance.now() + runMs / 3;
  while (performance.now() < warmUntil) sink += fn();
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < runMs) {
    for (let i = 0; i < 100; i++) sink += fn();
    ops += 100;
    now = performance.now();
  }
  return (ops * 1000) / (now - start);
}

function row(name: string, ours: () => number, theirs: () => number): void {
  const a = opsPerSec(ours);
  const b = opsPerSec(theirs);
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(12);
  process.stdout.write(`${name.padEnd(44)} ours ${fmt(a)} ops/s   protobufjs ${fmt(b)} ops/s   ×${(a / b).toFixed(2)}\n`);
}

const header = { cluster_id: 12021080376571006341n, member_id: 15181106712054921186n, revision: 123456789, raft_term: 7 };
const kvs: KeyValueInit[] = [];
for (let i = 0; i < 100; i++) {
  kvs.push({
    key: Buffer.from(`/registry/pods/default/pod-${i}`),
    create_revision: 1000 + i,
    mod_revision: 100000 + i,
    version: 1 + (i % 5),
    value: Buffer.alloc(256, i),
  });
}
const kvsEncoded = kvs.map(encodeKeyValue);
const range = { header, kvs, count: 100 };
const rangeBytes = rpc.encodeRangeResponse(range);
// protobufjs wants Long-compatible values for uint64: strings work with fromObject.
const pbRange = PbRangeResponse.fromObject({
  header: {
    cluster_id: header.cluster_id.toString(),
    member_id: header.member_id.toString(),
    revision: header.revision,
    raft_term: header.raft_term,
  },
  kvs,
  count: 100,
});

const put = { key: Buffer.from('/registry/pods/default/pod-1'), value: Buffer.alloc(256, 7), lease: 7587869999999999999n, prev_kv: true };
const putBytes = rpc.encodePutRequest(put);
const pbPut = PbPutRequest.fromObject({ ...put, lease: put.lease.toString() });
const putRes = { header };
const putResBytes = rpc.encodePutResponse(putRes);
const pbPutRes = PbPutResponse.decode(putResBytes);

const txn: rpc.TxnRequestInit = {
  compare: [{ key: put.key, target: rpc.Compare_CompareTarget.MOD, result: rpc.Compare_CompareResult.EQUAL, mod_revision: 100001 }],
  success: [{ request_put: put }],
  failure: [{ request_range: { key: put.key } }],
};
const txnBytes = rpc.encodeTxnRequest(txn);

const watch = { header, watch_id: 1, events: kvs.slice(0, 10).map((kv) => ({ type: 0, kv })) };
const watchBytes = rpc.encodeWatchResponse(watch);
const pbWatch = PbWatchResponse.decode(watchBytes);

if (Buffer.compare(Buffer.from(PbRangeResponse.encode(pbRange).finish()), Buffer.from(rangeBytes)) !== 0)
  throw new Error('bench inputs differ');

process.stdout.write(`node ${process.version}, ${runMs} ms per case\n`);
row(
  'RangeResponse(100 kvs) encode',
  () => rpc.encodeRangeResponse(range).length,
  () => PbRangeResponse.encode(pbRange).finish().length,
);
row(
  'RangeResponse(100 kvs) encode, kvs_encoded',
  () => rpc.encodeRangeResponse({ header, kvs_encoded: kvsEncoded, count: 100 }).length,
  () => PbRangeResponse.encode(pbRange).finish().length,
);
row(
  'RangeResponse(100 kvs) decode',
  () => rpc.decodeRangeResponse(rangeBytes).kvs.length,
  () => (PbRangeResponse.decode(rangeBytes) as unknown as { kvs: unknown[] }).kvs.length,
);
row(
  'PutRequest encode',
  () => rpc.encodePutRequest(put).length,
  () => PbPutRequest.encode(pbPut).finish().length,
);
row(
  'PutRequest decode',
  () => rpc.decodePutRequest(putBytes).value.length,
  () => (PbPutRequest.decode(putBytes) as unknown as { value: Uint8Array }).value.length,
);
row(
  'PutResponse encode',
  () => rpc.encodePutResponse(putRes).length,
  () => PbPutResponse.encode(pbPutRes).finish().length,
);
row(
  'TxnRequest decode',
  () => rpc.decodeTxnRequest(txnBytes).success.length,
  () => (PbTxnRequest.decode(txnBytes) as unknown as { success: unknown[] }).success.length,
);
row(
  'WatchResponse(10 events) encode',
  () => rpc.encodeWatchResponse(watch).length,
  () => PbWatchResponse.encode(pbWatch).finish().length,
);
row(
  'RangeResponse(100 kvs) toJson+stringify',
  () => JSON.stringify(rpc.rangeResponseToJson(range)).length,
  () => JSON.stringify(PbRangeResponse.toObject(pbRange, { longs: String, enums: String, bytes: String, json: true })).length,
);
// Reading the accumulated results keeps the optimizer from dropping the measured calls.
if (sink === -1) process.stdout.write('\n');
