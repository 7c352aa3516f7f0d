// A snapshot's metadata file (member/snap/*.snap) is written before its marker in the WAL. A member
// stopped between the two (seen in the long linearizability run: SIGTERM during a local snapshot) used to
// refuse to start ("wal: snapshot {…} not found: no such snapshot marker in the log"). It must start from
// the newest snapshot the WAL has a marker for, replay the WAL from there, lose nothing, and remove the
// orphaned file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/cleanup.js';
import { KvClient } from '../helpers/grpc-kv.js';
import { startTetcd, type Member } from '../helpers/member.js';
import { loadSnaps, saveSnap } from '../../src/server/snap_files.js';

const KEYS = 600;
const SNAPSHOT_COUNT = 100;
const TIMEOUT_MS = 10_000;

test('a snapshot file without its WAL marker (stopped between the two): the member starts from the previous one, nothing lost', async () => {
  const root = tempDir('tetcd-snap-orphan-');
  const dataDir = join(root, 'data');
  const snapDir = join(dataDir, 'member', 'snap');
  let m: Member | undefined;
  let kv: KvClient | undefined;
  try {
    m = await startTetcd({ dataDir, extraArgs: ['--snapshot-count', String(SNAPSHOT_COUNT)] });
    kv = new KvClient(m.endpoint);
    for (let i = 0; i < KEYS; i++) await kv.put(Buffer.from(`k/${i}`), Buffer.from(`v${i}`), TIMEOUT_MS);
    kv.close();
    kv = undefined;
    await m.stop();
    const before = loadSnaps(snapDir);
    assert.ok(before.length > 0, 'the member took snapshots');
    const newest = before[0];

    // What a stop right after saveSnap and before the WAL marker leaves: a newer file the WAL never heard of.
    const orphan = { ...newest, index: newest.index + 37 };
    await saveSnap(snapDir, orphan, 10);
    assert.is(loadSnaps(snapDir)[0].index, orphan.index, 'the orphan is now the newest snapshot file');

    await m.start();
    kv = new KvClient(m.endpoint);
    const all = await kv.range(Buffer.from('k/'), Buffer.from('k0'), TIMEOUT_MS);
    assert.is(Number(all.count), KEYS, 'every acknowledged put is there');
    for (const i of [0, KEYS / 2, KEYS - 1]) {
      const r = await kv.range(Buffer.from(`k/${i}`), null, TIMEOUT_MS);
      assert.is(Buffer.from(r.kvs[0]!.value).toString(), `v${i}`);
    }
    // It goes on writing and snapshotting after the fallback.
    for (let i = 0; i < SNAPSHOT_COUNT * 2; i++) await kv.put(Buffer.from(`after/${i}`), Buffer.from('x'), TIMEOUT_MS);
    const names = readdirSync(snapDir).filter((n) => n.endsWith('.snap'));
    assert.not.ok(
      names.some((n) => n.endsWith(`${orphan.index.toString(16).padStart(16, '0')}.snap`)),
      `the orphaned file was removed (${names.join(', ')})`,
    );
    assert.ok(existsSync(join(snapDir, 'db')), 'the backend is in place');
  } finally {
    kv?.close();
    await m?.stop();
  }
});

test('the first snapshot file without its WAL marker: the member replays its whole WAL, nothing lost', async () => {
  const root = tempDir('tetcd-snap-orphan-first-');
  const dataDir = join(root, 'data');
  const snapDir = join(dataDir, 'member', 'snap');
  let m: Member | undefined;
  let kv: KvClient | undefined;
  try {
    // No snapshot taken yet (the count is far away): what a crash right after the first saveSnap leaves.
    m = await startTetcd({ dataDir });
    kv = new KvClient(m.endpoint);
    for (let i = 0; i < 50; i++) await kv.put(Buffer.from(`k/${i}`), Buffer.from(`v${i}`), TIMEOUT_MS);
    kv.close();
    kv = undefined;
    await m.stop();
    assert.is(loadSnaps(snapDir).length, 0);
    await saveSnap(snapDir, { index: 40, term: 2, voters: [1n], learners: [] }, 10);
    await m.start();
    kv = new KvClient(m.endpoint);
    const all = await kv.range(Buffer.from('k/'), Buffer.from('k0'), TIMEOUT_MS);
    assert.is(Number(all.count), 50, 'every acknowledged put is there');
    assert.is(loadSnaps(snapDir).length, 0, 'the orphaned file was removed');
  } finally {
    kv?.close();
    await m?.stop();
  }
});

test.run();
