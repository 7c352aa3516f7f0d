import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decodeConfChange,
  decodeConfChangeV2,
  decodeConfState,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeSnapshot,
  decodeSnapshotMetadata,
  encodeConfChange,
  encodeConfChangeV2,
  encodeConfState,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeSnapshot,
  encodeSnapshotMetadata,
} from '../../src/raft/codec.js';
import { RaftDecodeError } from '../../src/raft/errors.js';
import { SeededRng } from '../../src/raft/rand.js';
import {
  ConfChangeTransition,
  ConfChangeType,
  type ConfState,
  EntryType,
  type Message,
  MessageType,
  newMessage,
} from '../../src/raft/types.js';

const BIG = (1n << 64n) - 1n;

function bytes(...b: number[]): Uint8Array {
  return new Uint8Array(b);
}

const cs: ConfState = { voters: [1n, BIG], learners: [0xdeadbeefcafef00dn], voters_outgoing: [1n], learners_next: [], auto_leave: true };

function fullMessage(): Message {
  const m = newMessage(MessageType.MsgSnap, BIG);
  m.from = 0x8000000000000000n;
  m.term = Number.MAX_SAFE_INTEGER;
  m.logTerm = 2 ** 40;
  m.index = 127;
  m.commit = 128;
  m.reject = true;
  m.rejectHint = 300;
  m.context = bytes(1, 2, 3);
  m.entries = [
    { term: 1, index: 2, type: EntryType.Normal, data: bytes() },
    { term: 3, index: 4, type: EntryType.ConfChangeV2, data: bytes(9, 8, 7) },
  ];
  m.snapshot = { data: bytes(5, 5, 5, 5), metadata: { index: 99, term: 7, conf_state: cs } };
  return m;
}

test('every encoding round-trips, including uint64 IDs and 2^53-1 terms', () => {
  const m = fullMessage();
  assert.equal(decodeMessage(encodeMessage(m)), m);
  const plain = newMessage(MessageType.MsgHeartbeat, 2n);
  assert.equal(decodeMessage(encodeMessage(plain)), plain, 'no snapshot, no entries');
  const e = { term: 5, index: 6, type: EntryType.ConfChange, data: bytes(1) };
  assert.equal(decodeEntry(encodeEntry(e)), e);
  const hs = { term: 9, vote: BIG, commit: 77 };
  assert.equal(decodeHardState(encodeHardState(hs)), hs);
  assert.equal(decodeConfState(encodeConfState(cs)), cs);
  const md = { index: 1, term: 2, conf_state: cs };
  assert.equal(decodeSnapshotMetadata(encodeSnapshotMetadata(md)), md);
  const snap = { data: bytes(1, 2), metadata: md };
  assert.equal(decodeSnapshot(encodeSnapshot(snap)), snap);
  const cc = { type: ConfChangeType.AddLearnerNode, node_id: BIG, context: bytes(4), id: 12345n };
  assert.equal(decodeConfChange(encodeConfChange(cc)), cc);
  const cc2 = {
    transition: ConfChangeTransition.JointExplicit,
    changes: [
      { type: ConfChangeType.AddNode, node_id: 4n },
      { type: ConfChangeType.RemoveNode, node_id: 1n },
    ],
    context: bytes(),
  };
  assert.equal(decodeConfChangeV2(encodeConfChangeV2(cc2)), cc2);
});

test('empty data decodes as the leave-joint ConfChangeV2', () => {
  const cc = decodeConfChangeV2(bytes());
  assert.is(cc.changes.length, 0);
  assert.is(cc.transition, ConfChangeTransition.Auto);
});

test('decoded byte fields are copies by default and views on request', () => {
  const buf = encodeMessage(fullMessage());
  const copied = decodeMessage(buf);
  const viewed = decodeMessage(buf, { copy: false });
  buf.fill(0xee);
  assert.equal(copied.context, bytes(1, 2, 3));
  assert.is(viewed.context[0], 0xee);
});

test('the encoder refuses values the format cannot hold', () => {
  const m = newMessage(MessageType.MsgApp, 1n);
  m.term = -1;
  assert.throws(() => encodeMessage(m), RangeError);
  m.term = 1.5;
  assert.throws(() => encodeMessage(m), RangeError);
  const m2 = newMessage(MessageType.MsgApp, 1n << 64n);
  assert.throws(() => encodeMessage(m2), RangeError);
});

test('malformed inputs: wrong version, unknown types, truncation, trailing bytes, over the size limit', () => {
  const good = encodeMessage(fullMessage());
  const isDecodeErr = (e: unknown) => e instanceof RaftDecodeError;
  const bad = good.slice();
  bad[0] = 2;
  assert.throws(() => decodeMessage(bad), isDecodeErr, 'version');
  const badType = good.slice();
  badType[1] = 19;
  assert.throws(() => decodeMessage(badType), isDecodeErr, 'message type');
  const badFlags = good.slice();
  badFlags[2] = 0x80;
  assert.throws(() => decodeMessage(badFlags), isDecodeErr, 'flags');
  for (let n = 0; n < good.length; n++) {
    assert.throws(() => decodeMessage(good.subarray(0, n)), isDecodeErr, `truncated to ${n}`);
  }
  const trailing = new Uint8Array(good.length + 1);
  trailing.set(good);
  assert.throws(() => decodeMessage(trailing), isDecodeErr, 'trailing byte');
  assert.throws(() => decodeMessage(good, { maxBytes: good.length - 1 }), isDecodeErr, 'size limit');
  assert.throws(() => decodeMessage('nope' as unknown as Uint8Array), isDecodeErr, 'not bytes');
  // A varint above 2^53.
  assert.throws(() => decodeHardState(bytes(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0)), isDecodeErr);
  // A count claiming more entries than bytes remain is refused before allocating.
  const w = encodeMessage(newMessage(MessageType.MsgApp, 1n));
  const claim = new Uint8Array(w.length + 4);
  claim.set(w);
  claim.set([0xff, 0xff, 0xff, 0x7f], w.length - 1);
  assert.throws(() => decodeMessage(claim), isDecodeErr);
});

test('fuzz: random mutations of valid encodings decode or throw RaftDecodeError, nothing else', () => {
  const rng = new SeededRng(7);
  const seeds = [
    encodeMessage(fullMessage()),
    encodeMessage(newMessage(MessageType.MsgVote, 3n)),
    encodeHardState({ term: 1, vote: 2n, commit: 3 }),
    encodeConfState(cs),
    encodeConfChangeV2({ transition: 1, changes: [{ type: 0, node_id: 1n }], context: bytes(1) }),
  ];
  const decoders = [decodeMessage, decodeHardState, decodeConfState, decodeConfChangeV2, decodeConfChange, decodeEntry, decodeSnapshot];
  let decoded = 0;
  let rejected = 0;
  for (let i = 0; i < 20000; i++) {
    const src = seeds[rng.intn(seeds.length)];
    let buf = src.slice();
    const edits = 1 + rng.intn(4);
    for (let k = 0; k < edits; k++) {
      const op = rng.intn(4);
      if (op === 0 && buf.length > 0) buf[rng.intn(buf.length)] = rng.intn(256);
      else if (op === 1) buf = buf.subarray(0, rng.intn(buf.length + 1));
      else if (op === 2) {
        const ext = new Uint8Array(buf.length + 1 + rng.intn(8));
        ext.set(buf);
        for (let j = buf.length; j < ext.length; j++) ext[j] = rng.intn(256);
        buf = ext;
      } else if (buf.length > 0) buf[rng.intn(buf.length)] ^= 1 << rng.intn(8);
    }
    const decode = decoders[rng.intn(decoders.length)];
    try {
      decode(buf, { maxBytes: 1 << 16 });
      decoded++;
    } catch (e) {
      if (!(e instanceof RaftDecodeError)) throw new Error(`decoder threw ${String(e)} for ${Array.from(buf)}`);
      rejected++;
    }
  }
  assert.ok(decoded > 100 && rejected > 100, `decoded ${decoded}, rejected ${rejected}`);
});

test.run();
