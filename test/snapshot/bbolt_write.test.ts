// The bbolt writer against bbolt itself: files with the shapes a backend can have (empty buckets, buckets
// just inside and just past the inline limit, values and keys larger than a page, trees three branch levels
// deep) are opened by etcd 3.4's `etcdctl snapshot status`, which runs bbolt's consistency check (every
// page reachable once, nothing unreachable below the high-water mark) and then walks every bucket: its
// hash (CRC-32C of names, keys and values in order), record count, revision and size must be ours.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { oracleGate } from '../helpers/oracle.js';
import { BboltWriter, fnv1a64 } from '../../src/snapshot/bbolt_write.js';
import { crc32c } from '../../src/crc32c.js';
import { revKey } from '../../src/mvcc/revision.js';

const t = oracleGate(test);

type Buckets = Map<string, [Buffer, Buffer][]>;

/** A deterministic byte stream (xorshift), so a failure replays. */
function rng(seed: number): (n: number) => Buffer {
  let x = seed >>> 0 || 1;
  return (n) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    return b;
  };
}

function sorted(entries: [Buffer, Buffer][]): [Buffer, Buffer][] {
  const seen = new Set<string>();
  return entries
    .filter(([k]) => {
      const h = k.toString('hex');
      if (seen.has(h)) return false;
      seen.add(h);
      return true;
    })
    .sort((a, b) => Buffer.compare(a[0], b[0]));
}

function write(file: string, buckets: Buckets): number {
  const fd = fs.openSync(file, 'w');
  try {
    const w = new BboltWriter(fd);
    for (const [name, entries] of buckets) {
      const b = w.bucket(Buffer.from(name));
      for (const [k, v] of entries) b.add(k, v);
      b.end();
    }
    return w.finish();
  } finally {
    fs.closeSync(fd);
  }
}

/** What `etcdctl snapshot status` must print for these buckets (clientv3/snapshot Status). */
function expectedStatus(buckets: Buckets, size: number): { hash: number; revision: number; totalKey: number; totalSize: number } {
  let h = 0;
  let totalKey = 0;
  let revision = 0;
  for (const name of [...buckets.keys()].sort()) {
    h = crc32c(h, Buffer.from(name));
    for (const [k, v] of buckets.get(name)!) {
      h = crc32c(crc32c(h, k), v);
      totalKey++;
      if (name === 'key') revision = k.readUInt32BE(0) * 2 ** 32 + k.readUInt32BE(4);
    }
  }
  return { hash: h >>> 0, revision, totalKey, totalSize: size };
}

async function status(file: string): Promise<unknown> {
  const r = await etcdctl('127.0.0.1:1', ['snapshot', 'status', file, '-w', 'json']);
  if (r.code !== 0) throw new Error(`snapshot status failed: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout);
}

t('FNV-1a 64 of known inputs (the meta checksum)', () => {
  assert.is(fnv1a64(Buffer.alloc(0)), 0xcbf29ce484222325n);
  assert.is(fnv1a64(Buffer.from('a')), 0xaf63dc4c8601ec8cn);
  assert.is(fnv1a64(Buffer.from('foobar')), 0x85944171f73967e8n);
});

t('every page shape bbolt has: bbolt check passes and status walks the same records', async () => {
  const r = rng(7);
  const dir = tempDir('tetcd-bbolt-');
  const buckets: Buckets = new Map();
  buckets.set('empty', []);
  // Inline limit: a quarter page (1024 bytes) of page header + elements. 16 + 14 × (16 + 4 + 52) = 1024: inline.
  buckets.set('inline', sorted(Array.from({ length: 14 }, (_, i) => [Buffer.from(`k${String(i).padStart(3, '0')}`), r(52)])));
  buckets.set('justpast', sorted(Array.from({ length: 14 }, (_, i) => [Buffer.from(`k${String(i).padStart(3, '0')}`), r(53)])));
  // Revision keys as etcd's key bucket has them, with tombstones, values from empty to several pages.
  const keyEntries: [Buffer, Buffer][] = [];
  for (let main = 1; main <= 3000; main++) {
    keyEntries.push([revKey(main, 0, main % 97 === 0), r(main % 500 === 0 ? 20_000 : main % 40)]);
  }
  buckets.set('key', keyEntries);
  // Long keys: few children per branch page, so the tree is three branch levels deep; some keys and values
  // larger than a page (overflow pages on leaves and on branches).
  const deep: [Buffer, Buffer][] = [];
  for (let i = 0; i < 6000; i++) deep.push([Buffer.concat([r(190), Buffer.from(String(i))]), r(i % 3)]);
  deep.push([Buffer.concat([Buffer.from([0xff]), r(6000)]), r(10)]);
  deep.push([Buffer.from([0x00, 0x01]), r(1 << 20)]);
  buckets.set('deep', sorted(deep));
  const file = path.join(dir, 'all.db');
  const size = write(file, buckets);
  assert.is(fs.statSync(file).size, size);
  assert.equal(await status(file), expectedStatus(buckets, size));
});

t('random bucket sets: status agrees for each', async () => {
  const dir = tempDir('tetcd-bbolt-');
  for (let seed = 1; seed <= 6; seed++) {
    const r = rng(seed);
    const buckets: Buckets = new Map();
    const nb = 1 + (r(1)[0] % 10);
    for (let b = 0; b < nb; b++) {
      const n = r(2).readUInt16BE(0) % (seed * 400);
      const entries: [Buffer, Buffer][] = [];
      for (let i = 0; i < n; i++) entries.push([r(1 + (r(1)[0] % 40)), r(r(2).readUInt16BE(0) % (i % 50 === 0 ? 9000 : 200))]);
      buckets.set(`b${b}-${seed}`, sorted(entries));
    }
    const file = path.join(dir, `r${seed}.db`);
    const size = write(file, buckets);
    assert.equal(await status(file), expectedStatus(buckets, size), `seed ${seed}`);
  }
});

t('refuses keys out of order and a bucket written twice', () => {
  const fd = fs.openSync(path.join(tempDir('tetcd-bbolt-'), 'bad.db'), 'w');
  try {
    const w = new BboltWriter(fd);
    const b = w.bucket(Buffer.from('x'));
    b.add(Buffer.from('b'), Buffer.alloc(0));
    assert.throws(() => b.add(Buffer.from('a'), Buffer.alloc(0)), /out of order/);
    assert.throws(() => b.add(Buffer.from('b'), Buffer.alloc(0)), /out of order/);
    b.end();
    w.bucket(Buffer.from('x')).end();
    assert.throws(() => w.finish(), /written twice/);
  } finally {
    fs.closeSync(fd);
  }
});

test.run();
