import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReadOnly } from '../../src/raft/read_only.js';
import { EntryType, MessageType, newMessage, ReadOnlyOption } from '../../src/raft/types.js';

const te = new TextEncoder();

function req(ctx: string) {
  const m = newMessage(MessageType.MsgReadIndex);
  m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data: te.encode(ctx) }];
  return m;
}

test('requests queue in order; a duplicate context is ignored', () => {
  const ro = new ReadOnly(ReadOnlyOption.Safe);
  ro.addRequest(5, req('a'));
  ro.addRequest(6, req('b'));
  ro.addRequest(7, req('a'));
  assert.is(ro.size, 2);
  assert.equal(ro.lastPendingRequestCtx(), te.encode('b'));
});

test('acks are counted per request', () => {
  const ro = new ReadOnly(ReadOnlyOption.Safe);
  ro.addRequest(5, req('a'));
  assert.is(ro.recvAck(1n, te.encode('zzz')), undefined, 'unknown context');
  ro.recvAck(1n, te.encode('a'));
  const acks = ro.recvAck(2n, te.encode('a'))!;
  assert.equal([...acks.keys()], [1n, 2n]);
});

test('advance releases the confirmed request and everything queued before it', () => {
  const ro = new ReadOnly(ReadOnlyOption.Safe);
  ro.addRequest(5, req('a'));
  ro.addRequest(6, req('b'));
  ro.addRequest(7, req('c'));
  assert.equal(ro.advance(te.encode('x')), [], 'unknown context releases nothing');
  const out = ro.advance(te.encode('b'));
  assert.equal(
    out.map((r) => r.index),
    [5, 6],
  );
  assert.is(ro.size, 1);
  assert.equal(ro.lastPendingRequestCtx(), te.encode('c'));
  assert.equal(ro.advance(te.encode('a')), [], 'already released');
  assert.equal(
    ro.advance(te.encode('c')).map((r) => r.index),
    [7],
  );
  assert.is(ro.size, 0);
  assert.is(ro.lastPendingRequestCtx(), undefined);
});

test('contexts are compared as bytes', () => {
  const ro = new ReadOnly(ReadOnlyOption.Safe);
  const m = newMessage(MessageType.MsgReadIndex);
  m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array([0, 255, 128]) }];
  ro.addRequest(3, m);
  assert.ok(ro.recvAck(1n, new Uint8Array([0, 255, 128])) !== undefined);
  assert.is(ro.recvAck(1n, new Uint8Array([0, 255, 127])), undefined);
});

test.run();
