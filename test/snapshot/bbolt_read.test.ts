// The bbolt reader and `tetcd snapshot status|restore` on a snapshot saved by real etcd 3.4
// (test/fixtures/snapshot/etcd34.db: 150 keys, overwrites, a delete, a lease with two keys, a compaction at
// 100, a 9000-byte value on overflow pages, a user and a role; `etcdctl snapshot save`), and on damaged copies
// of it: every damage gives an error text, never a crash, a hang or a half-written data dir.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BboltFile } from '../../src/snapshot/bbolt_read.js';
import { humanizeBytes, snapshotCommand } from '../../src/snapshot/cli.js';
import { snapshotStatus } from '../../src/snapshot/status.js';
import { Mvcc } from '../../src/mvcc/index.js';
import { decodeKeyValue } from '../../src/proto/kv.js';
import { repoRoot } from '../helpers/member.js';
import { tempDir } from '../helpers/cleanup.js';

const FIXTURE = path.join(repoRoot(), 'test', 'fixtures', 'snapshot', 'etcd34.db');
const PAGE = 4096;

/** What etcdctl 3.4.23 printed for the fixture (`etcdctl snapshot status etcd34.db -w <format>`). */
const ETCDCTL_STATUS: Record<string, string> = {
  simple: '5439f5c, 156, 164, 61 kB\n',
  json: '{"hash":88317788,"revision":156,"totalKey":164,"totalSize":61440}\n',
  table:
    '+---------+----------+------------+------------+\n' +
    '|  HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n' +
    '+---------+----------+------------+------------+\n' +
    '| 5439f5c |      156 |        164 |      61 kB |\n' +
    '+---------+----------+------------+------------+\n',
  fields: '"Hash" : 88317788\n"Revision" : 156\n"Keys" : 164\n"Size" : 61440\n',
};

/** A copy of the fixture in a temp dir, changed by `edit`. */
function damaged(edit: (b: Buffer) => Buffer | undefined): string {
  const b = fs.readFileSync(FIXTURE);
  const out = edit(b) ?? b;
  const p = path.join(tempDir('tetcd-bbolt-'), 'snap.db');
  fs.writeFileSync(p, out);
  return p;
}

/** The first branch page of the fixture (a bucket's root with children). */
function firstBranch(b: Buffer): number {
  for (let i = 2; (i + 1) * PAGE <= b.length; i++) if (b.readUInt16LE(i * PAGE + 8) === 0x01) return i;
  throw new Error('fixture has no branch page');
}

test('status prints what etcdctl printed for the same file, in every format', async () => {
  for (const [format, want] of Object.entries(ETCDCTL_STATUS)) {
    const r = await snapshotCommand(['status', FIXTURE, '-w', format]);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stdout, want, format);
  }
  const r = await snapshotCommand(['status', FIXTURE, '--write-out=table']);
  assert.is(r.stdout, ETCDCTL_STATUS.table);
});

test('status argument and format errors are etcdctl’s', async () => {
  assert.equal(await snapshotCommand(['status']), {
    stdout: '',
    stderr: 'Error: snapshot status requires exactly one argument\n',
    exitCode: 128,
  });
  assert.equal(await snapshotCommand(['status', FIXTURE, '-w', 'bogus']), {
    stdout: '',
    stderr: 'Error: unsupported output format\n',
    exitCode: 4,
  });
  const missing = await snapshotCommand(['status', '/nonexistent/snap.db']);
  assert.equal(missing, { stdout: '', stderr: 'Error: stat /nonexistent/snap.db: no such file or directory\n', exitCode: 1 });
  const flag = await snapshotCommand(['restore', FIXTURE, '--bogus']);
  assert.is(flag.stderr, 'Error: unknown flag: --bogus\n');
  const bool = await snapshotCommand(['restore', FIXTURE, '--skip-hash-check=maybe']);
  assert.is(
    bool.stderr,
    'Error: invalid argument "maybe" for "--skip-hash-check" flag: strconv.ParseBool: parsing "maybe": invalid syntax\n',
  );
});

test('sizes print as go-humanize Bytes does', () => {
  assert.is(humanizeBytes(9), '9 B');
  assert.is(humanizeBytes(36864), '37 kB');
  assert.is(humanizeBytes(2121728), '2.1 MB');
  assert.is(humanizeBytes(10500), '10 kB'); // Go rounds the half to even
  assert.is(humanizeBytes(1_000_000), '1.0 MB');
  assert.is(humanizeBytes(999_999), '1000 kB');
});

test('the reader walks branch, leaf, overflow pages and inline buckets of a real etcd file', () => {
  const db = BboltFile.open(FIXTURE);
  try {
    assert.equal(
      db.bucketNames().map((n) => n.toString()),
      ['alarm', 'auth', 'authRoles', 'authUsers', 'cluster', 'key', 'lease', 'members', 'members_removed', 'meta'],
    );
    const keys = [...db.bucket('key')!];
    const big = keys.map((e) => decodeKeyValue(e.value)).find((kv) => Buffer.from(kv.key).toString() === 'big');
    assert.is(big?.value.length, 9000);
    assert.is(db.check().length, 0);
    assert.is([...db.bucket('authUsers')!].length, 1);
    // Read a page at a time (files past 256 MiB), the reader sees the same records.
    const paged = BboltFile.open(FIXTURE, undefined, 0);
    try {
      assert.equal(
        [...paged.bucket('key')!].map((e) => e.value),
        keys.map((e) => e.value),
      );
      assert.is(paged.check().length, 0);
    } finally {
      paged.close();
    }
  } finally {
    db.close();
  }
});

test('one damaged meta page: the other one is used; both damaged: bbolt’s errors', () => {
  const want = snapshotStatus(FIXTURE);
  // The checksum covers the txid: meta 0 fails validation, meta 1 (same tree in a saved snapshot) serves.
  const one = damaged((b) => {
    b[16 + 48] ^= 0xff;
    return b;
  });
  assert.equal(snapshotStatus(one), want);
  const both = damaged((b) => {
    b[16 + 48] ^= 0xff;
    b[PAGE + 16 + 48] ^= 0xff;
    return b;
  });
  assert.throws(() => snapshotStatus(both), /^checksum error$/);
  const magic = damaged((b) => {
    b[16] ^= 0xff;
    b[PAGE + 16] ^= 0xff;
    return b;
  });
  assert.throws(() => snapshotStatus(magic), /^invalid database$/);
  const version = damaged((b) => {
    b.writeUInt32LE(3, 16 + 4);
    b.writeUInt32LE(3, PAGE + 16 + 4);
    return b;
  });
  assert.throws(() => snapshotStatus(version), /^version mismatch$/);
  assert.throws(() => snapshotStatus(damaged((b) => b.subarray(0, 100))), /^invalid database$/);
});

/** bbolt's meta checksum (FNV-1a 64 of the 56 bytes before it), to forge metas that pass validation. */
function resum(b: Buffer, page: number): void {
  const m = page * PAGE + 16;
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < 56; i++) h = ((h ^ BigInt(b[m + i]!)) * 0x100000001b3n) & 0xffffffffffffffffn;
  b.writeBigUInt64LE(h, m + 56);
}

test('valid metas with impossible page sizes or page counts are refused', () => {
  for (const pageSize of [0, 100, 3000, 1 << 20]) {
    const p = damaged((b) => {
      for (const page of [0, 1]) {
        b.writeUInt32LE(pageSize, page * PAGE + 16 + 8);
        resum(b, page);
      }
      return b;
    });
    assert.throws(() => snapshotStatus(p), /^invalid database$/, String(pageSize));
  }
  const pages = damaged((b) => {
    for (const page of [0, 1]) {
      b.writeBigUInt64LE(2n ** 40n, page * PAGE + 16 + 40);
      resum(b, page);
    }
    return b;
  });
  assert.throws(() => snapshotStatus(pages), /high water mark 1099511627776 past the file's 15 pages/);
  // The root bucket at a meta page, or at a free page holding junk.
  for (const [root, want] of [
    [0n, /page 0: out of bounds: 15/],
    [14n, /page 14: overflow \d+ past the high water mark 15/],
  ] as const) {
    const p = damaged((b) => {
      for (const page of [0, 1]) {
        b.writeBigUInt64LE(root, page * PAGE + 16 + 16);
        resum(b, page);
      }
      return b;
    });
    assert.throws(() => snapshotStatus(p), want);
  }
});

test('truncated files, cycles and out-of-range references are errors, not crashes or loops', () => {
  assert.throws(() => snapshotStatus(damaged((b) => b.subarray(0, 10_000))), /high water mark 15 past the file's 2 pages/);
  // A branch page whose first child is itself: a cycle.
  const cycle = damaged((b) => {
    const p = firstBranch(b);
    b.writeBigUInt64LE(BigInt(p), p * PAGE + 16 + 8);
    return b;
  });
  assert.throws(() => snapshotStatus(cycle), /multiple references/);
  const pagedCycle = BboltFile.open(cycle, undefined, 0);
  assert.match(pagedCycle.check().join('\n'), /multiple references/);
  pagedCycle.close();
  const far = damaged((b) => {
    const p = firstBranch(b);
    b.writeBigUInt64LE(1_000_000n, p * PAGE + 16 + 8);
    return b;
  });
  assert.throws(() => snapshotStatus(far), /page 1000000: out of bounds: 15/);
  const huge = damaged((b) => {
    const p = firstBranch(b);
    b.writeBigUInt64LE(0xffffffffffffffffn, p * PAGE + 16 + 8);
    return b;
  });
  assert.throws(() => snapshotStatus(huge), /out of range/);
  // A page claiming 2^32-1 overflow pages, a leaf element pointing past its page, a page of no known type.
  const overflow = damaged((b) => {
    b.writeUInt32LE(0xffffffff, 2 * PAGE + 12);
    return b;
  });
  assert.throws(() => snapshotStatus(overflow), /overflow 4294967295 past the high water mark/);
  const pos = damaged((b) => {
    b.writeUInt32LE(0x7fffffff, 2 * PAGE + 16 + 4);
    return b;
  });
  assert.throws(() => snapshotStatus(pos), /runs past the page/);
  const misdirected = damaged((b) => {
    b.writeBigUInt64LE(3n, 2 * PAGE);
    return b;
  });
  assert.throws(() => snapshotStatus(misdirected), /page 2: self identifies as page 3/);
  const count = damaged((b) => {
    b.writeUInt16LE(0xffff, 2 * PAGE + 10);
    return b;
  });
  assert.throws(() => snapshotStatus(count), /elements run past the page/);
  const type = damaged((b) => {
    b.writeUInt16LE(0x40, 2 * PAGE + 8);
    return b;
  });
  assert.throws(() => snapshotStatus(type), /invalid type|invalid page type/);
});

test('restore checks the trailing sha256 as etcdctl does and leaves no data dir behind on failure', async () => {
  const dir = tempDir('tetcd-restore-');
  const dataDir = path.join(dir, 'm1.etcd');
  const flipped = damaged((b) => {
    b[3 * PAGE + 2000] ^= 0x01;
    return b;
  });
  const bad = await snapshotCommand(['restore', flipped, '--data-dir', dataDir]);
  assert.is(bad.exitCode, 1);
  assert.match(bad.stderr, /Error: expected sha256 \[(\d+ ){31}\d+\], got \[(\d+ ){31}\d+\]\n$/);
  assert.not.ok(fs.existsSync(dataDir));
  const noHash = damaged((b) => b.subarray(0, b.length - 32));
  const refused = await snapshotCommand(['restore', noHash, '--data-dir', dataDir]);
  assert.match(refused.stderr, /Error: snapshot missing hash but --skip-hash-check=false\n$/);
  assert.not.ok(fs.existsSync(dataDir));
  const cycle = damaged((b) => {
    const p = firstBranch(b);
    b.writeBigUInt64LE(BigInt(p), p * PAGE + 16 + 8);
    return b.subarray(0, b.length - 32);
  });
  const broken = await snapshotCommand(['restore', cycle, '--data-dir', dataDir, '--skip-hash-check']);
  assert.is(broken.exitCode, 1);
  assert.match(broken.stderr, /snapshot file integrity check failed\. 1 errors found\.\npage \d+: multiple references/);
  assert.not.ok(fs.existsSync(dataDir));
  // A database copied from a data dir has no hash: accepted with --skip-hash-check.
  const ok = await snapshotCommand(['restore', noHash, '--data-dir', dataDir, '--skip-hash-check']);
  assert.is(ok.exitCode, 0, ok.stderr);
  // etcd's IDs for its defaults (http://localhost:2380, token etcd-cluster), as every default etcd reports them.
  assert.match(ok.stderr, /"member-id":"8e9e05c52164694d","cluster-id":"cdf818194e3a8c32"/);
  const walDir = path.join(dir, 'wal-elsewhere');
  const elsewhere = await snapshotCommand(['restore', FIXTURE, '--data-dir', path.join(dir, 'w'), '--wal-dir', walDir]);
  assert.is(elsewhere.exitCode, 0, elsewhere.stderr);
  assert.ok(fs.readdirSync(walDir).some((f) => f.endsWith('.wal')));
  assert.not.ok(fs.existsSync(path.join(dir, 'w', 'member', 'wal')));
  const walTaken = await snapshotCommand(['restore', FIXTURE, '--data-dir', path.join(dir, 'w2'), '--wal-dir', walDir]);
  assert.match(walTaken.stderr, new RegExp(`Error: wal-dir "${walDir}" exists\\n$`));
  const again = await snapshotCommand(['restore', FIXTURE, '--data-dir', dataDir]);
  assert.match(again.stderr, new RegExp(`Error: data-dir "${dataDir}" exists\\n$`));
  const name = await snapshotCommand(['restore', FIXTURE, '--data-dir', path.join(dir, 'x'), '--name', 'foo']);
  assert.match(name.stderr, /Error: couldn't find local name "foo" in the initial cluster configuration\n$/);
});

test('a restored backend holds every revision since the compaction, the compaction, leases and auth', async () => {
  const dataDir = path.join(tempDir('tetcd-restore-'), 'd');
  const r = await snapshotCommand([
    'restore',
    FIXTURE,
    '--data-dir',
    dataDir,
    '--name',
    'n1',
    '--initial-cluster',
    'n1=http://127.0.0.1:1',
  ]);
  assert.is(r.exitCode, 1); // the advertised peer URL is the default http://localhost:2380
  const ok = await snapshotCommand([
    'restore',
    FIXTURE,
    '--data-dir',
    dataDir,
    '--name',
    'n1',
    '--initial-cluster',
    'n1=http://127.0.0.1:1',
    '--initial-advertise-peer-urls',
    'http://127.0.0.1:1',
  ]);
  assert.is(ok.exitCode, 0, ok.stderr);
  const s = await Mvcc.open({ path: path.join(dataDir, 'member', 'snap', 'db') });
  try {
    assert.is(s.currentRevision, 156);
    assert.is(s.compactRevision, 100);
    assert.equal(s.consistentIndex(), { index: 1, term: 1 });
    const all = s.range(Buffer.from('\0'), Buffer.from('\0'));
    assert.is(all.count, 152); // key001..key150 less key002, leased1, leased2, big
    const old = s.range(Buffer.from('key099'), undefined, { rev: 100 });
    assert.is(Buffer.from(decodeKeyValue(old.kvs[0]!).value).toString().slice(0, 10), 'value-99-v');
    assert.throws(() => s.range(Buffer.from('key099'), undefined, { rev: 99 }), /compacted/);
    const leased: string[] = [];
    s.forEachLeasedKey((k) => leased.push(Buffer.from(k).toString()));
    assert.equal(leased, ['leased1', 'leased2']);
    assert.is([...s.metaScan('lease')].length, 1);
    assert.is([...s.metaScan('authUsers')].length, 1);
    assert.is([...s.metaScan('authRoles')].length, 1);
    assert.is([...s.metaScan('members')].length, 1);
  } finally {
    await s.close();
  }
});

test.run();
