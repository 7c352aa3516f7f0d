// Every message of the etcd protos and of the all-types fixture, with random values (64-bit
// extremes, negative int64, unicode, empty and large bytes, nested txns), encoded by our codec and
// decoded by protobufjs's reflection codec built from the same .proto files, and the other way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { allMessageNames, canon, codec, hex, pbJsonOptions, randomMessage, Rng, toPbObject } from './helpers.js';

const ITERATIONS_PER_MESSAGE = 40;
const names = allMessageNames();

test('the schema has every etcd message and the fixture', () => {
  for (const n of [
    'mvccpb.KeyValue',
    'etcdserverpb.TxnRequest',
    'etcdserverpb.WatchResponse',
    'authpb.Role',
    'v3lockpb.LockRequest',
    'v3electionpb.LeaderKey',
    'tetcdpb.InternalRequest',
    'tetcdtest.Scalars',
    'tetcdtest.Tree',
    'tetcdtest.Outer.Inner',
  ]) {
    assert.ok(names.includes(n), n);
  }
  assert.ok(names.length > 120, `only ${names.length} messages`);
});

for (const name of names) {
  test(`${name}: ours → protobufjs → ours`, () => {
    const c = codec(name);
    const rng = new Rng(0x9e3779b9 ^ (name.length * 7919));
    for (let i = 0; i < ITERATIONS_PER_MESSAGE; i++) {
      const value = randomMessage(name, rng);
      const ours = c.encode(value);
      assert.is(ours.length, c.size(value), 'size() matches the encoding');
      // protobufjs reads what we wrote and writes the same bytes back.
      const pbMsg = c.pb.decode(ours);
      const pbBytes = c.pb.encode(pbMsg).finish();
      assert.is(hex(pbBytes), hex(ours), `re-encoded by protobufjs (iteration ${i})`);
      // We read it back to the same value.
      const decoded = c.decode(ours);
      assert.equal(canon(decoded), canon(value), `decoded (iteration ${i})`);
      // JSON: same mapping as protobufjs's toObject with gateway-like options.
      assert.equal(c.toJson(decoded), c.pb.toObject(pbMsg, pbJsonOptions), `toJson (iteration ${i})`);
      // JSON round trip through text.
      const reparsed = c.fromJson(JSON.parse(JSON.stringify(c.toJson(decoded))));
      assert.equal(canon(reparsed), canon(decoded), `fromJson(toJson) (iteration ${i})`);
    }
  });

  test(`${name}: protobufjs → ours`, () => {
    const c = codec(name);
    const rng = new Rng(0x85ebca6b ^ (name.length * 104729));
    for (let i = 0; i < ITERATIONS_PER_MESSAGE; i++) {
      const value = randomMessage(name, rng);
      const pbObj = toPbObject(name, value);
      const pbBytes = c.pb.encode(c.pb.fromObject(pbObj)).finish();
      const decoded = c.decode(pbBytes);
      assert.equal(canon(decoded), canon(value), `decoded (iteration ${i})`);
      assert.is(hex(c.encode(decoded)), hex(pbBytes), `re-encoded by us (iteration ${i})`);
    }
  });
}

test.run();
