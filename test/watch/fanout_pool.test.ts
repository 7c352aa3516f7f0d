// The watch fan-out on worker threads (src/watch/fanout_pool.ts): a stream's bytes are exactly those of the
// inline path, whatever the pool does — slow (a later inline response never overtakes a pool-built one),
// at its limits (entries past them go inline, in order), failing or dying (the inline way, nothing lost).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { Mvcc } from '../../src/mvcc/index.js';
import { ApplyEventHub } from '../../src/events/apply_events.js';
import { applyDeleteRange, applyPut, applyTxn, noLeases } from '../../src/server/apply_kv.js';
import { WatchHub, WatchStream, WatchFanout, WATCH_FANOUT_DEFAULTS, startFanoutThreads, type FanoutRunner } from '../../src/watch/index.js';
import { buildSlots, type FanoutTask } from '../../src/watch/fanout_encode.js';
import type { FramedWatchSink } from '../../src/watch/ordered_sink.js';
import { ProtoWriter } from '../../src/proto/wire.js';
import {
  decodeWatchResponse,
  sizeWatchResponse,
  writeWatchResponse,
  type WatchRequest,
  type WatchResponseInit,
} from '../../src/proto/rpc.js';
import { tempDir } from '../helpers/cleanup.js';
import { ManualScheduler } from '../helpers/manual_scheduler.js';

const enc = (s: string): Uint8Array => Buffer.from(s);
const header = (rev: number) => ({ cluster_id: 0x1234n, member_id: 0xabcdn, revision: rev, raft_term: 3 });

/** A gRPC call's writer as bytes on the wire: write() frames as ServerCall.write does; writeFramed() takes them as they are. */
class WireSink implements FramedWatchSink {
  readonly chunks: Buffer[] = [];
  done = false;
  writable = true;
  framedWrites = 0;
  write(res: WatchResponseInit): boolean {
    const size = sizeWatchResponse(res);
    const w = new ProtoWriter(5 + size);
    w.buf[0] = 0;
    Buffer.from(w.buf.buffer, w.buf.byteOffset).writeUInt32BE(size, 1);
    w.pos = 5;
    writeWatchResponse(res, w);
    this.chunks.push(Buffer.from(w.finish()));
    return this.writable;
  }
  writeFramed(framed: Uint8Array, _messages: number): boolean {
    this.framedWrites++;
    this.chunks.push(Buffer.from(framed));
    return this.writable;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  /** The responses as the client decodes them. */
  responses(): ReturnType<typeof decodeWatchResponse>[] {
    const b = this.bytes;
    const out: ReturnType<typeof decodeWatchResponse>[] = [];
    for (let p = 0; p < b.length; ) {
      const len = b.readUInt32BE(p + 1);
      out.push(decodeWatchResponse(b.subarray(p + 5, p + 5 + len)));
      p += 5 + len;
    }
    return out;
  }
}

/** A pool that answers only when the test says so (and in the order it says), or fails. */
class SlowRunner implements FanoutRunner {
  readonly threads: number;
  pending: Array<{ task: FanoutTask; resolve: (b: ArrayBuffer) => void; reject: (e: unknown) => void }> = [];
  /** Checked at every task: what the fan-out holds in flight (bytes) never passes its limit. */
  onRun: () => void = () => {};
  constructor(threads = 2) {
    this.threads = threads;
  }
  run(task: FanoutTask, transfer: boolean): Promise<ArrayBuffer> {
    this.onRun();
    // A transferred input is the task's own copy: detach-like, the main thread must not rely on it.
    const t = transfer ? { ...task, input: (task.input as ArrayBuffer).slice(0) } : task;
    return new Promise((resolve, reject) => this.pending.push({ task: t, resolve, reject }));
  }
  /** Answers the pending tasks, last first (the worst order for a FIFO). */
  releaseAll(fail = false): void {
    const p = this.pending.reverse();
    this.pending = [];
    for (const x of p) {
      if (fail) x.reject(new Error('worker died'));
      else x.resolve(buildSlots(x.task));
    }
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

interface Setup {
  store: Mvcc;
  hub: WatchHub;
  sched: ManualScheduler;
  sinks: WireSink[];
  streams: WatchStream[];
  fanout: WatchFanout | undefined;
  apply(i: number): void;
  close(): Promise<void>;
}

/** A store, a hub with `streams` streams (through `fanout` if given) and a scripted writer. */
async function setup(nStreams: number, fanout: WatchFanout | undefined): Promise<Setup> {
  const dir = tempDir('tetcd-fanout-');
  const store = await Mvcc.open({ path: path.join(dir, 'db') });
  const sched = new ManualScheduler();
  const events = new ApplyEventHub();
  const hub = new WatchHub(() => store, sched, undefined, fanout);
  events.subscribe(hub);
  const sinks: WireSink[] = [];
  const streams: WatchStream[] = [];
  for (let i = 0; i < nStreams; i++) {
    const sink = new WireSink();
    const out = fanout?.wrap(sink) ?? sink;
    const ws = new WatchStream(hub, out, { header, fragmentBytes: 1 << 20, watchersPerStreamMax: 1000 });
    fanout?.register(ws, out);
    sinks.push(sink);
    streams.push(ws);
  }
  let index = 0;
  const publish = (changes: { events: import('../../src/mvcc/index.js').MvccEvent[] }): void => {
    if (changes.events.length === 0) return;
    events.publish({ kind: 'kv', index: ++index, revision: changes.events[0].kv.mod_revision, changes: changes.events });
  };
  // A fixed script: single puts, a txn of three changes, deletes (with prev_kv for the watchers that want it).
  const apply = (i: number): void => {
    const k = `k${i % 7}`;
    if (i % 5 === 3) {
      publish(
        applyTxn(
          store,
          {
            compare: [],
            success: [
              { request_put: { key: enc(k), value: enc(`t${i}`) } },
              { request_put: { key: enc(`k${(i + 1) % 7}`), value: enc(`u${i}`) } },
              { request_delete_range: { key: enc(`k${(i + 2) % 7}`) } },
            ],
            failure: [],
          },
          { maxTxnOps: 128, maxRangeResponseBytes: 0 },
          noLeases,
          events.wantsPrevKv,
        ),
      );
    } else if (i % 5 === 4) {
      publish(applyDeleteRange(store, { key: enc('k0'), range_end: enc('k3') }, noLeases, events.wantsPrevKv));
    } else {
      publish(applyPut(store, { key: enc(k), value: Buffer.alloc(10 + i, 'v') }, noLeases, events.wantsPrevKv));
    }
  };
  return {
    store,
    hub,
    sched,
    sinks,
    streams,
    fanout,
    apply,
    close: async () => {
      await fanout?.close();
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function create(
  id: number,
  key: string,
  end: string | undefined,
  opts: { prevKv?: boolean; noPut?: boolean; fragment?: boolean } = {},
): WatchRequest {
  return {
    create_request: {
      key: enc(key),
      range_end: end === undefined ? new Uint8Array(0) : end === '' ? new Uint8Array([0]) : enc(end),
      start_revision: 0,
      progress_notify: false,
      filters: opts.noPut ? [0] : [],
      prev_kv: opts.prevKv ?? false,
      watch_id: id,
      fragment: opts.fragment ?? false,
    },
  };
}

/** Watchers of every shape over 3 streams: prefixes, single keys, prev_kv, filters, ID 0 and a large ID. */
function addWatchers(s: Setup): void {
  const [a, b, c] = s.streams;
  a.onRequest(create(0, 'k', 'l'));
  a.onRequest(create(5, 'k1', undefined, { prevKv: true }));
  a.onRequest(create(2 ** 40, 'k', '', { noPut: true }));
  b.onRequest(create(1, 'k0', 'k4', { prevKv: true }));
  b.onRequest(create(2, 'k2', undefined));
  b.onRequest(create(3, 'k', 'l', { fragment: true }));
  for (let i = 0; i < 20; i++) c.onRequest(create(100 + i, `k${i % 7}`, i % 3 === 0 ? 'l' : undefined, { prevKv: i % 2 === 0 }));
}

/** The same script inline and through `fanout`; returns both runs' bytes per stream. */
async function bothWays(
  fanout: WatchFanout,
  drive: (s: Setup, afterEach: () => Promise<void>) => Promise<void>,
  afterEach: (pooled: Setup) => Promise<void> = async () => {},
  settle: () => Promise<void> = () => fanout.idle(),
): Promise<{ inline: Buffer[]; pooled: Buffer[]; pooledSetup: Setup }> {
  const ref = await setup(3, undefined);
  addWatchers(ref);
  await drive(ref, async () => {});
  const inline = ref.sinks.map((x) => x.bytes);
  await ref.close();
  const p = await setup(3, fanout);
  addWatchers(p);
  await drive(p, () => afterEach(p));
  await settle();
  return { inline, pooled: p.sinks.map((x) => x.bytes), pooledSetup: p };
}

const script = async (s: Setup, afterEach: () => Promise<void>): Promise<void> => {
  for (let i = 0; i < 30; i++) {
    s.apply(i);
    if (i === 10) s.streams[1].onRequest({ progress_request: {} });
    if (i === 20) s.streams[2].onRequest({ cancel_request: { watch_id: 104 } });
    s.sched.drain();
    await afterEach();
  }
};

test('pool-built responses are byte-identical to the inline ones (a fake pool answering later, and 2 real threads)', async () => {
  const slow = new SlowRunner();
  const fake = new WatchFanout(slow, header, { ...WATCH_FANOUT_DEFAULTS, watchersMin: 1, taskWatchersMin: 2 });
  const r1 = await bothWays(fake, script, async () => {
    slow.releaseAll();
    await flush();
  });
  assert.ok(fake.stats.pooledEntries >= 25, `entries through the pool: ${fake.stats.pooledEntries}`);
  assert.ok(fake.stats.tasks > fake.stats.pooledEntries, 'some entries were split over both threads');
  for (let i = 0; i < 3; i++) assert.ok(r1.pooled[i].equals(r1.inline[i]), `stream ${i}: same bytes`);
  assert.ok(r1.inline[2].length > 10_000, 'the script sends something');
  assert.ok(
    r1.pooledSetup.sinks.every((x) => x.framedWrites > 0),
    'every stream got pool-built bytes',
  );
  await r1.pooledSetup.close();

  const real = new WatchFanout(startFanoutThreads(2), header, { ...WATCH_FANOUT_DEFAULTS, watchersMin: 1, taskWatchersMin: 2 });
  const r2 = await bothWays(real, script, () => real.idle());
  assert.ok(real.stats.pooledEntries >= 25 && real.stats.failedTasks === 0, JSON.stringify(real.stats));
  for (let i = 0; i < 3; i++) assert.ok(r2.pooled[i].equals(r2.inline[i]), `stream ${i}: same bytes (threads)`);
  await r2.pooledSetup.close();
});

test('the same bytes with each task given its own transferred copy of the plan', async () => {
  const real = new WatchFanout(startFanoutThreads(2), header, {
    ...WATCH_FANOUT_DEFAULTS,
    watchersMin: 1,
    taskWatchersMin: 2,
    input: 'transfer',
  });
  const r = await bothWays(real, script, () => real.idle());
  assert.ok(real.stats.pooledEntries >= 25 && real.stats.failedTasks === 0, JSON.stringify(real.stats));
  for (let i = 0; i < 3; i++) assert.ok(r.pooled[i].equals(r.inline[i]), `stream ${i}: same bytes (transfer)`);
  await r.pooledSetup.close();
});

test('nothing overtakes a pool-built response: later entries, a progress response and a cancel wait behind it', async () => {
  const slow = new SlowRunner();
  // Entries reaching 3 watchers go to the pool; the one-watcher entries stay inline.
  const fanout = new WatchFanout(slow, header, { ...WATCH_FANOUT_DEFAULTS, watchersMin: 3 });
  const s = await setup(1, fanout);
  const ws = s.streams[0];
  ws.onRequest(create(1, 'a', undefined));
  ws.onRequest(create(2, 'a', 'b'));
  ws.onRequest(create(3, 'a', 'az'));
  ws.onRequest(create(4, 'z', undefined));
  const sink = s.sinks[0];
  const before = sink.chunks.length;
  let index = 0;
  const put = (k: string): void => {
    const r = applyPut(s.store, { key: enc(k), value: enc('v') }, noLeases, false);
    s.hub.deliver({ kind: 'kv', index: ++index, revision: r.events[0].kv.mod_revision, changes: r.events });
  };
  put('a'); // rev 2: 3 watchers → pool, held
  put('z'); // rev 3: 1 watcher → inline, must wait
  ws.onRequest({ progress_request: {} });
  ws.onRequest({ cancel_request: { watch_id: 4 } });
  put('a'); // rev 4: pool again, held
  s.sched.drain();
  assert.is(sink.chunks.length, before, 'nothing went out while the first pool task is out');
  assert.is(slow.pending.length, 2);
  // The second entry's task answers first: still nothing may go.
  const [first, second] = slow.pending;
  second.resolve(buildSlots(second.task));
  await flush();
  assert.is(sink.chunks.length, before, 'a later pool result waits for the earlier one');
  first.resolve(buildSlots(first.task));
  await flush();
  const got = sink.responses().slice(4);
  assert.equal(
    got.map((r) => [r.watch_id, r.header!.revision, r.events.length, r.canceled]),
    [
      [1, 2, 1, false],
      [2, 2, 1, false],
      [3, 2, 1, false],
      [4, 3, 1, false],
      [-1, 3, 0, false], // the progress response: every event up to 3 is ahead of it
      [4, 3, 0, true],
      [1, 4, 1, false],
      [2, 4, 1, false],
      [3, 4, 1, false],
    ],
  );
  await s.close();
});

test('bytes in flight stay under the limit: entries past it are sent inline, in order', async () => {
  const slow = new SlowRunner();
  const limit = 4000;
  const fanout = new WatchFanout(slow, header, {
    ...WATCH_FANOUT_DEFAULTS,
    watchersMin: 1,
    inflightBytesMax: limit,
    taskWatchersMin: 1000,
  });
  let maxSeen = 0;
  slow.onRun = () => {
    maxSeen = Math.max(maxSeen, fanout.inflightBytes);
  };
  const releaseAll = async (): Promise<void> => {
    slow.releaseAll();
    await flush();
  };
  const r = await bothWays(
    fanout,
    script,
    async () => {
      // Answer only every third entry: the limit is hit in between.
      if (slow.pending.length >= 3) await releaseAll();
    },
    releaseAll,
  );
  const pooled = r.pooledSetup.sinks.map((x) => x.bytes);
  assert.ok(fanout.stats.limitedEntries > 0, `the limit was hit: ${JSON.stringify(fanout.stats)}`);
  assert.ok(fanout.stats.pooledEntries > 0, 'and entries under it went to the pool');
  assert.ok(maxSeen <= limit, `in flight ${maxSeen} <= ${limit}`);
  for (let i = 0; i < 3; i++) assert.ok(pooled[i].equals(r.inline[i]), `stream ${i}: same bytes`);
  await r.pooledSetup.close();

  // Tasks in flight are bounded the same way.
  const slow2 = new SlowRunner();
  const fanout2 = new WatchFanout(slow2, header, { ...WATCH_FANOUT_DEFAULTS, watchersMin: 1, tasksInflightMax: 2, taskWatchersMin: 1000 });
  let tasksMax = 0;
  slow2.onRun = () => {
    tasksMax = Math.max(tasksMax, fanout2.tasksInflight);
  };
  const r2 = await bothWays(
    fanout2,
    script,
    async () => {
      if (slow2.pending.length >= 4) slow2.releaseAll();
      await flush();
    },
    async () => {
      slow2.releaseAll();
      await flush();
    },
  );
  assert.ok(tasksMax <= 2, `tasks in flight ${tasksMax} <= 2`);
  assert.ok(fanout2.stats.limitedEntries > 0);
  const pooled2 = r2.pooledSetup.sinks.map((x) => x.bytes);
  for (let i = 0; i < 3; i++) assert.ok(pooled2[i].equals(r2.inline[i]), `stream ${i}: same bytes (task limit)`);
  await r2.pooledSetup.close();
});

test('a task the pool fails is sent inline in its place: same bytes, nothing lost', async () => {
  const slow = new SlowRunner();
  const failures: unknown[] = [];
  const fanout = new WatchFanout(slow, header, { ...WATCH_FANOUT_DEFAULTS, watchersMin: 1, taskWatchersMin: 2 }, (e) => failures.push(e));
  let n = 0;
  const r = await bothWays(fanout, script, async () => {
    slow.releaseAll(n++ % 2 === 0); // every other entry's tasks fail
    await flush();
  });
  assert.ok(fanout.stats.failedTasks > 0 && failures.length === fanout.stats.failedTasks, JSON.stringify(fanout.stats));
  for (let i = 0; i < 3; i++) assert.ok(r.pooled[i].equals(r.inline[i]), `stream ${i}: same bytes`);
  await r.pooledSetup.close();
});

test('a worker thread that dies mid-task: its entries go out inline, every event delivered', async () => {
  const crash = new URL('./fanout_crash_worker.js', import.meta.url).href;
  const fanout = new WatchFanout(startFanoutThreads(2, { filename: crash }), header, { ...WATCH_FANOUT_DEFAULTS, watchersMin: 1 });
  const r = await bothWays(fanout, script, () => fanout.idle());
  assert.ok(fanout.stats.failedTasks > 0 && fanout.stats.failedTasks === fanout.stats.tasks, JSON.stringify(fanout.stats));
  for (let i = 0; i < 3; i++) assert.ok(r.pooled[i].equals(r.inline[i]), `stream ${i}: same bytes`);
  await r.pooledSetup.close();
});

test('a worker thread stuck in a task: the task is aborted after its timeout and sent inline', async () => {
  const stuck = new URL('./fanout_stuck_worker.js', import.meta.url).href;
  const fanout = new WatchFanout(startFanoutThreads(2, { filename: stuck, taskTimeoutMs: 100 }), header, {
    ...WATCH_FANOUT_DEFAULTS,
    watchersMin: 1,
  });
  let entries = 0;
  const short = async (s: Setup, afterEach: () => Promise<void>): Promise<void> => {
    for (let i = 0; i < 4; i++) {
      s.apply(i);
      s.sched.drain();
      entries++;
      await afterEach();
    }
  };
  const started = Date.now();
  const r = await bothWays(fanout, short, () => fanout.idle());
  assert.ok(fanout.stats.failedTasks > 0 && fanout.stats.failedTasks === fanout.stats.tasks, JSON.stringify(fanout.stats));
  assert.ok(Date.now() - started < 10_000, 'the timeout, not the stuck thread, decided');
  for (let i = 0; i < 3; i++) assert.ok(r.pooled[i].equals(r.inline[i]), `stream ${i}: same bytes`);
  assert.ok(entries > 0);
  await r.pooledSetup.close();
});

test('a stream without framed writes (client processes) stays inline beside pooled ones', async () => {
  const slow = new SlowRunner();
  const fanout = new WatchFanout(slow, header, { ...WATCH_FANOUT_DEFAULTS, watchersMin: 1 });
  const s = await setup(1, fanout);
  // A plain sink, as a client process's stream is: wrap() leaves it alone.
  const plain: WatchResponseInit[] = [];
  const sink = { done: false, write: (res: WatchResponseInit) => plain.push(res) > 0, drained: () => Promise.resolve() };
  assert.is(fanout.wrap(sink), sink);
  const ws = new WatchStream(s.hub, sink, { header, fragmentBytes: 1 << 20, watchersPerStreamMax: 10 });
  fanout.register(ws, sink);
  ws.onRequest(create(7, 'k', 'l'));
  s.streams[0].onRequest(create(8, 'k', 'l'));
  s.apply(1);
  assert.is(plain.length, 2, 'created, then the event, inline at once');
  assert.is(slow.pending.length, 1, 'the other stream went to the pool');
  slow.releaseAll();
  await flush();
  assert.is(s.sinks[0].responses().length, 2);
  await s.close();
});

test.run();
