// Defragment while serving: the compacted copy catches up with writes made during the copy and replaces
// the file; the store's contents (HashKV, Hash, every key) are the same before and after, also after a
// reopen, and the file shrinks. Writes past the buffer limit make it give up, leaving the store as it was.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, statSync } from 'node:fs';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { Mvcc } from '../../src/mvcc/index.js';
import { decodeKeyValue } from '../../src/proto/kv.js';
import { b, cleanup, openTemp, put } from './helpers.js';

const VALUE = Buffer.alloc(2048, 0x61);

/** 3,000 keys written three times, then compacted: two thirds of the file is free pages. */
async function fragmented(s: Mvcc): Promise<number> {
  let index = 0;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 3000; i++) {
      const t = s.write();
      t.put(b(`k${i}`), VALUE, 0n);
      t.end();
    }
    await s.commit(++index, 1).flushed;
  }
  s.compact(s.currentRevision);
  await s.commit(++index, 1).flushed; // compaction starts once the commit before it is in LMDB
  await s.compactBarrier();
  return index;
}

test('defragment under concurrent writes: same contents, smaller file, survives a reopen', async () => {
  const { s, dir, path } = await openTemp();
  let reopened: Mvcc | undefined;
  try {
    let index = await fragmented(s);
    const before = s.stats.dbSizeBytes;
    let done = false;
    let writes = 0;
    const defrag = s.defragment(`${path}.defrag`).finally(() => {
      done = true;
    });
    while (!done) {
      put(s, `w${writes % 500}`, `v${writes}`);
      writes++;
      s.commit(++index, 1);
      await yieldTurn();
    }
    const r = await defrag;
    // Writes after the swap, and a commit that lands in the new file.
    for (let i = 0; i < 50; i++) put(s, `after${i}`, 'x');
    await s.commit(++index, 1).flushed;
    assert.ok(writes > 0, 'writes went on during the defragment');
    assert.is(r.sizeBeforeBytes, before);
    assert.ok(r.sizeAfterBytes < before / 2, `file ${before} -> ${r.sizeAfterBytes} bytes`);
    assert.ok(statSync(path).size < before / 2, 'the file on disk is the small one');
    assert.not.ok(existsSync(`${path}.defrag`));
    // A second defragment of the file the first one put in place.
    await s.defragment(`${path}.defrag`);
    put(s, 'second', 'y');
    await s.commit(++index, 1).flushed;
    const hashKV = s.hashKV(0);
    const hash = s.hash();
    const value = Buffer.from(decodeKeyValue(s.get(b('w7'))!).value).toString();
    assert.match(value, /^v\d+$/);
    await s.close();
    reopened = await Mvcc.open({ path });
    assert.equal(reopened.hashKV(0), hashKV);
    assert.equal(reopened.hash(), hash);
    assert.is(Buffer.from(decodeKeyValue(reopened.get(b('w7'))!).value).toString(), value);
    assert.is(reopened.consistentIndex().index, index);
    assert.is(reopened.range(b('k'), b('l')).count, 3000);
    assert.is(reopened.range(b('after'), b('aftes')).count, 50);
    assert.is(reopened.range(b('second')).count, 1);
  } finally {
    await s.close();
    await reopened?.close();
    cleanup(dir);
  }
});

test('defragment gives up when writes during the copy pass its buffer limit; the store is unchanged', async () => {
  const { s, dir, path } = await openTemp({ defragTapBytesMax: 4096 });
  try {
    let index = await fragmented(s);
    const before = s.stats.dbSizeBytes;
    let done = false;
    const defrag = s.defragment(`${path}.defrag`).then(
      () => 'finished',
      (e: Error) => e.message,
    );
    void defrag.finally(() => {
      done = true;
    });
    for (let i = 0; !done; i++) {
      put(s, `w${i}`, 'x'.repeat(100));
      s.commit(++index, 1);
      await yieldTurn();
    }
    assert.match(await defrag, /more than 4096 bytes written during the copy/);
    assert.is(s.stats.dbSizeBytes, before);
    assert.not.ok(existsSync(`${path}.defrag`));
    put(s, 'later', 'y');
    await s.commit(++index, 1).flushed;
    assert.is(Buffer.from(decodeKeyValue(s.get(b('later'))!).value).toString(), 'y');
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('Hash covers the side tables but not the applied index', async () => {
  const { s, dir } = await openTemp();
  try {
    put(s, 'a', '1');
    await s.commit(1, 1).flushed;
    const h1 = s.hash();
    await s.commit(2, 1).flushed; // only the applied index moves
    assert.equal(s.hash(), h1);
    s.metaPut('alarm', b('x'), b(''));
    assert.is.not(s.hash().hash, h1.hash);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test.run();
