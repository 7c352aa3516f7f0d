// While a snapshot is on its way to a follower, a local snapshot does not compact the log (the follower needs
// the entries right after the one it gets); once the send is over, the next local snapshot does.
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

async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test.run();
