import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameReader, FrameError, encodeFrame, FrameType } from '../../src/transport/frame.js';

test('frames split at every byte boundary come back whole and in order', () => {
  const frames = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(1000, 7), Buffer.from('hello world')];
  const stream = Buffer.concat(frames.map((p, i) => encodeFrame(i % 2 ? FrameType.Raft : FrameType.Ping, p)));
  for (const step of [1, 2, 3, 5, 7, 64, stream.length]) {
    const r = new FrameReader(1 << 20);
    const got: Buffer[] = [];
    for (let off = 0; off < stream.length; off += step) {
      r.push(stream.subarray(off, off + step));
      for (let f = r.next(); f; f = r.next()) got.push(Buffer.from(f.payload));
    }
    assert.equal(got.length, frames.length, `step ${step}`);
    got.forEach((g, i) => assert.ok(g.equals(frames[i]), `step ${step} frame ${i}`));
    assert.is(r.pendingBytes, 0);
  }
});

test('a frame over the limit is refused before it is buffered', () => {
  const r = new FrameReader(10);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1000, 0);
  head[4] = FrameType.Raft;
  r.push(head);
  assert.throws(
    () => r.next(),
    (e: unknown) => e instanceof FrameError && /exceeds the limit/.test((e as Error).message),
  );
});

test('a zero-length frame header is an error', () => {
  const r = new FrameReader(10);
  r.push(Buffer.from([0, 0, 0, 0, 2]));
  assert.throws(
    () => r.next(),
    (e: unknown) => e instanceof FrameError,
  );
});

test.run();
