// The Wal API: create/open round trips, Raft's overwrite rule, hard state across rotation and release, snapshot
// matching, wake-ups, typed errors (a real ENOSPC on a tiny tmpfs) and the poisoned state.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Wal, WalError, WalQueueFullError, WalSnapshotNotFoundError } from '../../src/wal/index.js';
import type { WalOptions } from '../../src/wal/index.js';
import { LogModel, cleanup, makeEntry, tempDir } from './helpers.js';
import { mountTmpfs, tmpfsGate, unmountTmpfs } from '../helpers/tmpfs.js';

const meta = new TextEncoder().encode('member-1/cluster-9');

test('create, save, reopen returns metadata, entries and hard state', async () => {
  const root = tempDir('basic');
  const dir = join(root, 'wal');
  try {
    assert.not.ok(Wal.exists(dir));
    const wal = await Wal.create(dir, meta);
    assert.ok(Wal.exists(dir));
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 50; i++) saves.push(wal.save({ term: 2, vote: 7n, commit: i - 1 }, [makeEntry(i, 2)]));
    await Promise.all(saves);
    const st = wal.stats;
    assert.is(st.appends, 50);
    assert.is(st.handovers, 1, 'saves of one event-loop turn go to the writer in one call');
    assert.ok(st.fsyncs >= 1 && st.fsyncs <= 50, `fsyncs ${st.fsyncs}`);
    assert.is(st.records, 100);
    await wal.close();
    const r = await Wal.open(dir, { index: 0, term: 0 });
    assert.equal(Buffer.from(r.metadata), Buffer.from(meta));
    assert.equal(
      r.entries,
      Array.from({ length: 50 }, (_, i) => makeEntry(i + 1, 2)),
    );
    assert.equal(r.hardState, { term: 2, vote: 7n, commit: 49 });
    assert.equal(r.snapshots, [{ index: 0, term: 0 }]);
    await r.wal.close();
  } finally {
    cleanup(root);
  }
});

test('3000 strictly sequential saves never miss a wake-up', async () => {
  // With fsync off the writer publishes within microseconds, so a publish often lands between one save
  // resolving and the next one starting to wait: the case a lost wake-up would hang on.
  const root = tempDir('seq');
  try {
    const wal = await Wal.create(join(root, 'wal'), meta, { noFsync: true });
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('a save never resolved')), 10_000);
    });
    const run = (async () => {
      for (let i = 1; i <= 3000; i++) await wal.save(undefined, [makeEntry(i, 1, 8)]);
    })();
    await Promise.race([run, hang]);
    clearTimeout(timer);
    assert.is(wal.stats.appends, 3000);
    await wal.close();
  } finally {
    cleanup(root);
  }
});

test('5000 saves in one turn then close: every save resolves (across resolve-budget turns) before close does', async () => {
  const root = tempDir('many');
  try {
    const wal = await Wal.create(join(root, 'wal'), meta);
    let resolved = 0;
    const all: Promise<void>[] = [];
    for (let i = 1; i <= 5000; i++)
      all.push(
        wal.save(undefined, [makeEntry(i, 1, 16)]).then(() => {
          resolved++;
        }),
      );
    await wal.close();
    assert.is(resolved, 5000, 'close resolved before the saves it waited for');
    await Promise.all(all);
    const r = await Wal.open(join(root, 'wal'), { index: 0, term: 0 });
    assert.is(r.entries.length, 5000);
    await r.wal.close();
  } finally {
    cleanup(root);
  }
});

test('idle spin: sequential saves with a spinning writer land in order, and close does not wait for the spin', async () => {
  const root = tempDir('spin');
  const dir = join(root, 'wal');
  try {
    const wal = await Wal.create(dir, meta, { idleSpinUs: 100_000 });
    for (let i = 1; i <= 200; i++) await wal.save({ term: 1, vote: 1n, commit: i - 1 }, [makeEntry(i, 1)]);
    assert.is(wal.stats.fsyncs, 200, 'one sync per lone save');
    const t0 = performance.now();
    await wal.close();
    // The writer is inside a 100 ms spin now; it notices the close at the end of it at the latest.
    assert.ok(performance.now() - t0 < 1000, `close took ${(performance.now() - t0).toFixed(0)} ms`);
    const r = await Wal.open(dir, { index: 0, term: 0 });
    assert.equal(
      r.entries,
      Array.from({ length: 200 }, (_, i) => makeEntry(i + 1, 1)),
    );
    await r.wal.close();
    let err: unknown;
    try {
      await Wal.create(join(root, 'bad'), meta, { idleSpinUs: 2_000_000 });
    } catch (e) {
      err = e;
    }
    assert.instance(err, WalError);
    assert.match(String(err), /idleSpinUs/);
  } finally {
    cleanup(root);
  }
});

test('create refuses an existing WAL; exists is false for an empty directory', async () => {
  const root = tempDir('exists');
  try {
    const dir = join(root, 'wal');
    mkdirSync(dir);
    assert.not.ok(Wal.exists(dir));
    const wal = await Wal.create(dir, meta);
    await wal.close();
    try {
      await Wal.create(dir, meta);
      assert.unreachable('second create must fail');
    } catch (e) {
      assert.instance(e, WalError);
      assert.is((e as WalError).code, 'EEXIST');
    }
  } finally {
    cleanup(root);
  }
});

test('overwrite rule: a later entry with a lower index replaces it and drops what followed', async () => {
  const root = tempDir('overwrite');
  const dir = join(root, 'wal');
  try {
    const wal = await Wal.create(dir, meta, { segmentBytes: 4096 });
    const model = new LogModel();
    const steps: Array<[number, number, number]> = [
      [1, 10, 1],
      [6, 12, 2],
      [11, 20, 2],
      [9, 9, 3],
      [10, 15, 3],
      [3, 4, 4],
    ];
    for (const [from, to, term] of steps) {
      const ents = [];
      for (let i = from; i <= to; i++) ents.push(makeEntry(i, term, 100 + i));
      const hs = { term, vote: BigInt(term), commit: from - 1 };
      model.save(hs, ents);
      await wal.save(hs, ents);
    }
    assert.ok(wal.stats.segmentCuts >= 1, 'the log must span segments');
    await wal.close();
    const r = await Wal.open(dir, { index: 0, term: 0 }, { segmentBytes: 4096 });
    assert.equal(r.entries, model.entries);
    assert.equal(
      r.entries.map((e) => e.index),
      [1, 2, 3, 4],
    );
    assert.equal(r.hardState, model.hardState);
    await r.wal.close();
  } finally {
    cleanup(root);
  }
});

test('snapshots: open from a marker returns only later entries; unknown marker or term mismatch is refused', async () => {
  const root = tempDir('snap');
  const dir = join(root, 'wal');
  try {
    const wal = await Wal.create(dir, meta);
    await wal.save(
      { term: 1, vote: 1n, commit: 20 },
      Array.from({ length: 30 }, (_, i) => makeEntry(i + 1, 1)),
    );
    await wal.saveSnapshot({ index: 20, term: 1 });
    await wal.close();
    const r = await Wal.open(dir, { index: 20, term: 1 });
    assert.equal(
      r.entries.map((e) => e.index),
      Array.from({ length: 10 }, (_, i) => i + 21),
    );
    assert.equal(r.snapshots, [
      { index: 0, term: 0 },
      { index: 20, term: 1 },
    ]);
    await r.wal.close();
    for (const bad of [
      { index: 21, term: 1 },
      { index: 20, term: 2 },
    ]) {
      try {
        await Wal.open(dir, bad);
        assert.unreachable('must refuse');
      } catch (e) {
        assert.instance(e, WalSnapshotNotFoundError);
      }
    }
  } finally {
    cleanup(root);
  }
});

test('rotation and release: old segments go, hard state and metadata survive in the kept ones', async () => {
  const root = tempDir('release');
  const dir = join(root, 'wal');
  const opts: WalOptions = { segmentBytes: 8192, batchBytesMax: 2048 };
  try {
    const wal = await Wal.create(dir, meta, opts);
    await wal.save({ term: 3, vote: 2n, commit: 0 }, []); // the only hard state: must outlive its segment
    let index = 0;
    for (let round = 0; round < 40; round++) {
      const ents = [];
      for (let k = 0; k < 5; k++) ents.push(makeEntry(++index, 3, 200));
      await wal.save(undefined, ents);
    }
    await wal.saveSnapshot({ index: 150, term: 3 });
    const before = readdirSync(dir).filter((n) => n.endsWith('.wal')).length;
    assert.ok(before >= 4, `expected several segments, got ${before}`);
    await wal.releaseTo(170); // newest marker <= 170 is 150
    const after = readdirSync(dir)
      .filter((n) => n.endsWith('.wal'))
      .sort();
    assert.ok(after.length < before, 'release removed nothing');
    // Recovery from the marker still works and sees the hard state written before the deleted segments.
    await wal.save(undefined, [makeEntry(++index, 3, 200)]);
    await wal.close();
    const r = await Wal.open(dir, { index: 150, term: 3 }, opts);
    assert.equal(r.hardState, { term: 3, vote: 2n, commit: 0 });
    assert.equal(
      r.entries.map((e) => e.index),
      Array.from({ length: index - 150 }, (_, i) => i + 151),
    );
    assert.equal(Buffer.from(r.metadata), Buffer.from(meta));
    await r.wal.close();
    // Reading from the beginning is no longer possible: that part was released.
    try {
      await Wal.open(dir, { index: 0, term: 0 }, opts);
      assert.unreachable('released log must not open from 0');
    } catch (e) {
      assert.instance(e, WalSnapshotNotFoundError);
    }
  } finally {
    cleanup(root);
  }
});

test('a save larger than a segment goes whole into a fresh one, and empty saves wait for earlier ones', async () => {
  const root = tempDir('big');
  const dir = join(root, 'wal');
  try {
    const wal = await Wal.create(dir, meta, { segmentBytes: 4096 });
    const big = Array.from({ length: 20 }, (_, i) => makeEntry(i + 1, 1, 1000));
    const p1 = wal.save(undefined, big);
    let firstDone = false;
    void p1.then(() => {
      firstDone = true;
    });
    await wal.save(undefined, []);
    assert.ok(firstDone, 'an empty save resolved before the earlier save');
    await wal.close();
    const r = await Wal.open(dir, { index: 0, term: 0 }, { segmentBytes: 4096 });
    assert.equal(r.entries, big);
    await r.wal.close();
  } finally {
    cleanup(root);
  }
});

test('closed WAL rejects with ECLOSED; bad arguments throw RangeError', async () => {
  const root = tempDir('closed');
  try {
    const wal = await Wal.create(join(root, 'wal'), meta);
    assert.throws(() => wal.save(undefined, [makeEntry(-1, 1)]), RangeError);
    await wal.close();
    try {
      await wal.save(undefined, [makeEntry(1, 1)]);
      assert.unreachable('closed wal accepted a save');
    } catch (e) {
      assert.instance(e, WalError);
      assert.is((e as WalError).code, 'ECLOSED');
    }
  } finally {
    cleanup(root);
  }
});

test('queue limit: a save beyond queueBytesMax is refused with EQUEUEFULL and the WAL keeps working', async () => {
  const root = tempDir('queue');
  const dir = join(root, 'wal');
  try {
    const wal = await Wal.create(dir, meta, { queueBytesMax: 4096, noFsync: true });
    try {
      await wal.save(undefined, [makeEntry(1, 1, 5000)]);
      assert.unreachable('oversized save accepted');
    } catch (e) {
      assert.instance(e, WalQueueFullError);
      assert.is((e as WalError).code, 'EQUEUEFULL');
    }
    assert.is(wal.error, undefined);
    await wal.save(undefined, [makeEntry(1, 1, 100)]);
    await wal.close();
    const r = await Wal.open(dir, { index: 0, term: 0 });
    assert.equal(r.entries, [makeEntry(1, 1, 100)]);
    await r.wal.close();
    try {
      await Wal.open(dir, { index: 0, term: 0 }, { segmentBytes: 10 });
      assert.unreachable('bad options accepted');
    } catch (e) {
      assert.is((e as WalError).code, 'EINVAL');
    }
  } finally {
    cleanup(root);
  }
});

test('queue limit: turns queued behind a slow fsync fill the queue past its cap; the next is refused, nothing acked is lost', async () => {
  // The writer sleeps after every fdatasync, so the turns saved meanwhile pile up in its queue: about one KiB
  // each against a cap of 8 KiB. The first turn that would pass the cap is refused whole with a typed error;
  // every turn before it is acknowledged and recovered, and the WAL takes the refused entry again afterwards.
  const QUEUE_BYTES_MAX = 8 * 1024;
  const ENTRY_DATA_BYTES = 1000;
  const TURNS_MAX = 100;
  const root = tempDir('queue-full');
  const dir = join(root, 'wal');
  try {
    const wal = await Wal.create(dir, meta, { queueBytesMax: QUEUE_BYTES_MAX, unsafeTesting: { fsyncSleepUs: 200_000 } });
    const acked: number[] = [];
    const pending: Promise<void>[] = [];
    let refused: { index: number; error: unknown } | undefined;
    for (let i = 1; i <= TURNS_MAX && !refused; i++) {
      const index = i;
      pending.push(
        wal.save({ term: 1, vote: 1n, commit: 0 }, [makeEntry(index, 1, ENTRY_DATA_BYTES)]).then(
          () => {
            acked.push(index);
          },
          (error: unknown) => {
            refused = { index, error };
          },
        ),
      );
      // One save per event-loop turn: each is handed to the writer by itself (flushed by process.nextTick).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    assert.ok(refused, `no save refused in ${TURNS_MAX} turns`);
    const { index: refusedIndex, error } = refused!;
    assert.instance(error, WalQueueFullError);
    const full = error as WalQueueFullError;
    assert.is(full.code, 'EQUEUEFULL');
    assert.is(full.queueBytesMax, QUEUE_BYTES_MAX);
    assert.ok(full.refusedBytes > ENTRY_DATA_BYTES, `refused ${full.refusedBytes} bytes`);
    // The cap binds only after several turns queued behind the sleeping writer (about 7 fit in 8 KiB); on a
    // loaded machine the writer may take a batch meanwhile, which only makes the refusal come later.
    assert.ok(refusedIndex >= 5, `refused at turn ${refusedIndex}`);
    assert.is(wal.error, undefined, 'a refusal does not poison the WAL');
    await Promise.all(pending);
    assert.equal(
      acked,
      Array.from({ length: refusedIndex - 1 }, (_, i) => i + 1),
      'every turn before the refused one is acked, in order',
    );
    assert.ok(wal.stats.queuedBytes <= QUEUE_BYTES_MAX);
    // The refused entry was never written: saving it again continues the log without a gap.
    await wal.save({ term: 1, vote: 1n, commit: refusedIndex }, [makeEntry(refusedIndex, 1, ENTRY_DATA_BYTES)]);
    await wal.close();
    const r = await Wal.open(dir, { index: 0, term: 0 });
    assert.equal(
      r.entries,
      Array.from({ length: refusedIndex }, (_, i) => makeEntry(i + 1, 1, ENTRY_DATA_BYTES)),
    );
    assert.equal(r.hardState, { term: 1, vote: 1n, commit: refusedIndex });
    await r.wal.close();
  } finally {
    cleanup(root);
  }
});

test('bad unsafeTesting.fsyncSleepUs is refused with EINVAL', async () => {
  const root = tempDir('sleep-opt');
  try {
    try {
      await Wal.create(join(root, 'wal'), meta, { unsafeTesting: { fsyncSleepUs: -1 } });
      assert.unreachable('negative sleep accepted');
    } catch (e) {
      assert.is((e as WalError).code, 'EINVAL');
    }
  } finally {
    cleanup(root);
  }
});

const onTmpfs = tmpfsGate(test);

onTmpfs('ENOSPC on a full disk: save rejects with code ENOSPC, the WAL stays poisoned, nothing unwritten is acked', async () => {
  const root = tempDir('enospc');
  const mnt = join(root, 'mnt');
  mkdirSync(mnt);
  try {
    mountTmpfs(mnt, 1024 * 1024);
    const dir = join(mnt, 'wal');
    // Segments are preallocated, so ENOSPC arrives when a rotation cannot allocate the next one.
    const wal = await Wal.create(dir, meta, { segmentBytes: 256 * 1024 });
    writeFileSync(join(mnt, 'filler'), Buffer.alloc(500 * 1024)); // leave less than a segment free
    let acked = 0;
    let failure: unknown;
    for (let i = 1; i <= 2000 && !failure; i++) {
      try {
        await wal.save(undefined, [makeEntry(i, 1, 1000)]);
        acked = i;
      } catch (e) {
        failure = e;
      }
    }
    assert.instance(failure, WalError);
    assert.is((failure as WalError).code, 'ENOSPC');
    assert.is(wal.error?.code, 'ENOSPC');
    try {
      await wal.save(undefined, [makeEntry(acked + 1, 1)]);
      assert.unreachable('poisoned wal accepted a save');
    } catch (e) {
      assert.is((e as WalError).code, 'ENOSPC');
    }
    await wal.close();
    rmSync(join(mnt, 'filler'));
    const r = await Wal.open(dir, { index: 0, term: 0 }, { segmentBytes: 256 * 1024 });
    assert.is(r.entries.length, acked, 'exactly the acknowledged entries come back');
    await r.wal.close();
  } finally {
    unmountTmpfs(mnt);
    cleanup(root);
  }
});

test('missing addon: the error says to run npm install', async () => {
  const { execFileSync: run } = await import('node:child_process');
  const script = `import('${new URL('../../src/wal/native.js', import.meta.url).href}').then(m => { try { m.loadNative(); console.log('loaded'); } catch (e) { console.log(e.message); } })`;
  const out = run(process.execPath, ['-e', script], { env: { ...process.env, TETCD_WAL_ADDON: '/nonexistent/x.node' } }).toString();
  assert.match(out, /npm install/);
});

test.run();
