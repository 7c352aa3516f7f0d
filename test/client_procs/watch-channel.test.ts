// Watch streams on the client-process channel, member side in one process: a real WatchHub over a real
// store behind a MemberChannel, and a test client process that speaks the channel's frames itself.
// - N watchers of one prefix and one put cost the channel one WatchEvents frame with the event in it once
//   (without the batch: N Message frames, each carrying the event again).
// - A client process that grants no credit (its gRPC client never reads) does not grow the member's
//   memory: the stream's queue stays under its limit and the watchers fall back to catch-up; once credit
//   flows again every watcher gets every revision exactly once, in order.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MemberChannel, MEMBER_CHANNEL_DEFAULTS } from '../../src/client_procs/member_channel.js';
import { MEMBER_STREAM_DEFAULTS, type MemberStreamLimits } from '../../src/client_procs/member_stream.js';
import { ContextSizer, FrameKind, FrameReader, FrameWriter, type FrameSink, type WireContext } from '../../src/client_procs/channel.js';
import { readWatchBatch } from '../../src/client_procs/watch_batch.js';
import { Mvcc } from '../../src/mvcc/index.js';
import { ApplyEventHub } from '../../src/events/apply_events.js';
import { applyPut, noLeases } from '../../src/server/apply_kv.js';
import { WATCH_HUB_DEFAULTS, WatchHub, WatchStream, type WatchSink } from '../../src/watch/index.js';
import { nodeScheduler } from '../../src/scheduler.js';
import type { MemberApi } from '../../src/server/member_api.js';
import { authOff } from '../helpers/auth_off.js';
import { decodeWatchResponse, encodeWatchRequest, type WatchResponse } from '../../src/proto/rpc.js';
import { newLogger } from '../../src/log.js';
import { tempDir } from '../helpers/cleanup.js';

const WATCH_METHOD = 0x0201;
const log = newLogger('fatal');
const HTTP = { healthy: async () => true, metricsText: () => '' };

/** The test's client process: opens streams, sends requests, collects every frame the member sends. */
class FakeClientProcess implements FrameSink {
  readonly writer: FrameWriter;
  /** Frames received by kind. */
  readonly framesByKind = new Map<number, number>();
  bytesReceived = 0;
  /** Responses received per stream, decoded, in order. */
  readonly responses = new Map<number, WatchResponse[]>();
  /** Grant credit back for every response (a gRPC client that reads). */
  reading = true;
  private readonly ungranted = new Map<number, number>();

  constructor(readonly socket: net.Socket) {
    const reader = new FrameReader(this);
    this.writer = new FrameWriter(socket);
    socket.on('data', (b: Buffer) => reader.push(b));
  }

  open(id: number): void {
    const ctx: WireContext = { token: undefined, certCommonName: undefined, peerAddress: '127.0.0.1:1', requireLeader: false };
    const sizer = new ContextSizer();
    sizer.size(ctx);
    this.writer.writeCallWithContext(FrameKind.Open, id, WATCH_METHOD, 0, ctx, sizer, new Uint8Array(0));
  }

  watchPrefix(stream: number, prefix: string, opts: { prevKv?: boolean } = {}): void {
    const key = Buffer.from(prefix);
    const end = Buffer.from(key);
    end[end.length - 1]++;
    this.writer.writeMessage(stream, encodeWatchRequest({ create_request: { key, range_end: end, prev_kv: opts.prevKv ?? false } }));
  }

  frames(kind: number): number {
    return this.framesByKind.get(kind) ?? 0;
  }

  resetCounts(): void {
    this.framesByKind.clear();
    this.bytesReceived = 0;
  }

  /** Grants every stream the response bytes it took. */
  grantAll(): void {
    for (const [id, n] of this.ungranted) if (n > 0) this.writer.writeCredit(id, n);
    this.ungranted.clear();
  }

  onFrame(buf: Buffer, start: number, end: number): void {
    const kind = buf[start];
    this.framesByKind.set(kind, this.frames(kind) + 1);
    this.bytesReceived += 4 + end - start;
    if (kind === FrameKind.Message) this.response(buf.readUInt32BE(start + 1), buf.subarray(start + 5, end));
    else if (kind === FrameKind.WatchEvents) {
      const bad = readWatchBatch(buf, start, end, (id, framed, messages) => {
        // A run of one stream's responses, back to back.
        let p = 0;
        for (let i = 0; i < messages; i++) {
          const n = 5 + ((framed[p + 1] << 24) | (framed[p + 2] << 16) | (framed[p + 3] << 8) | framed[p + 4]);
          this.response(id, framed.subarray(p, p + n));
          p += n;
        }
      });
      if (bad !== undefined) throw new Error(bad);
    } else if (kind === FrameKind.End) throw new Error(`stream ended: ${buf.toString('utf8', start + 6, end)}`);
  }

  onBadFrame(reason: string): void {
    throw new Error(reason);
  }

  private response(id: number, framed: Uint8Array): void {
    let list = this.responses.get(id);
    if (list === undefined) this.responses.set(id, (list = []));
    list.push(decodeWatchResponse(framed.subarray(5)));
    this.ungranted.set(id, (this.ungranted.get(id) ?? 0) + framed.length);
    if (this.reading) this.grantAll();
  }
}

async function rig(opts: { watchBatches?: boolean; streamLimits?: MemberStreamLimits } = {}) {
  const dir = tempDir('tetcd-watch-channel-');
  const store = await Mvcc.open({ path: path.join(dir, 'db') });
  const events = new ApplyEventHub();
  const hub = new WatchHub(() => store, nodeScheduler, { ...WATCH_HUB_DEFAULTS, syncIntervalMs: 10 });
  events.subscribe(hub);
  let index = 0;
  const put = (k: string, value = 'v'): void => {
    const r = applyPut(store, { key: Buffer.from(k), value: Buffer.from(value) }, noLeases);
    events.publish({ kind: 'kv', index: ++index, revision: r.events[0].kv.mod_revision, changes: r.events });
  };
  const fake = {
    limits: { maxTxnOps: 128, maxRequestBytes: 1.5 * 1024 * 1024, quotaBackendBytes: 0 },
    hasLeader: true,
    onLeaderLost: () => () => {},
    auth: authOff(),
    watch: (sink: WatchSink) =>
      new WatchStream(hub, sink, {
        header: (revision) => ({ cluster_id: 0x1234n, member_id: 0x5678n, revision, raft_term: 2 }),
        fragmentBytes: 1 << 20,
        watchersPerStreamMax: 10_000,
      }),
  } as unknown as MemberApi;
  const sockPath = path.join(dir, 'channel.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(sockPath, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const clientSide = net.connect(sockPath);
  const memberSide = await accepted;
  const channel = new MemberChannel(memberSide, fake, HTTP, log, MEMBER_CHANNEL_DEFAULTS, {
    streamLimits: opts.streamLimits ?? MEMBER_STREAM_DEFAULTS,
    watchBatches: opts.watchBatches,
  });
  const client = new FakeClientProcess(clientSide);
  const close = async (): Promise<void> => {
    channel.destroy();
    clientSide.destroy();
    server.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { store, hub, put, channel, client, close };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const eventCount = (c: FakeClientProcess): number => {
  let n = 0;
  for (const list of c.responses.values()) for (const r of list) n += r.events.length;
  return n;
};

async function fanout(watchBatches: boolean): Promise<{ frames: Map<number, number>; bytes: number; watchers: number }> {
  const STREAMS = 20;
  const PER_STREAM = 100;
  const r = await rig({ watchBatches });
  try {
    for (let s = 1; s <= STREAMS; s++) {
      r.client.open(s);
      for (let i = 0; i < PER_STREAM; i++) r.client.watchPrefix(s, 'fan/');
    }
    await waitFor(
      'created responses',
      () => r.hub.size === STREAMS * PER_STREAM && r.client.frames(FrameKind.Message) === STREAMS * PER_STREAM,
    );
    r.client.resetCounts();
    r.put('fan/k', 'x'.repeat(100));
    await waitFor('events', () => eventCount(r.client) === STREAMS * PER_STREAM);
    await new Promise((res) => setTimeout(res, 50));
    return { frames: new Map(r.client.framesByKind), bytes: r.client.bytesReceived, watchers: STREAMS * PER_STREAM };
  } finally {
    await r.close();
  }
}

test('N watchers of one prefix and one put: one WatchEvents frame, the event in it once (O(1) frames, not O(N))', async () => {
  const batched = await fanout(true);
  assert.equal([...batched.frames], [[FrameKind.WatchEvents, 1]], 'one frame for every watcher');
  // A route per watcher (stream ID, watch ID) and the 100-byte value once; a Message each would be ~150 bytes.
  assert.ok(batched.bytes < batched.watchers * 16 + 1000, `${batched.bytes} bytes for ${batched.watchers} watchers`);
  const unbatched = await fanout(false);
  assert.equal([...unbatched.frames], [[FrameKind.Message, unbatched.watchers]], 'without batches: a Message per watcher');
  assert.ok(unbatched.bytes > batched.watchers * 100);
});

test('a client process that never grants credit: the member queues a bounded amount and the watchers catch up later, losing nothing', async () => {
  const limits: MemberStreamLimits = { ...MEMBER_STREAM_DEFAULTS, streamQueueBytesHigh: 64 * 1024 };
  const r = await rig({ streamLimits: limits });
  const WATCHERS = 10;
  const PUTS = 400;
  const value = 'v'.repeat(4096);
  try {
    r.client.open(1);
    for (let i = 0; i < WATCHERS; i++) r.client.watchPrefix(1, 'slow/');
    await waitFor('created', () => r.hub.size === WATCHERS);
    const firstRev = r.store.currentRevision + 1;
    r.client.reading = false;
    let queuedMax = 0;
    for (let i = 0; i < PUTS; i++) {
      r.put(`slow/${i % 7}`, value);
      if (i % 20 === 0) await new Promise((res) => setImmediate(res));
      queuedMax = Math.max(queuedMax, r.channel.streamQueuedBytes);
    }
    await new Promise((res) => setTimeout(res, 100));
    // 400 puts × 10 watchers × 4 KiB is 16 MiB of responses; the member holds its queue limit at most.
    queuedMax = Math.max(queuedMax, r.channel.streamQueuedBytes);
    assert.ok(queuedMax <= limits.streamQueueBytesHigh + 64 * 1024, `member queued ${queuedMax} bytes`);
    assert.is(r.hub.unsyncedCount, WATCHERS, 'every watcher fell back to catch-up');
    assert.ok(r.client.bytesReceived < 2 * 256 * 1024 + 64 * 1024, `sent ${r.client.bytesReceived} bytes past the credit`);
    // The gRPC client reads again: credit flows, the watchers catch up from history.
    r.client.reading = true;
    r.client.grantAll();
    await waitFor('every event', () => eventCount(r.client) === WATCHERS * PUTS, 20_000);
    const revs = new Map<number, number[]>();
    for (const res of r.client.responses.get(1)!) {
      if (res.events.length === 0) continue;
      let l = revs.get(res.watch_id);
      if (l === undefined) revs.set(res.watch_id, (l = []));
      for (const e of res.events) l.push(e.kv!.mod_revision);
    }
    assert.is(revs.size, WATCHERS);
    const want = Array.from({ length: PUTS }, (_, i) => firstRev + i);
    for (const [id, l] of revs) assert.equal(l, want, `watcher ${id}`);
    assert.is(r.hub.unsyncedCount, 0);
  } finally {
    await r.close();
  }
});

test.run();
