// Watch's limits, each hit on purpose: watchers per stream, watchers per member, and a client that stops
// reading (its stream takes nothing past the response that filled it, whatever is written meanwhile, and
// gets every event once it reads again).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { Mvcc } from '../../src/mvcc/index.js';
import { ApplyEventHub } from '../../src/events/apply_events.js';
import { applyPut, noLeases } from '../../src/server/apply_kv.js';
import { WATCH_HUB_DEFAULTS, WatchErrors, WatchHub, WatchStream, type WatchSink } from '../../src/watch/index.js';
import type { WatchResponseInit } from '../../src/proto/rpc.js';
import { tempDir } from '../helpers/cleanup.js';
import { ManualScheduler } from '../helpers/manual_scheduler.js';

/** A client that reads until told to stop; past `softMax` queued responses its writes report a full queue. */
class Client implements WatchSink {
  got: WatchResponseInit[] = [];
  reading = true;
  queued = 0;
  done = false;
  private wake: (() => void) | undefined;
  constructor(readonly softMax = 2) {}
  write(res: WatchResponseInit): boolean {
    this.got.push(res);
    if (!this.reading) this.queued++;
    return this.queued < this.softMax;
  }
  drained(): Promise<void> {
    return new Promise((r) => {
      this.wake = r;
    });
  }
  read(): void {
    this.reading = true;
    this.queued = 0;
    this.wake?.();
  }
}

async function setup(limits = WATCH_HUB_DEFAULTS) {
  const dir = tempDir('tetcd-watch-limits-');
  const store = await Mvcc.open({ path: path.join(dir, 'db') });
  const sched = new ManualScheduler();
  /** Runs what is queued, and the hub's retry timer once. */
  const turn = (): void => {
    sched.drain();
    sched.advance(WATCH_HUB_DEFAULTS.syncIntervalMs);
    sched.drain();
  };
  const events = new ApplyEventHub();
  const hub = new WatchHub(() => store, sched, limits);
  events.subscribe(hub);
  let index = 0;
  const put = (k: string): void => {
    const r = applyPut(store, { key: Buffer.from(k), value: Buffer.from('v') }, noLeases);
    events.publish({ kind: 'kv', index: ++index, revision: r.events[0].kv.mod_revision, changes: r.events });
  };
  const stream = (c: Client, perStream = 100): WatchStream =>
    new WatchStream(hub, c, { header: (rev) => ({ revision: rev }), fragmentBytes: 1 << 20, watchersPerStreamMax: perStream });
  const close = async (): Promise<void> => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { store, sched, turn, hub, put, stream, close };
}

const create = (key: string) => ({
  create_request: {
    key: Buffer.from(key),
    range_end: new Uint8Array(0),
    start_revision: 0,
    progress_notify: false,
    filters: [],
    prev_kv: false,
    watch_id: 0,
    fragment: false,
  },
});

test('a stream past its watcher limit refuses the next create with etcd-style cancel, others unaffected', async () => {
  const s = await setup();
  try {
    const c = new Client(1000);
    const ws = s.stream(c, 3);
    for (let i = 0; i < 4; i++) ws.onRequest(create(`k${i}`));
    const refused = c.got.filter((r) => r.canceled);
    assert.is(refused.length, 1);
    assert.equal([refused[0].watch_id, refused[0].created, refused[0].cancel_reason], [-1, true, WatchErrors.tooManyWatchers]);
    assert.is(ws.watcherCount, 3);
    const other = new Client(1000);
    s.stream(other, 3).onRequest(create('k0'));
    assert.ok(other.got[0].created && !other.got[0].canceled, 'another stream still creates');
  } finally {
    await s.close();
  }
});

test('the member past its watcher limit refuses a create; a cancel makes room', async () => {
  const s = await setup({ ...WATCH_HUB_DEFAULTS, watchersMax: 2 });
  try {
    const c = new Client(1000);
    const ws = s.stream(c);
    for (let i = 0; i < 3; i++) ws.onRequest(create(`k${i}`));
    assert.is(s.hub.size, 2);
    const last = c.got.at(-1)!;
    assert.equal([last.canceled, last.cancel_reason], [true, WatchErrors.tooManyWatchers]);
    ws.onRequest({ cancel_request: { watch_id: 0 } });
    ws.onRequest(create('k9'));
    assert.is(s.hub.size, 2);
    assert.ok(!c.got.at(-1)!.canceled, 'room after a cancel');
  } finally {
    await s.close();
  }
});

test('a client that stops reading gets nothing past the full queue, then every event once it reads', async () => {
  const s = await setup();
  try {
    const c = new Client(2);
    s.stream(c).onRequest(create('k'));
    c.reading = false;
    for (let i = 0; i < 500; i++) s.put('k');
    s.turn();
    const sentWhileStalled = c.got.filter((r) => (r.events_encoded?.length ?? 0) > 0).length;
    assert.is(sentWhileStalled, 2, 'the stream took two responses, then was congested');
    c.read();
    await Promise.resolve();
    s.turn();
    const revs = c.got.flatMap((r) => (r.events_encoded ?? []).map(() => r.header!.revision!));
    const events = c.got.reduce((n, r) => n + (r.events_encoded?.length ?? 0), 0);
    assert.is(events, 500, 'every put arrived exactly once');
    assert.ok(revs.at(-1) === s.store.currentRevision);
  } finally {
    await s.close();
  }
});

test.run();
