// While a snapshot is on its way to a follower, a local snapshot does not compact the log (the follower needs
// the entries right after the one it gets); once the send is over, the log after the sent snapshot's index stays
// until the follower's match index passes it (it is installing), then the next local snapshot compacts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Snapshots, type SnapshotsDeps } from '../../src/server/snapshots.js';
import { MemoryStorage, MessageType, SnapshotStatus, type ConfState, type Message } from '../../src/raft/index.js';
import { tempDir } from '../helpers/cleanup.js';
import { newLogger } from '../../src/log.js';

test('no log compaction while a snapshot is being sent', async () => {
  const storage = new MemoryStorage();
  const entries = Array.from({ length: 100 }, (_, i) => ({ term: 1, index: i + 1, type: 0, data: new Uint8Array(0) }));
  storage.append(entries);
  let finishSend: () => void = () => {};
  const sent = new Promise<void>((r) => {
    finishSend = r;
  });
  const reports: number[] = [];
  const flushed = { flushed: Promise.resolve() };
  const deps = {
    snapDir: tempDir(),
    log: { saveSnapshot: async () => {}, releaseTo: async () => {} },
    storage,
    backend: { commit: () => flushed, store: { backup: async () => {} } },
    peers: { sendSnapshot: () => sent },
    membership: { get: () => ({ peerURLs: ['http://127.0.0.1:1'] }) },
    logger: newLogger('error', () => {}),
    snapshotCount: 10,
    catchupEntries: 5,
    reportSnapshot: (_to: bigint, status: number) => reports.push(status),
    wake: () => {},
    applied: () => ({
      index: 100,
      term: 1,
      confState: { voters: [1n, 2n], learners: [], voters_outgoing: [], learners_next: [], auto_leave: false },
    }),
    fail: (err: unknown) => {
      throw err;
    },
  } as unknown as SnapshotsDeps;
  const snaps = new Snapshots(deps, 0);
  const cs: ConfState = { voters: [1n, 2n], learners: [], voters_outgoing: [], learners_next: [], auto_leave: false };
  const msgSnap: Message = {
    type: MessageType.MsgSnap,
    to: 2n,
    from: 1n,
    term: 1,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: { data: new Uint8Array(0), metadata: { index: 90, term: 1, conf_state: cs } },
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
  snaps.send(msgSnap);
  snaps.maybeMake(50, 1, cs);
  await until(() => snaps.snapshotIndex === 50);
  assert.is(storage.firstIndex(), 1, 'compacted while a snapshot was being sent');
  finishSend();
  await until(() => reports.length === 1);
  assert.equal(reports, [SnapshotStatus.Finish]);
  snaps.maybeMake(100, 1, cs);
  await until(() => snaps.snapshotIndex === 100);
  assert.is(storage.firstIndex(), 96);
});

test('after the send, the entries after the sent index stay until the follower has installed it', async () => {
  const storage = new MemoryStorage();
  storage.append(Array.from({ length: 200 }, (_, i) => ({ term: 1, index: i + 1, type: 0, data: new Uint8Array(0) })));
  let applied = 60;
  let match = 0;
  const reports: number[] = [];
  const cs: ConfState = { voters: [1n, 2n], learners: [], voters_outgoing: [], learners_next: [], auto_leave: false };
  const deps = {
    snapDir: tempDir(),
    log: { saveSnapshot: async () => {}, releaseTo: async () => {} },
    storage,
    backend: { commit: () => ({ flushed: Promise.resolve() }), store: { backup: async () => {} } },
    peers: { sendSnapshot: () => Promise.resolve() },
    membership: { get: () => ({ peerURLs: ['http://127.0.0.1:1'] }) },
    logger: newLogger('error', () => {}),
    snapshotCount: 10,
    catchupEntries: 5,
    reportSnapshot: (_to: bigint, status: number) => reports.push(status),
    wake: () => {},
    applied: () => ({ index: applied, term: 1, confState: cs }),
    fail: (err: unknown) => {
      throw err;
    },
    matchIndex: (id: bigint) => (id === 2n ? match : undefined),
  } as unknown as SnapshotsDeps;
  const snaps = new Snapshots(deps, 0);
  snaps.send({
    type: MessageType.MsgSnap,
    to: 2n,
    from: 1n,
    term: 1,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: { data: new Uint8Array(0), metadata: { index: 60, term: 1, conf_state: cs } },
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  });
  await until(() => reports.length === 1);
  applied = 150;
  // The follower is still installing the snapshot at 60: a local snapshot at 150 keeps 61 on.
  snaps.maybeMake(150, 1, cs);
  await until(() => snaps.snapshotIndex === 150);
  assert.is(storage.firstIndex(), 61, 'trimmed past the snapshot a follower is installing');
  // Installed: its match index passed 60, so the next local snapshot compacts as usual.
  match = 60;
  snaps.maybeMake(200, 1, cs);
  await until(() => snaps.snapshotIndex === 200);
  assert.is(storage.firstIndex(), 196);
});

async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test.run();
