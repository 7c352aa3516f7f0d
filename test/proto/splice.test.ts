// The server's escape hatch: KeyValues (and Events) it already holds encoded are written into a
// RangeResponse (WatchResponse) verbatim, producing the same bytes as encoding the decoded values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as rpc from '../../src/proto/rpc.js';
import { encodeKeyValue, encodeEvent, type KeyValueInit, type EventInit } from '../../src/proto/kv.js';
import { ProtoWriter } from '../../src/proto/wire.js';
import { hex, Rng, randomMessage, codec } from './helpers.js';

const header = { cluster_id: 12021080376571006341n, member_id: 15181106712054921186n, revision: 9, raft_term: 2 };

function randomKvs(rng: Rng, n: number): KeyValueInit[] {
  const out: KeyValueInit[] = [];
  for (let i = 0; i < n; i++) out.push(randomMessage('mvccpb.KeyValue', rng) as KeyValueInit);
  return out;
}

test('RangeResponse.kvs_encoded writes the same bytes as kvs', () => {
  const rng = new Rng(7);
  for (const n of [0, 1, 2, 100]) {
    const kvs = randomKvs(rng, n);
    const plain = rpc.encodeRangeResponse({ header, kvs, more: true, count: n + 5 });
    const spliced = rpc.encodeRangeResponse({ header, kvs_encoded: kvs.map(encodeKeyValue), more: true, count: n + 5 });
    assert.is(hex(spliced), hex(plain), `${n} kvs`);
    assert.is(rpc.sizeRangeResponse({ header, kvs_encoded: kvs.map(encodeKeyValue) }), rpc.sizeRangeResponse({ header, kvs }));
    // protobufjs agrees on what the spliced message holds.
    const pb = codec('etcdserverpb.RangeResponse').pb.decode(spliced) as unknown as { kvs: unknown[] };
    assert.is(pb.kvs.length, n);
  }
});

test('kvs_encoded wins over kvs, and an empty list writes no kvs', () => {
  const kvs = randomKvs(new Rng(3), 3);
  const a = rpc.encodeRangeResponse({ kvs_encoded: [encodeKeyValue(kvs[0])], kvs });
  assert.is(hex(a), hex(rpc.encodeRangeResponse({ kvs: [kvs[0]] })));
  assert.is(rpc.encodeRangeResponse({ kvs_encoded: [], kvs }).length, 0);
});

test('spliced responses nest inside a TxnResponse and a gRPC frame', () => {
  const kvs = randomKvs(new Rng(11), 5);
  const enc = kvs.map(encodeKeyValue);
  const txn = rpc.encodeTxnResponse({
    header,
    succeeded: true,
    responses: [{ response_range: { header: { revision: 9 }, kvs_encoded: enc, count: 5 } }],
  });
  const ref = rpc.encodeTxnResponse({
    header,
    succeeded: true,
    responses: [{ response_range: { header: { revision: 9 }, kvs, count: 5 } }],
  });
  assert.is(hex(txn), hex(ref));
  const back = rpc.decodeTxnResponse(txn);
  assert.is(back.responses[0].response_range?.kvs.length, 5);
  // A server can size, allocate frame + message once, and write in place.
  const m = { header, kvs_encoded: enc, count: 5 };
  const size = rpc.KV.methods.Range.sizeResponse(m);
  const w = new ProtoWriter(5 + size);
  w.buf[0] = 0;
  w.buf[1] = size >>> 24;
  w.buf[2] = (size >>> 16) & 255;
  w.buf[3] = (size >>> 8) & 255;
  w.buf[4] = size & 255;
  w.pos = 5;
  rpc.KV.methods.Range.writeResponse(m, w);
  const frame = w.finish();
  assert.is(hex(frame.subarray(5)), hex(rpc.encodeRangeResponse({ header, kvs, count: 5 })));
});

test('WatchResponse.events_encoded writes the same bytes as events', () => {
  const rng = new Rng(5);
  const events: EventInit[] = [];
  for (let i = 0; i < 20; i++) events.push(randomMessage('mvccpb.Event', rng) as EventInit);
  const plain = rpc.encodeWatchResponse({ header, watch_id: 3, events });
  const spliced = rpc.encodeWatchResponse({ header, watch_id: 3, events_encoded: events.map(encodeEvent) });
  assert.is(hex(spliced), hex(plain));
  assert.equal(
    rpc.watchResponseToJson({ header, watch_id: 3, events_encoded: events.map(encodeEvent) }),
    rpc.watchResponseToJson({ header, watch_id: 3, events }),
  );
});

test.run();
