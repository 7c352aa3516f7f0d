// The WatchEvents frame (src/client_procs/watch_batch.ts): every response the client process rebuilds from
// it is byte for byte what the member would have sent as a Message (events, progress, fragments, negative
// watch IDs, several headers), in the order added; each event is in the frame once however many watchers
// get it; a frame cut short or with a bad index is refused with nothing delivered; and the writer seals
// the open batch before any later frame, so it keeps its place in the channel's order.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { FrameKind, FrameReader, FrameWriter, type FrameSink } from '../../src/client_procs/channel.js';
import { WatchBatch, isRoutable, readWatchBatch } from '../../src/client_procs/watch_batch.js';
import { encodeWatchResponse, sizeWatchResponse, type ResponseHeaderInit, type WatchResponseInit } from '../../src/proto/rpc.js';
import { encodeEvent } from '../../src/proto/kv.js';

const hdr = (revision: number): ResponseHeaderInit => ({
  cluster_id: 0xcdf818194e3a8c32n,
  member_id: 0x8e9e05c52164694dn,
  revision,
  raft_term: 2,
});
const ev = (key: string, rev: number, value = 'v'): Uint8Array =>
  encodeEvent({ type: 0, kv: { key: Buffer.from(key), value: Buffer.from(value), create_revision: rev, mod_revision: rev, version: 1 } });

/** gRPC framing of what the member's Message would carry. */
function framed(m: WatchResponseInit): Buffer {
  const body = encodeWatchResponse(m);
  const b = Buffer.alloc(5 + body.length);
  b.writeUInt32BE(body.length, 1);
  b.set(body, 5);
  return b;
}

class Collect implements FrameSink {
  frames: Buffer[] = [];
  onFrame(buf: Buffer, start: number, end: number): void {
    this.frames.push(Buffer.from(buf.subarray(start, end)));
  }
  onBadFrame(reason: string): void {
    throw new Error(reason);
  }
}

async function written(fill: (w: FrameWriter) => void): Promise<Buffer[]> {
  const stream = new PassThrough();
  const c = new Collect();
  const r = new FrameReader(c);
  stream.on('data', (b: Buffer) => r.push(b));
  fill(new FrameWriter(stream));
  await new Promise((res) => setImmediate(() => setImmediate(res)));
  return c.frames;
}

/** The responses of a frame, one gRPC-framed message each, with the stream each went to. */
function rebuild(frame: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  const bad = readWatchBatch(frame, 0, frame.length, (id, f, messages) => {
    // A run of one stream's responses lies back to back in `f`.
    let p = 0;
    for (let i = 0; i < messages; i++) {
      const n = 5 + Buffer.from(f.buffer, f.byteOffset, f.byteLength).readUInt32BE(p + 1);
      out.push([id, Buffer.from(f.subarray(p, p + n))]);
      p += n;
    }
    assert.is(p, f.length, 'a run is exactly its messages');
  });
  assert.is(bad, undefined);
  return out;
}

const e1 = ev('a/1', 5);
const e2 = ev('a/2', 5);
const e3 = ev('a/3', 6, 'x'.repeat(300));
const RESPONSES: Array<[number, WatchResponseInit]> = [
  [1, { header: hdr(5), watch_id: 0, events_encoded: [e1, e2] }],
  [1, { header: hdr(5), watch_id: 1, events_encoded: [e1, e2] }],
  [2, { header: hdr(5), watch_id: 7, events_encoded: [e1, e2] }],
  [2, { header: hdr(5), watch_id: 8, events_encoded: [e2] }],
  [3, { header: hdr(6), watch_id: 0, fragment: true, events_encoded: [e3] }],
  [3, { header: hdr(6), watch_id: 0, events_encoded: [e1] }],
  [1, { header: hdr(6), watch_id: -1 }],
  [2, { header: hdr(6), watch_id: 2 ** 40 }],
];

test('every rebuilt response is the bytes the member would have sent, in order, each event in the frame once', async () => {
  const frames = await written((w) => {
    const b = new WatchBatch();
    w.openWith(b);
    // The size the member charges against the stream's credit is the response's encoded size.
    for (const [id, m] of RESPONSES) assert.is(b.add(id, m), sizeWatchResponse(m));
  });
  assert.is(frames.length, 1);
  assert.is(frames[0][0], FrameKind.WatchEvents);
  const got = rebuild(frames[0]);
  assert.equal(
    got.map(([id, f]) => [id, f.toString('hex')]),
    RESPONSES.map(([id, m]) => [id, framed(m).toString('hex')]),
  );
  // Each event's bytes appear once, however many responses carry it.
  for (const e of [e1, e2, e3]) assert.is(frames[0].indexOf(Buffer.from(e)), frames[0].lastIndexOf(Buffer.from(e)));
});

test('many watchers of the same events cost a route each, not the events again', async () => {
  const big = ev('p/k', 9, 'y'.repeat(1000));
  const frames = await written((w) => {
    const b = new WatchBatch();
    w.openWith(b);
    for (let i = 0; i < 1000; i++) b.add(1 + (i % 10), { header: hdr(9), watch_id: i, events_encoded: [big] });
  });
  assert.is(frames.length, 1);
  assert.ok(frames[0].length < big.length + 1000 * 16, `frame of ${frames[0].length} bytes`);
  assert.is(rebuild(frames[0]).length, 1000);
});

test('consecutive responses of one stream reach it in one write; a change of stream starts the next', async () => {
  const streams = [1, 1, 1, 1, 1, 2, 2, 2, 1, 1];
  const frames = await written((w) => {
    const b = new WatchBatch();
    w.openWith(b);
    streams.forEach((id, i) => b.add(id, { header: hdr(5), watch_id: i, events_encoded: i < 7 ? [e1] : [e1, e2] }));
  });
  const calls: Array<[number, number]> = [];
  readWatchBatch(frames[0], 0, frames[0].length, (id, _f, messages) => calls.push([id, messages]));
  assert.equal(calls, [
    [1, 5],
    [2, 3],
    [1, 2],
  ]);
  assert.equal(
    rebuild(frames[0]).map(([id]) => id),
    streams,
  );
});

test('only event and progress responses are routable; created and canceled go as Messages', () => {
  assert.ok(isRoutable({ header: hdr(1), watch_id: 3, events_encoded: [e1] }));
  assert.ok(isRoutable({ header: hdr(1), watch_id: -1 }));
  assert.not.ok(isRoutable({ header: hdr(1), watch_id: 3, created: true }));
  assert.not.ok(isRoutable({ header: hdr(1), watch_id: 3, canceled: true, compact_revision: 2 }));
  assert.not.ok(isRoutable({ header: hdr(1), watch_id: -1, created: true, canceled: true, cancel_reason: 'x' }));
});

test('the open batch is sealed before any later frame, and the next batch comes after it', async () => {
  const frames = await written((w) => {
    const b = new WatchBatch();
    w.openWith(b);
    b.add(1, RESPONSES[0][1]);
    w.writeMessage(1, Buffer.from('created'));
    assert.ok(b.sealed);
    const b2 = new WatchBatch();
    w.openWith(b2);
    b2.add(1, RESPONSES[1][1]);
  });
  assert.equal(
    frames.map((f) => f[0]),
    [FrameKind.WatchEvents, FrameKind.Message, FrameKind.WatchEvents],
  );
});

test('a WatchEvents frame cut short anywhere, or naming what it does not hold, is refused with nothing delivered', async () => {
  const [frame] = await written((w) => {
    const b = new WatchBatch();
    w.openWith(b);
    for (const [id, m] of RESPONSES) b.add(id, m);
  });
  let delivered = 0;
  const count = (): void => {
    delivered++;
  };
  for (let cut = 1; cut < frame.length; cut++) {
    assert.type(readWatchBatch(frame, 0, cut, count), 'string', `cut at ${cut}`);
  }
  assert.type(readWatchBatch(Buffer.concat([frame, Buffer.from([0])]), 0, frame.length + 1, count), 'string');
  const badCount = Buffer.from(frame);
  badCount.writeUInt32BE(99, 1);
  assert.type(readWatchBatch(badCount, 0, badCount.length, count), 'string');
  assert.is(delivered, 0);
});

test('frame kinds keep their numbers (both ends of the channel must agree)', () => {
  assert.equal(FrameKind, {
    Call: 1,
    Reply: 2,
    Fail: 3,
    Open: 4,
    Message: 5,
    HalfClose: 6,
    Cancel: 7,
    End: 8,
    Credit: 9,
    WatchEvents: 10,
  });
});

test.run();
