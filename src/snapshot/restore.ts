// `tetcd snapshot restore`: a snapshot file is a bbolt database (what
// `etcdctl snapshot save` writes from etcd, and what tetcd's Snapshot RPC streams), usually followed by the
// sha256 of the database. Restore turns it into a new member's data dir, as etcd's clientv3/snapshot
// v3_snapshot.go does: the keys with all their revisions, the compaction, leases, auth and alarms from the
// file; the membership, cluster ID and member ID from the flags; a Raft log that starts at index N (the
// member count), term 1, with a snapshot there, so every member of the new cluster starts from the same state.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Backend, metaKey } from '../mvcc/backend.js';
import { Mvcc } from '../mvcc/index.js';
import { assertRevKey, revKeyMain, writeU64 } from '../mvcc/revision.js';
import { LEASE_BUCKET, encodeLeaseRecord, leaseKey } from '../lease/persist.js';
import { ProtoReader } from '../proto/wire.js';
import { alarmKey } from '../server/alarms.js';
import { newClusterState, walMetadata } from '../server/bootstrap.js';
import { encodeMemberRecord } from '../server/membership.js';
import { memberId as memberIdFor } from '../server/ids.js';
import { saveSnap } from '../server/snap_files.js';
import { Wal, mkdirDurable, syncDir } from '../wal/index.js';
import { BboltFile, type BboltEntry } from './bbolt_read.js';

const SHA256_BYTES = 32;

/** etcd's hasChecksum: a snapshot's size is pages (multiples of 512) plus the 32-byte sha256. */
export function hasChecksum(fileBytes: number): boolean {
  return fileBytes % 512 === SHA256_BYTES;
}

/** Options of restore (etcdctl snapshot restore's flags, resolved). */
export interface RestoreOptions {
  snapshotPath: string;
  name: string;
  dataDir: string;
  walDir: string;
  initialCluster: Array<{ name: string; peerURLs: string[] }>;
  initialClusterToken: string;
  skipHashCheck: boolean;
}

/** What restore wrote. */
export interface RestoreResult {
  memberId: bigint;
  clusterId: bigint;
  /** Revisions copied from the key bucket. */
  revisions: number;
  leases: number;
}

/**
 * Checks the snapshot's trailing sha256 (etcd's saveDB) and returns the bytes of the database proper.
 * Throws etcd's errors: `snapshot missing hash but --skip-hash-check=false`, `expected sha256 [..], got [..]`.
 */
export function verifySnapshotHash(file: string, skipHashCheck: boolean): number {
  // etcd opens the file first: a missing one is `open FILE: ...`.
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size < SHA256_BYTES) throw new Error(`seek ${file}: invalid argument`);
    const has = hasChecksum(size);
    if (!has && !skipHashCheck) throw new Error('snapshot missing hash but --skip-hash-check=false');
    const dbBytes = has ? size - SHA256_BYTES : size;
    if (has && !skipHashCheck) {
      const want = Buffer.alloc(SHA256_BYTES);
      fs.readSync(fd, want, 0, SHA256_BYTES, dbBytes);
      const h = createHash('sha256');
      const chunk = Buffer.allocUnsafe(1 << 20);
      for (let off = 0; off < dbBytes; ) {
        const n = fs.readSync(fd, chunk, 0, Math.min(chunk.length, dbBytes - off), off);
        if (n <= 0) throw new Error(`${file}: short read at ${off}`);
        h.update(chunk.subarray(0, n));
        off += n;
      }
      const got = h.digest();
      if (!got.equals(want)) throw new Error(`expected sha256 ${goBytes(want)}, got ${goBytes(got)}`);
    }
    return dbBytes;
  } finally {
    fs.closeSync(fd);
  }
}

/** Go's %v of a []byte: `[1 2 3]`. */
function goBytes(b: Uint8Array): string {
  return `[${[...b].join(' ')}]`;
}

/** Revision writes per LMDB transaction while copying the key bucket. */
const COPY_BATCH_PUTS = 10_000;

/**
 * Writes a new data dir from the snapshot. Refuses an existing data dir or WAL dir (etcd's texts); on any
 * failure after creating the data dir, removes it again so a retry starts clean.
 */
export async function restoreSnapshot(o: RestoreOptions): Promise<RestoreResult> {
  if (fs.existsSync(o.dataDir)) throw new Error(`data-dir ${JSON.stringify(o.dataDir)} exists`);
  const defaultWal = path.join(o.dataDir, 'member', 'wal');
  if (path.resolve(o.walDir) !== path.resolve(defaultWal) && fs.existsSync(o.walDir)) {
    throw new Error(`wal-dir ${JSON.stringify(o.walDir)} exists`);
  }
  const state = newClusterState({ name: o.name, initialCluster: o.initialCluster, initialClusterToken: o.initialClusterToken });
  const dbBytes = verifySnapshotHash(o.snapshotPath, o.skipHashCheck);
  const db = BboltFile.open(o.snapshotPath, dbBytes);
  let created = false;
  try {
    const errs = db.check();
    if (errs.length > 0) throw new Error(`snapshot file integrity check failed. ${errs.length} errors found.\n` + errs.join('\n'));
    const snapDir = path.join(o.dataDir, 'member', 'snap');
    created = true;
    mkdirDurable(snapDir);
    // The member count is the Raft log's start (one ConfChange per member in etcd's restore).
    const commit = o.initialCluster.length;
    // Named as in --initial-cluster (etcd's restore writes the names too); client URLs come when each starts.
    const members = o.initialCluster.map((c) => {
      const ID = memberIdFor(c.peerURLs, o.initialClusterToken);
      return {
        id: ID,
        record: encodeMemberRecord({ ID, name: c.name, peerURLs: [...c.peerURLs].sort(), clientURLs: [], isLearner: false }),
      };
    });
    const counts = await writeBackend(db, path.join(snapDir, 'db'), {
      commit,
      members: members.map((m) => m.record),
      memberIds: members.map((m) => m.id),
    });
    syncDir(snapDir);
    // The store must open: every revision key well formed, every KeyValue decodable.
    const check = await Mvcc.open({ path: path.join(snapDir, 'db') });
    await check.close();

    const wal = await Wal.create(o.walDir, walMetadata(state.memberId, state.clusterId));
    try {
      await wal.save({ term: 1, vote: state.confState.voters[0]!, commit }, []);
      await wal.saveSnapshot({ index: commit, term: 1 });
    } finally {
      await wal.close();
    }
    await saveSnap(snapDir, { index: commit, term: 1, voters: state.confState.voters, learners: [] }, 5);
    return { memberId: state.memberId, clusterId: state.clusterId, ...counts };
  } catch (err) {
    if (created) {
      fs.rmSync(o.dataDir, { recursive: true, force: true });
      if (path.resolve(o.walDir) !== path.resolve(defaultWal)) fs.rmSync(o.walDir, { recursive: true, force: true });
    }
    throw err;
  } finally {
    db.close();
  }
}

interface NewMembership {
  /** The Raft index the backend is applied to. */
  commit: number;
  /** Member records (encodeMemberRecord) of the new cluster, by ID. */
  members: Uint8Array[];
  memberIds: bigint[];
}

/** Copies the snapshot's buckets into a new backend at `dbPath`. */
async function writeBackend(db: BboltFile, dbPath: string, m: NewMembership): Promise<{ revisions: number; leases: number }> {
  const be = Backend.open({ path: dbPath, mapSizeBytes: Math.max(1 << 30, db.sizeBytes * 2), pendingBytesMax: 1 << 20 });
  let revisions = 0;
  let leases = 0;
  let lastMain = 0;
  try {
    const keys = db.bucket('key');
    if (keys !== undefined) {
      let batch: BboltEntry[] = [];
      const flush = (): void => {
        const b = batch;
        batch = [];
        be.env.transactionSync(() => {
          for (const e of b) be.keyDb.putSync(e.key, e.value);
        });
      };
      for (const e of keys) {
        if (e.bucket) throw new Error('key bucket: a nested bucket where a revision belongs');
        assertRevKey(e.key);
        lastMain = revKeyMain(e.key);
        // Views into the page just read: putSync copies them into the transaction.
        batch.push(e);
        revisions++;
        if (batch.length >= COPY_BATCH_PUTS) flush();
      }
      flush();
    }
    const meta = new Map<string, Uint8Array>();
    const put = (bucket: string, key: Uint8Array, value: Uint8Array): void => {
      meta.set(metaKey(bucket, key).toString('latin1'), value);
    };
    const fromEtcdMeta = entriesOf(db, 'meta');
    for (const name of ['finishedCompactRev', 'scheduledCompactRev']) {
      const v = fromEtcdMeta.get(name);
      if (v === undefined) continue;
      assertRevKey(v);
      put('meta', Buffer.from(name), v);
      lastMain = Math.max(lastMain, revKeyMain(v));
    }
    put('meta', Buffer.from('consistent_index'), u64(m.commit));
    put('meta', Buffer.from('term'), u64(1));
    put('meta', Buffer.from('tetcd_committed_revision'), u64(lastMain));
    for (const [k, v] of entriesOf(db, 'lease')) {
      const l = decodeEtcdLease(Buffer.from(k, 'latin1'), v);
      put(LEASE_BUCKET, leaseKey(l.id), encodeLeaseRecord(l));
      leases++;
    }
    for (const [k, v] of entriesOf(db, 'auth')) {
      if (k === 'authEnabled' || k === 'authRevision') put('auth', Buffer.from(k, 'latin1'), v);
    }
    for (const bucket of ['authUsers', 'authRoles']) {
      for (const [k, v] of entriesOf(db, bucket)) put(bucket, Buffer.from(k, 'latin1'), v);
    }
    for (const [k] of entriesOf(db, 'alarm')) {
      const a = decodeAlarmMember(Buffer.from(k, 'latin1'));
      put('alarm', alarmKey(a.memberId, a.alarm), new Uint8Array(0));
    }
    for (let i = 0; i < m.memberIds.length; i++) {
      const id = Buffer.allocUnsafe(8);
      id.writeBigUInt64BE(m.memberIds[i]!);
      put('members', id, m.members[i]!);
    }
    be.env.transactionSync(() => {
      for (const [k, v] of meta) be.metaDb.putSync(Buffer.from(k, 'latin1'), v);
    });
  } finally {
    await be.close();
  }
  return { revisions, leases };
}

/** A small bucket's entries (key as latin1 text); empty when the bucket is missing. */
function entriesOf(db: BboltFile, bucket: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const entries = db.bucket(bucket);
  if (entries === undefined) return out;
  for (const e of entries) {
    if (e.bucket) throw new Error(`${bucket} bucket: a nested bucket`);
    out.set(e.key.toString('latin1'), Buffer.from(e.value));
  }
  return out;
}

function u64(v: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, 0, v);
  return b;
}

/** etcd's leasepb.Lease {ID = 1, TTL = 2, RemainingTTL = 3}, keyed by the ID as 8 bytes big-endian. */
function decodeEtcdLease(key: Buffer, v: Uint8Array): { id: bigint; ttlSec: number; remainingTtlSec: number } {
  if (key.length !== 8) throw new Error(`lease bucket: a key of ${key.length} bytes`);
  const r = new ProtoReader(v);
  let id = 0n;
  let ttlSec = 0;
  let remainingTtlSec = 0;
  while (r.pos < v.length) {
    const t = r.tag();
    if (t === 8) id = r.int64Big();
    else if (t === 16) ttlSec = r.int64();
    else if (t === 24) remainingTtlSec = r.int64();
    else r.skipField(t);
  }
  if (id !== key.readBigInt64BE(0)) throw new Error(`lease bucket: lease ${id} stored under ${key.readBigInt64BE(0)}`);
  return { id, ttlSec, remainingTtlSec };
}

/** etcd's AlarmMember {MemberID = 1, Alarm = 2}, the alarm bucket's keys. */
function decodeAlarmMember(k: Uint8Array): { memberId: bigint; alarm: number } {
  const r = new ProtoReader(k);
  let memberId = 0n;
  let alarm = 0;
  while (r.pos < k.length) {
    const t = r.tag();
    if (t === 8) memberId = r.uint64Big();
    else if (t === 16) alarm = r.int32();
    else r.skipField(t);
  }
  return { memberId, alarm };
}
