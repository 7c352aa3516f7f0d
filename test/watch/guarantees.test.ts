// etcd's documented watch guarantees, as a property test: random puts, deletes, txns and compactions on a
// real store, many watchers on random ranges, filters, options and start revisions, streams that stall
// and drain, progress requests at random moments. Every watcher's stream is checked against a replay of
// the store's history: ordered, unique, reliable (no gap), atomic (a txn's events in one response),
// compaction reported, and bookmarkable (after a progress response at R, no event with revision ≤ R).
// The same seeds run a second time with every fan-out through the worker-thread path (fanout_pool.ts) on a
// fake pool that answers late, out of order, or fails.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { Mvcc, type MvccEvent } from '../../src/mvcc/index.js';
import { ApplyEventHub } from '../../src/events/apply_events.js';
import { applyDeleteRange, applyPut, applyTxn, noLeases } from '../../src/server/apply_kv.js';
import { WatchHub, WatchStream, WatchFanout, WATCH_FANOUT_DEFAULTS, type FanoutRunner, type WatchSink } from '../../src/watch/index.js';
import { buildSlots, type FanoutTask } from '../../src/watch/fanout_encode.js';
import { decodeWatchResponse, type WatchResponseInit, type WatchRequest } from '../../src/proto/rpc.js';
import { Event_EventType, decodeEvent } from '../../src/proto/kv.js';
import { tempDir } from '../helpers/cleanup.js';
import { ManualScheduler } from '../helpers/manual_scheduler.js';
import { rng } from '../../tools/lib/rng.js';

const SEEDS = Number(process.env.TETCD_WATCH_SEEDS ?? 12);
const OPS = 400;

/** A client's end of a stream that can stop reading: writes past the soft limit report congestion. */
class TestSink implements WatchSink {
  got: WatchResponseInit[] = [];
  queued = 0;
  stalled = false;
  done = false;
  private drain: (() => void) | undefined;
  constructor(private readonly softMax: number) {}
  write(res: WatchResponseInit): boolean {
    // What the client decodes: encoded events become events.
    const evs = res.events_encoded?.map((b) => decodeEvent(b)) ?? res.events;
    this.got.push({ ...res, events_encoded: undefined, events: evs });
    if (this.stalled) this.queued++;
    return this.queued < this.softMax;
  }
  get writable(): boolean {
    return this.queued < this.softMax;
  }
  /** Pool-built responses: framed back to back, decoded as the client decodes them. */
  writeFramed(framed: Uint8Array, messages: number): boolean {
    const b = Buffer.from(framed.buffer, framed.byteOffset, framed.length);
    let n = 0;
    for (let p = 0; p < b.length; n++) {
      const len = b.readUInt32BE(p + 1);
      const res = decodeWatchResponse(b.subarray(p + 5, p + 5 + len));
      this.got.push({ ...res, events_encoded: undefined });
      p += 5 + len;
    }
    assert.is(n, messages, 'writeFramed is told how many messages it got');
    if (this.stalled) this.queued += n;
    return this.queued < this.softMax;
  }
  drained(): Promise<void> {
    return new Promise((r) => {
      this.drain = r;
    });
  }
  /** The client reads everything it was sent. */
  resume(): void {
    this.stalled = false;
    this.queued = 0;
    const d = this.drain;
    this.drain = undefined;
    d?.();
  }
}

interface WatchSpec {
  id: number;
  key: string;
  end: string | undefined;
  startRev: number;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
}

const enc = (s: string): Uint8Array => Buffer.from(s);
const dec = (b: Uint8Array | undefined): string => Buffer.from(b ?? new Uint8Array(0)).toString();
const keyOf = (r: () => number): string =>
  `k${Math.floor(r() * 12)
    .toString()
    .padStart(2, '0')}`;

function createReq(s: WatchSpec): WatchRequest {
  return {
    create_request: {
      key: enc(s.key),
      range_end: s.end === undefined ? new Uint8Array(0) : s.end === '' ? new Uint8Array([0]) : enc(s.end),
      start_revision: s.startRev,
      progress_notify: false,
      filters: [...(s.noPut ? [0] : []), ...(s.noDelete ? [1] : [])],
      prev_kv: s.prevKv,
      watch_id: s.id,
      fragment: false,
    },
  };
}

function inRange(s: WatchSpec, k: string): boolean {
  if (s.end === undefined) return k === s.key;
  return k >= s.key && (s.end === '' || k < s.end);
}

/** A pool that answers when the seed says: late, out of order, and sometimes not at all (the task fails). */
class ErraticPool implements FanoutRunner {
  readonly threads = 2;
  private pending: Array<{ task: FanoutTask; resolve: (b: ArrayBuffer) => void; reject: (e: unknown) => void }> = [];
  constructor(private readonly r: () => number) {}
  run(task: FanoutTask): Promise<ArrayBuffer> {
    return new Promise((resolve, reject) => this.pending.push({ task, resolve, reject }));
  }
  /** Answers some pending tasks (all of them with `all`), in random order. */
  release(all: boolean): void {
    const keep: typeof this.pending = [];
    for (const p of this.pending) {
      if (!all && this.r() < 0.5) keep.push(p);
      else if (this.r() < 0.05) p.reject(new Error('worker died'));
      else p.resolve(buildSlots(p.task));
    }
    this.pending = keep.sort(() => this.r() - 0.5);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Tasks the erratic pool failed over every seed (the fallback must have run). */
let pooledFailures = 0;

async function runSeed(seed: number, pooled: boolean): Promise<void> {
  const r = rng(seed);
  const pool = pooled ? new ErraticPool(rng(seed + 1000)) : undefined;
  const fanout =
    pool === undefined
      ? undefined
      : new WatchFanout(pool, (rev) => ({ cluster_id: 1n, member_id: 1n, revision: rev, raft_term: 1 }), {
          ...WATCH_FANOUT_DEFAULTS,
          watchersMin: 1,
          taskWatchersMin: 1,
          streamPendingBytesHigh: 2000,
        });
  /** Lets pool answers that arrived reach the streams. */
  const settle = async (all: boolean): Promise<void> => {
    if (pool === undefined) return;
    pool.release(all);
    for (let i = 0; i < 8; i++) await Promise.resolve();
  };
  const dir = tempDir('tetcd-watch-prop-');
  const store = await Mvcc.open({ path: path.join(dir, 'db') });
  const sched = new ManualScheduler();
  /** Runs what is queued; with `fireTimers`, a second passes first (sync retries, progress notification). */
  const turn = (fireTimers: boolean): void => {
    sched.drain();
    if (!fireTimers) return;
    sched.advance(1000);
    sched.drain();
  };
  const events = new ApplyEventHub();
  const hub = new WatchHub(
    () => store,
    sched,
    {
      watchersMax: 10_000,
      syncWatchersPerPassMax: 3,
      syncRevisionsPerPassMax: 7,
      syncIntervalMs: 100,
      progressNotifyIntervalMs: 1000,
    },
    fanout,
  );
  events.subscribe(hub);
  /** Every change ever made, by revision (the replay the streams are checked against). */
  const history = new Map<number, MvccEvent[]>();
  const header = (rev: number) => ({ cluster_id: 1n, member_id: 1n, revision: rev, raft_term: 1 });
  const streams: Array<{ sink: TestSink; ws: WatchStream; specs: WatchSpec[]; progressAt: number[] }> = [];
  for (let i = 0; i < 4; i++) {
    const sink = new TestSink(1 + Math.floor(r() * 4));
    const out = fanout?.wrap(sink) ?? sink;
    const ws = new WatchStream(hub, out, { header, fragmentBytes: 1 << 20, watchersPerStreamMax: 100 });
    fanout?.register(ws, out);
    streams.push({
      sink,
      ws,
      specs: [],
      progressAt: [],
    });
  }
  let index = 0;
  let compacted = 1;
  const apply = (kind: number): void => {
    index++;
    const k = keyOf(r);
    let res: { events: MvccEvent[] };
    if (kind < 0.5) res = applyPut(store, { key: enc(k), value: enc(`v${index}`) }, noLeases, events.wantsPrevKv);
    else if (kind < 0.7)
      res = applyDeleteRange(store, { key: enc('k0'), range_end: enc(`k${Math.floor(r() * 3)}`) }, noLeases, events.wantsPrevKv);
    else {
      const k2 = keyOf(r);
      if (k2 === k) return;
      res = applyTxn(
        store,
        {
          compare: [],
          success: [{ request_put: { key: enc(k), value: enc(`t${index}`) } }, { request_delete_range: { key: enc(k2) } }],
          failure: [],
        },
        { maxTxnOps: 128, maxRangeResponseBytes: 0 },
        noLeases,
        events.wantsPrevKv,
      );
    }
    const changes = res.events;
    if (changes.length === 0) return;
    const rev = changes[0].kv.mod_revision;
    history.set(rev, changes);
    events.publish({ kind: 'kv', index, revision: rev, changes });
  };

  for (let op = 0; op < OPS; op++) {
    const x = r();
    if (x < 0.6) apply(r());
    else if (x < 0.7) {
      const s = streams[Math.floor(r() * streams.length)];
      const key = keyOf(r);
      const shape = r();
      const spec: WatchSpec = {
        id: s.specs.length + 1,
        key,
        end: shape < 0.4 ? undefined : shape < 0.8 ? keyOf(r) + 'z' : '',
        startRev: r() < 0.5 ? 0 : Math.max(1, store.currentRevision - Math.floor(r() * 30) + Math.floor(r() * 3)),
        noPut: r() < 0.15,
        noDelete: r() < 0.15,
        prevKv: r() < 0.5,
      };
      if (spec.end !== undefined && spec.end !== '' && spec.end <= spec.key) spec.end = undefined;
      if (spec.startRev === 0) spec.startRev = store.currentRevision + 1;
      s.specs.push(spec);
      s.ws.onRequest(createReq(spec));
    } else if (x < 0.78) {
      const s = streams[Math.floor(r() * streams.length)];
      s.sink.stalled = true;
    } else if (x < 0.86) {
      streams[Math.floor(r() * streams.length)].sink.resume();
      await Promise.resolve(); // the stream hears of the drain
    } else if (x < 0.93) {
      const s = streams[Math.floor(r() * streams.length)];
      s.ws.onRequest({ progress_request: {} });
    } else if (x < 0.96) {
      store.commit(index, 1);
    } else if (store.currentRevision - compacted > 20) {
      compacted = store.currentRevision - 10;
      store.compact(compacted).physicalDone.catch(() => {});
    }
    turn(r() < 0.2);
    await settle(false);
  }
  for (const s of streams) s.sink.resume();
  for (let i = 0; i < 50 && (hub.unsyncedCount > 0 || (fanout?.tasksInflight ?? 0) > 0); i++) {
    await Promise.resolve();
    turn(true);
    await settle(true);
    for (const s of streams) s.sink.resume();
  }
  assert.is(hub.unsyncedCount, 0, 'every watcher caught up once its stream drained');
  for (const s of streams) s.ws.onRequest({ progress_request: {} });
  turn(true);
  await settle(true);
  await fanout?.idle();

  let delivered = 0;
  for (const [si, s] of streams.entries()) {
    const label = `seed ${seed} stream ${si}`;
    // Bookmarkable: after a progress response at R, no watcher that existed then gets an event ≤ R.
    let progressRev = 0;
    const bookmark = new Map<number, number>();
    const byWatch = new Map<number, WatchResponseInit[]>();
    for (const res of s.sink.got) {
      if (res.watch_id === -1) {
        assert.ok(!res.created, `${label}: no create failed`);
        progressRev = Math.max(progressRev, res.header!.revision!);
        for (const id of bookmark.keys()) bookmark.set(id, progressRev);
        continue;
      }
      if (res.created) bookmark.set(res.watch_id!, 0);
      if (res.canceled) bookmark.delete(res.watch_id!);
      for (const ev of res.events ?? []) {
        const b = bookmark.get(res.watch_id!) ?? 0;
        assert.ok(
          ev.kv!.mod_revision! > b,
          `${label} watch ${res.watch_id}: event at ${ev.kv!.mod_revision} after a progress response at ${b}`,
        );
      }
      let list = byWatch.get(res.watch_id!);
      if (!list) byWatch.set(res.watch_id!, (list = []));
      list.push(res);
    }
    assert.ok(progressRev === store.currentRevision, `${label}: the final progress response carries the current revision`);
    for (const spec of s.specs) {
      const resps = byWatch.get(spec.id) ?? [];
      assert.ok(resps[0]?.created, `${label} watch ${spec.id}: created first`);
      const canceled = resps.find((x) => x.canceled);
      const got: Array<{ rev: number; key: string; type: number; prev: string | undefined }> = [];
      for (const res of resps) {
        const revs = new Set((res.events ?? []).map((e) => e.kv!.mod_revision!));
        for (const rev of revs) {
          // Atomic: every matching change of that revision is in this one response.
          const want = (history.get(rev) ?? []).filter(
            (c) => inRange(spec, dec(c.kv.key)) && !(c.type === Event_EventType.PUT ? spec.noPut : spec.noDelete),
          );
          const inResp = (res.events ?? []).filter((e) => e.kv!.mod_revision === rev);
          assert.is(inResp.length, want.length, `${label} watch ${spec.id}: revision ${rev} split across responses`);
        }
        for (const e of res.events ?? [])
          got.push({
            rev: e.kv!.mod_revision!,
            key: dec(e.kv!.key),
            type: e.type ?? 0,
            prev: e.prev_kv ? dec(e.prev_kv.value) : undefined,
          });
      }
      // Ordered and unique.
      for (let i = 1; i < got.length; i++) assert.ok(got[i].rev >= got[i - 1].rev, `${label} watch ${spec.id}: out of order`);
      // Reliable: exactly the matching changes from the start revision on (up to a compaction cancel).
      const expected: typeof got = [];
      const lastRev = canceled ? (got.at(-1)?.rev ?? spec.startRev - 1) : store.currentRevision;
      for (let rev = spec.startRev; rev <= lastRev; rev++) {
        for (const c of history.get(rev) ?? []) {
          if (!inRange(spec, dec(c.kv.key)) || (c.type === Event_EventType.PUT ? spec.noPut : spec.noDelete)) continue;
          expected.push({ rev, key: dec(c.kv.key), type: c.type, prev: undefined });
        }
      }
      assert.equal(
        got.map(({ rev, key, type }) => ({ rev, key, type })),
        expected.map(({ rev, key, type }) => ({ rev, key, type })),
        `${label} watch ${spec.id} (start ${spec.startRev}, canceled ${!!canceled})`,
      );
      if (canceled) {
        assert.ok(canceled.compact_revision! >= (got.at(-1)?.rev ?? 0), `${label} watch ${spec.id}: canceled with the compacted revision`);
        assert.ok(canceled.compact_revision! >= spec.startRev, `${label} watch ${spec.id}: only a compacted start is canceled`);
      }
      if (!spec.prevKv)
        assert.ok(
          got.every((g) => g.prev === undefined),
          `${label} watch ${spec.id}: prev_kv only when asked`,
        );
      delivered += got.length;
    }
  }
  assert.ok(delivered > 50, `seed ${seed}: only ${delivered} events delivered; the scenario does not exercise watchers`);
  if (fanout !== undefined) {
    assert.ok(fanout.stats.pooledEntries > 20, `seed ${seed}: the pool path ran (${JSON.stringify(fanout.stats)})`);
    pooledFailures += fanout.stats.failedTasks;
  }
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

test(`watch guarantees hold over ${SEEDS} seeds of random writes, watchers, stalls, progress and compaction`, async () => {
  const base = Number(process.env.TETCD_WATCH_SEED ?? 1);
  for (let s = 0; s < SEEDS; s++) await runSeed(base + s, false);
});

test(`the same over ${SEEDS} seeds with every fan-out through a pool that answers late, out of order or fails`, async () => {
  const base = Number(process.env.TETCD_WATCH_SEED ?? 1);
  for (let s = 0; s < SEEDS; s++) await runSeed(base + s, true);
  assert.ok(pooledFailures > 0, 'some tasks failed and were sent inline');
});

test.run();
