// Progress requests that must wait (a watcher of the stream is still catching up) are answered once
// nothing on the stream is behind any more, whichever way the last one stopped being behind: it caught
// up, it was canceled by the client, or its start revision turned out compacted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { Mvcc } from '../../src/mvcc/index.js';
import { ApplyEventHub } from '../../src/events/apply_events.js';
import { applyPut, noLeases } from '../../src/server/apply_kv.js';
import { WATCH_HUB_DEFAULTS, WatchHub, WatchStream, type WatchSink } from '../../src/watch/index.js';
import type { WatchRequest, WatchResponseInit } from '../../src/proto/rpc.js';
import { tempDir } from '../helpers/cleanup.js';
import { ManualScheduler } from '../helpers/manual_scheduler.js';

class Client implements WatchSink {
  got: WatchResponseInit[] = [];
  done = false;
  write(res: WatchResponseInit): boolean {
    this.got.push(res);
    return true;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
}

const create = (key: string, startRev: number): WatchRequest => ({
  create_request: {
    key: Buffer.from(key),
    range_end: new Uint8Array(0),
    start_revision: startRev,
    progress_notify: false,
    filters: [],
    prev_kv: false,
    watch_id: 0,
    fragment: false,
  },
});
const progress: WatchRequest = { progress_request: {} };

/** What a client saw, one line per response. */
function show(got: readonly WatchResponseInit[]): string[] {
  return got.map((r) => {
    const what = r.created
      ? 'created'
      : r.canceled
        ? `canceled compact=${r.compact_revision ?? 0}`
        : r.watch_id === -1
          ? 'progress'
          : 'events';
    return `${what} id=${r.watch_id} rev=${r.header?.revision}${r.events_encoded ? ` n=${r.events_encoded.length}` : ''}`;
  });
}

async function setup() {
  const dir = tempDir('tetcd-watch-progress-');
  const store = await Mvcc.open({ path: path.join(dir, 'db') });
  const sched = new ManualScheduler();
  const events = new ApplyEventHub();
  const hub = new WatchHub(() => store, sched, WATCH_HUB_DEFAULTS);
  events.subscribe(hub);
  let index = 0;
  const put = (k: string): void => {
    const r = applyPut(store, { key: Buffer.from(k), value: Buffer.from('v') }, noLeases);
    events.publish({ kind: 'kv', index: ++index, revision: r.events[0].kv.mod_revision, changes: r.events });
  };
  // Revisions 2..6, compacted at 4.
  for (let i = 0; i < 5; i++) put('k');
  store.compact(4).physicalDone.catch(() => {});
  const client = new Client();
  const ws = new WatchStream(hub, client, { header: (rev) => ({ revision: rev }), fragmentBytes: 1 << 20, watchersPerStreamMax: 100 });
  const close = async (): Promise<void> => {
    ws.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { sched, ws, client, close };
}

test('a progress request behind a catching-up watcher is answered once it caught up', async () => {
  const { sched, ws, client, close } = await setup();
  ws.onRequest(create('k', 5));
  ws.onRequest(progress);
  sched.drain();
  assert.equal(show(client.got), ['created id=0 rev=6', 'events id=0 rev=6 n=2', 'progress id=-1 rev=6']);
  await close();
});

test('a progress request behind a watcher whose start was compacted is answered when it is canceled', async () => {
  const { sched, ws, client, close } = await setup();
  ws.onRequest(create('k', 3));
  ws.onRequest(progress);
  sched.drain();
  assert.equal(show(client.got), ['created id=0 rev=6', 'canceled compact=4 id=0 rev=0', 'progress id=-1 rev=6']);
  await close();
});

test('...also when a synced watcher shares the stream', async () => {
  const { sched, ws, client, close } = await setup();
  ws.onRequest(create('k', 0));
  ws.onRequest(create('k', 2));
  ws.onRequest(progress);
  sched.drain();
  assert.equal(show(client.got), ['created id=0 rev=6', 'created id=1 rev=6', 'canceled compact=4 id=1 rev=0', 'progress id=-1 rev=6']);
  await close();
});

test('a progress request behind a catching-up watcher is answered when the client cancels it', async () => {
  const { sched, ws, client, close } = await setup();
  ws.onRequest(create('k', 5));
  ws.onRequest(progress);
  ws.onRequest({ cancel_request: { watch_id: 0 } });
  sched.drain();
  assert.equal(show(client.got), ['created id=0 rev=6', 'canceled compact=0 id=0 rev=6', 'progress id=-1 rev=6']);
  await close();
});

test.run();
