// The channel's framing: frames written in one turn leave in one socket write, frames survive being
// split at every byte, oversized or undersized length fields are refused, and big frames get a chunk.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import {
  FrameReader,
  FrameWriter,
  FrameKind,
  ContextSizer,
  CtxFlag,
  readContext,
  CALL_HEAD_BYTES,
  CREDIT_BYTES,
  HALF_CLOSE_BYTES,
  MESSAGE_HEAD_BYTES,
  type FrameSink,
  type WireContext,
} from '../../src/client_procs/channel.js';

class Collect implements FrameSink {
  frames: Buffer[] = [];
  bad: string[] = [];
  onFrame(buf: Buffer, start: number, end: number): void {
    this.frames.push(Buffer.from(buf.subarray(start, end)));
  }
  onBadFrame(reason: string): void {
    this.bad.push(reason);
  }
}

function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(() => setImmediate(r)));
}

/** A writable that records each write call. */
function recorder(): { stream: PassThrough; writes: Buffer[] } {
  const stream = new PassThrough();
  const writes: Buffer[] = [];
  const origWrite = stream.write.bind(stream);
  stream.write = ((chunk: Buffer, ...rest: unknown[]) => {
    writes.push(Buffer.from(chunk));
    return (origWrite as (c: Buffer, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof stream.write;
  return { stream, writes };
}

test('frames of one turn leave in one write and parse back', async () => {
  const { stream, writes } = recorder();
  const w = new FrameWriter(stream);
  for (let i = 0; i < 100; i++) w.writeCall(i + 1, i % 7, i * 10, Buffer.from(`request-${i}`));
  w.writeFail(500, 8, 'etcdserver: too many requests');
  assert.is(writes.length, 0, 'nothing is written before the turn ends');
  await nextTurn();
  assert.is(writes.length, 1, 'one write for the whole turn');
  const sink = new Collect();
  new FrameReader(sink).push(writes[0]);
  assert.is(sink.frames.length, 101);
  assert.equal(sink.bad, []);
  for (let i = 0; i < 100; i++) {
    const f = sink.frames[i];
    assert.is(f[0], FrameKind.Call);
    assert.is(f.readUInt32BE(1), i + 1);
    assert.is(f.readUInt16BE(5), i % 7);
    assert.is(f.readUInt32BE(7), i * 10);
    assert.is(f.subarray(CALL_HEAD_BYTES - 4).toString(), `request-${i}`);
  }
  const fail = sink.frames[100];
  assert.is(fail[0], FrameKind.Fail);
  assert.is(fail.readUInt32BE(1), 500);
  assert.is(fail[5], 8);
  assert.is(fail.subarray(6).toString(), 'etcdserver: too many requests');
});

test('a stream split at every byte boundary gives the same frames', async () => {
  const { stream, writes } = recorder();
  const w = new FrameWriter(stream);
  const bodies = [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(300, 7), Buffer.from('last')];
  bodies.forEach((b, i) => w.writeCall(i, 1, 0, b));
  await nextTurn();
  const all = Buffer.concat(writes);
  for (let cut = 0; cut <= all.length; cut++) {
    for (const step of [1, 3, 1000]) {
      const sink = new Collect();
      const r = new FrameReader(sink);
      r.push(all.subarray(0, cut));
      for (let p = cut; p < all.length; p += step) r.push(all.subarray(p, Math.min(all.length, p + step)));
      assert.is(sink.frames.length, bodies.length, `cut ${cut} step ${step}`);
      sink.frames.forEach((f, i) => assert.ok(f.subarray(CALL_HEAD_BYTES - 4).equals(bodies[i]), `frame ${i} at cut ${cut}`));
    }
  }
});

test('length fields out of bounds are refused once, and nothing after them is parsed', () => {
  for (const len of [0, 4, 1000]) {
    const sink = new Collect();
    const r = new FrameReader(sink, 999);
    const b = Buffer.alloc(4 + 10);
    b.writeUInt32BE(len, 0);
    r.push(b);
    r.push(b);
    assert.is(sink.bad.length, 1, `length ${len}`);
    assert.is(sink.frames.length, 0);
  }
});

test('a frame larger than a chunk gets a buffer of its own; queued bytes are counted', async () => {
  const { stream, writes } = recorder();
  const w = new FrameWriter(stream);
  const big = Buffer.alloc(1 << 20, 9);
  w.writeCall(1, 0, 0, Buffer.from('small'));
  w.writeCall(2, 0, 0, big);
  w.writeCall(3, 0, 0, Buffer.from('after'));
  assert.ok(w.pendingBytes >= big.length, 'the queue counts what is not yet written');
  await nextTurn();
  const sink = new Collect();
  const r = new FrameReader(sink);
  for (const c of writes) r.push(c);
  assert.is(sink.frames.length, 3);
  assert.ok(sink.frames[1].subarray(CALL_HEAD_BYTES - 4).equals(big));
  assert.is(sink.frames[2].subarray(CALL_HEAD_BYTES - 4).toString(), 'after');
});

test('after close() nothing more is written', async () => {
  const { stream, writes } = recorder();
  const w = new FrameWriter(stream);
  w.writeCall(1, 0, 0, Buffer.from('a'));
  w.close();
  await nextTurn();
  assert.is(writes.length, 0);
});

test('stream frames and the context block round-trip; a malformed block is refused', async () => {
  const { stream, writes } = recorder();
  const w = new FrameWriter(stream);
  const ctx: WireContext = { token: 'tökén', certCommonName: 'client-1', peerAddress: '::ffff:127.0.0.1', requireLeader: false };
  const sizer = new ContextSizer();
  sizer.size(ctx);
  assert.is(sizer.flags, CtxFlag.Token | CtxFlag.CertCn | CtxFlag.Peer);
  w.writeCallWithContext(FrameKind.Open, 9, 0x0201, 1500, ctx, sizer, Buffer.from('req'));
  w.writeCall(10, 0x0102, 0, Buffer.from('put'));
  w.writeMessage(9, Buffer.from('msg'));
  w.writeHalfClose(9);
  w.writeCredit(9, 65536);
  w.writeStatus(FrameKind.Cancel, 9, 1, 'context canceled');
  w.writeStatus(FrameKind.End, 9, 8, 'too slow');
  await nextTurn();
  const sink = new Collect();
  new FrameReader(sink).push(Buffer.concat(writes));
  assert.equal(sink.bad, []);
  const [open, call, msg, half, credit, cancel, end] = sink.frames;
  assert.is(open[0], FrameKind.Open);
  assert.is(open.readUInt32BE(1), 9);
  assert.is(open.readUInt16BE(5), 0x0201);
  assert.is(open.readUInt32BE(7), 1500);
  const got: WireContext = { token: undefined, certCommonName: undefined, peerAddress: undefined, requireLeader: false };
  const bodyAt = readContext(open, CALL_HEAD_BYTES - 5, open.length, got);
  assert.equal(got, ctx);
  assert.is(open.subarray(bodyAt).toString(), 'req');
  assert.is(call[CALL_HEAD_BYTES - 5], 0, 'a Call without credentials has no context block');
  assert.is(call.subarray(CALL_HEAD_BYTES - 4).toString(), 'put');
  assert.is(msg[0], FrameKind.Message);
  assert.is(msg.subarray(MESSAGE_HEAD_BYTES - 4).toString(), 'msg');
  assert.is(half.length, HALF_CLOSE_BYTES - 4);
  assert.is(credit.length, CREDIT_BYTES - 4);
  assert.is(credit.readUInt32BE(5), 65536);
  assert.equal([cancel[0], cancel[5], cancel.subarray(6).toString()], [FrameKind.Cancel, 1, 'context canceled']);
  assert.equal([end[0], end[5], end.subarray(6).toString()], [FrameKind.End, 8, 'too slow']);
  // Truncated blocks and unknown flags are malformed.
  for (let cut = CALL_HEAD_BYTES - 4; cut < bodyAt; cut++) {
    assert.is(readContext(open, CALL_HEAD_BYTES - 5, cut, got), -1, `cut at ${cut}`);
  }
  const odd = Buffer.from([0x10]);
  assert.is(readContext(odd, 0, 1, got), -1);
  // RequireLeader carries no bytes.
  assert.is(readContext(Buffer.from([CtxFlag.RequireLeader]), 0, 1, got), 1);
  assert.ok(got.requireLeader);
});

test.run();
