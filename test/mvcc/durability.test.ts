// Durability: reads see writes before LMDB has them (the overlay), reopen after close, side
// tables, and the atomicity of commit(): a child process is SIGKILLed right after commits many
// times over; on every reopen the applied index and the data agree exactly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from 'lmdb';
import { Mvcc } from '../../src/mvcc/index.js';
import { decodeKeyValue } from '../../src/proto/kv.js';
import { b, cleanup, openTemp, put, showAll, tempDir } from './helpers.js';
import { modelAfter } from './crash_model.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Revisions LMDB itself holds right now (a second reader of the file, no overlay). */
function lmdbRevisionCount(path: string): number {
  const env = open({ path, noSubdir: true, maxDbs: 4, readOnly: true });
  const db = env.openDB({ name: 'key', keyEncoding: 'binary', encoding: 'binary' });
  const n = db.getKeysCount({});
  void env.close();
  return n;
}

test('reads see applied writes before LMDB commits them; commit makes them durable', async () => {
  const { s, dir, path } = await openTemp();
  try {
    const t = s.write();
    t.put(b('x'), b('1'), 0n);
    // read-your-writes inside the transaction, before end()
    assert.is(showAll(t.range(b('x')).kvs), 'x=1@c2m2v1');
    assert.is(s.range(b('x')).count, 0, 'outside readers still see revision 1');
    t.end();
    assert.is(showAll(s.range(b('x')).kvs), 'x=1@c2m2v1');
    put(s, 'x', '2');
    assert.is(s.stats.overlayRevisions, 2);
    assert.is(lmdbRevisionCount(path), 0, 'nothing in LMDB before commit');
    const { committed, flushed } = s.commit(7, 3);
    assert.is(showAll(s.range(b('x'), undefined, { rev: 2 }).kvs), 'x=1@c2m2v1', 'readable while committing');
    await committed;
    assert.is(s.stats.overlayRevisions, 0);
    assert.is(lmdbRevisionCount(path), 2);
    assert.is(showAll(s.range(b('x')).kvs), 'x=2@c2m3v2');
    await flushed;
    assert.equal(s.consistentIndex(), { index: 7, term: 3 });
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('reopen after close rebuilds index, revisions, versions and the applied index', async () => {
  const { s, dir, path } = await openTemp();
  let s2: Mvcc | undefined;
  try {
    put(s, 'a', '1');
    put(s, 'a', '2');
    const t = s.write();
    t.put(b('b'), b('x'), 5n);
    t.deleteRange(b('a'), undefined, false);
    t.end();
    put(s, 'a', '3');
    put(s, 'c', '4');
    s.metaPut('members', b('m1'), b('one'));
    await s.commit(42, 7).flushed;
    const want = s.range(b('\0'), b('\0'), { rev: 5 });
    // staged but never committed: lost on close (the WAL would replay it)
    put(s, 'lost', 'x');
    s.metaPut('members', b('m2'), b('lost'));
    await s.close();
    s2 = await Mvcc.open({ path });
    assert.equal(s2.consistentIndex(), { index: 42, term: 7 });
    assert.is(s2.currentRevision, 6);
    assert.is(showAll(s2.range(b('\0'), b('\0')).kvs), 'a=3@c5m5v1 b=x@c4m4v1l5 c=4@c6m6v1');
    assert.equal(s2.range(b('\0'), b('\0'), { rev: 5 }), want);
    assert.is(showAll(s2.range(b('a'), undefined, { rev: 3 }).kvs), 'a=2@c2m3v2');
    assert.is(s2.range(b('a'), undefined, { rev: 4 }).count, 0);
    assert.is(s2.stats.keys, 3);
    assert.equal(
      [...s2.metaScan('members')].map(([k, v]) => `${Buffer.from(k)}=${Buffer.from(v)}`),
      ['m1=one'],
    );
    // the lessor's re-attach list after restart: b is on lease 5
    const leased: string[] = [];
    s2.forEachLeasedKey((k, id) => leased.push(`${Buffer.from(k)}:${id}`));
    assert.equal(leased, ['b:5']);
    // writing continues with the next revision and version
    put(s2, 'a', '4');
    assert.is(showAll(s2.range(b('a')).kvs), 'a=4@c5m7v2');
  } finally {
    await s2?.close();
    await s.close();
    cleanup(dir);
  }
});

test('side tables: put, delete, scan order, visible before commit, isolated per bucket', async () => {
  const { s, dir } = await openTemp();
  try {
    s.metaPut('leases', b('\x02'), b('two'));
    s.metaPut('leases', b('\x01'), b('one'));
    s.metaPut('lease', b('x'), b('other bucket'));
    s.metaPut('leasesX', b('y'), b('other bucket'));
    assert.is(Buffer.from(s.metaGet('leases', b('\x01'))!).toString(), 'one');
    await s.commit(1, 1).committed;
    s.metaDelete('leases', b('\x02'));
    s.metaPut('leases', b('\x03'), b('three'));
    const scan = () => [...s.metaScan('leases')].map(([k, v]) => `${k[0]}=${Buffer.from(v)}`).join(',');
    assert.is(scan(), '1=one,3=three');
    assert.is(s.metaGet('leases', b('\x02')), undefined);
    await s.commit(2, 1).committed;
    assert.is(scan(), '1=one,3=three');
    assert.is([...s.metaScan('lease')].length, 1);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('an aborted write transaction leaves no trace', async () => {
  const { s, dir } = await openTemp();
  try {
    put(s, 'a', '1');
    const t = s.write();
    t.put(b('a'), b('2'), 0n);
    t.put(b('n'), b('new'), 0n);
    t.deleteRange(b('a'), undefined, false);
    t.abort();
    assert.is(s.currentRevision, 2);
    assert.is(showAll(s.range(b('\0'), b('\0')).kvs), 'a=1@c2m2v1');
    assert.is(s.stats.keys, 1);
    assert.is(s.stats.indexKeys, 1);
    put(s, 'a', '3');
    assert.is(showAll(s.range(b('a')).kvs), 'a=3@c2m3v2');
    await s.commit(1, 1).committed;
    assert.is(s.hashKV(0).hash, s.hashKV(3).hash);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('backup: a consistent copy of the committed state opens as a store', async () => {
  const { s, dir } = await openTemp();
  let copy: Mvcc | undefined;
  try {
    put(s, 'a', '1');
    put(s, 'b', '2');
    await s.commit(9, 2).committed;
    put(s, 'c', 'not committed yet');
    await s.backup(join(dir, 'copy.db'));
    copy = await Mvcc.open({ path: join(dir, 'copy.db') });
    assert.equal(copy.consistentIndex(), { index: 9, term: 2 });
    assert.is(copy.currentRevision, 3);
    assert.is(showAll(copy.range(b('\0'), b('\0')).kvs), 'a=1@c2m2v1 b=2@c3m3v1');
  } finally {
    await copy?.close();
    await s.close();
    cleanup(dir);
  }
});

/** Runs the child until it has acknowledged some commits, kills it, returns the highest acknowledged index. */
function runAndKill(path: string, killAfterOks: number, extraDelayMs: number): Promise<{ acked: number; started: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'crash_child.js'), path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let acked = -1;
    let started = -1;
    let oks = 0;
    let killing = false;
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [word, n] = line.split(' ');
        if (word === 'start') started = Number(n);
        if (word === 'ok') {
          acked = Math.max(acked, Number(n));
          oks++;
        }
        if (oks >= killAfterOks && !killing) {
          killing = true;
          setTimeout(() => child.kill('SIGKILL'), extraDelayMs);
        }
      }
    });
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited ${code} ${signal}: ${err}`));
      else resolve({ acked, started });
    });
  });
}

test('SIGKILL right after commits: applied index and data always agree on reopen', async () => {
  const dir = tempDir();
  const path = join(dir, 'db');
  try {
    let lastIndex = 0;
    for (let round = 0; round < 12; round++) {
      const { acked, started } = await runAndKill(path, 1 + ((round * 7) % 25), (round * 5) % 13);
      assert.is(started, lastIndex, 'the child resumed from the applied index');
      const s = await Mvcc.open({ path });
      try {
        const { index } = s.consistentIndex();
        assert.ok(index >= acked, `applied index ${index} < acknowledged ${acked}`);
        const model = modelAfter(index);
        assert.is(s.currentRevision, model.rev, `revision after index ${index}`);
        const got = new Map<string, string>();
        for (const kv of s.range(b('\0'), b('\0')).kvs) {
          const m = decodeKeyValue(kv);
          got.set(Buffer.from(m.key).toString(), Buffer.from(m.value).toString());
        }
        assert.equal(got, model.keys, `data after index ${index}`);
        lastIndex = index;
      } finally {
        await s.close();
      }
    }
    assert.ok(lastIndex > 20, `made progress: ${lastIndex}`);
  } finally {
    cleanup(dir);
  }
});

test.run();
