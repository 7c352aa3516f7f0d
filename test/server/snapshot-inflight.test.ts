// While a snapshot is on its way to a follower, a local snapshot does not compact the log (the follower needs
// the entries right after the one it gets); once the send is over, the log after the sent snapshot's index stays
// until the follower's match index passes it (it is installing), then the next local snapshot compacts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Snapshots, type SnapshotsDeps } from '../../src/server/snapshots.js';
import { MemoryStorage, MessageType, SnapshotStatus, type ConfState, type Message } from '../../src/raft/index.js';
import { tempDir } from '../helpers/cleanup.js';
import { newLogger } from '../../src/log.js';

const cs: ConfState = { voters: [1n, 2n], learners: [], voters_outgoing: [], learners_next: [], auto_leave: false };

/** A leader's Snapshots over a log of `entries` entries, with the send, the applied index and follower 2's match index the test's. */
function leader(
  entries: number,
  o: { sent: () => Promise<void>; applied: () => number; match?: () => number },
): { snaps: Snapshots; storage: MemoryStorage; reports: number[] } {
  const storage = new MemoryStorage();
  storage.append(Array.from({ length: entries }, (_, i) => ({ term: 1, index: i + 1, type: 0, data: new Uint8Array(0) })));
  const reports: number[] = [];
  const deps = {
    snapDir: tempDir(),
    log: { saveSnapshot: async () => {}, releaseTo: async () => {} },
    storage,
    backend: { commit: () => ({ flushed: Promise.resolve() }), store: { backup: async () => {} } },
    peers: { sendSnapshot: o.sent },
    membership: { get: () => ({ peerURLs: ['http://127.0.0.1:1'] }) },
    logger: newLogger('error', () => {}),
    snapshotCount: 10,
    catchupEntries: 5,
    reportSnapshot: (_to: bigint, status: number) => reports.push(status),
    wake: () => {},
    applied: () => ({ index: o.applied(), term: 1, confState: cs }),
    fail: (err: unknown) => {
      throw err;
    },
    ...(o.match !== undefined ? { matchIndex: (id: bigint) => (id === 2n ? o.match!() : undefined) } : {}),
  } as unknown as SnapshotsDeps;
  return { snaps: new Snapshots(deps, 0), storage, reports };
}

/** Raft's MsgSnap to follower 2. */
function msgSnap(index: number): Message {
  return {
    type: MessageType.MsgSnap,
    to: 2n,
    from: 1n,
    term: 1,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: { data: new Uint8Array(0), metadata: { index, term: 1, conf_state: cs } },
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
}

test('no log compaction while a snapshot is being sent', async () => {
  let finishSend: () => void = () => {};
  const sent = new Promise<void>((r) => {
    finishSend = r;
  });
  const { snaps, storage, reports } = leader(100, { sent: () => sent, applied: () => 100 });
  snaps.send(msgSnap(90));
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
  let applied = 60;
  let match = 0;
  const { snaps, storage, reports } = leader(200, { sent: () => Promise.resolve(), applied: () => applied, match: () => match });
  snaps.send(msgSnap(60));
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
