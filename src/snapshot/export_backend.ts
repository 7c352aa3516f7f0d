// A member's backend as an etcd 3.4 bbolt file (what Maintenance.Snapshot streams): one LMDB read
// transaction is the point in time (writers go on; LMDB keeps the pages it sees), every record is read
// from it and written in etcd's encoding (etcd_buckets.ts), the "key" bucket a leaf at a time. Runs on a
// worker thread (export_worker.ts), which opens the member's LMDB file: lmdb-js shares one environment
// between the threads of a process, so this is a second reader of the live file, not a copy.
import fs from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { BboltWriter } from './bbolt_write.js';
import {
  alarmEntry,
  ETCD_BUCKETS,
  ETCD_META_KEYS,
  leaseEntry,
  memberEntry,
  removedMemberEntry,
  sortEntries,
  type BucketEntry,
} from './etcd_buckets.js';
import { metaKey } from '../mvcc/backend.js';
import { COMMITTED_REVISION_META_KEY } from '../mvcc/store.js';
import { readU64, revKeyMain } from '../mvcc/revision.js';
import { ETCD_CLUSTER_VERSION } from '../config/version.js';

/** What to export, and where. */
export interface ExportOptions {
  /** The member's LMDB file (<data-dir>/member/snap/db). */
  lmdbPath: string;
  /** The bbolt file to create (it must not exist). */
  outPath: string;
  /** Set cancel[0] to 1 to stop the export (it throws ExportCancelled); checked every few thousand records. */
  cancel?: Int32Array;
}

/** What was exported. */
export interface ExportResult {
  sizeBytes: number;
  /** The newest revision in the file. */
  revision: number;
  /** The applied index the file's state is at (its meta consistent_index). */
  consistentIndex: number;
  /** Records of the key bucket (revisions). */
  keyRecords: number;
}

export class ExportCancelled extends Error {
  constructor() {
    super('snapshot: export cancelled');
  }
}

/** Records between two looks at the cancel flag. */
const CANCEL_CHECK_RECORDS = 4096;

type Txn = ReturnType<RootDatabase['useReadTransaction']>;

/**
 * Writes the bbolt file of the backend's state at one instant. Synchronous: meant for a worker thread.
 *
 *   const r = exportBackend({ lmdbPath: '/data/member/snap/db', outPath: '/tmp/snap.db' });
 */
export function exportBackend(o: ExportOptions): ExportResult {
  const env = open<Buffer, Buffer>({
    path: o.lmdbPath,
    noSubdir: true,
    readOnly: true,
    maxDbs: 4,
    keyEncoding: 'binary',
    encoding: 'binary',
  });
  try {
    const keyDb = env.openDB<Buffer, Buffer>({ name: 'key', keyEncoding: 'binary', encoding: 'binary' });
    const metaDb = env.openDB<Buffer, Buffer>({ name: 'meta', keyEncoding: 'binary', encoding: 'binary' });
    const txn = env.useReadTransaction();
    try {
      return exportView(keyDb, metaDb, txn, o);
    } finally {
      txn.done();
    }
  } finally {
    void env.close();
  }
}

function exportView(keyDb: Database<Buffer, Buffer>, metaDb: Database<Buffer, Buffer>, txn: Txn, o: ExportOptions): ExportResult {
  const scan = (bucket: string): BucketEntry[] => {
    const prefix = metaKey(bucket, new Uint8Array(0));
    const end = Buffer.from(prefix);
    end[end.length - 1]++;
    const out: BucketEntry[] = [];
    for (const { key, value } of metaDb.getRange({ start: prefix, end, transaction: txn })) {
      out.push([Buffer.from(key.subarray(prefix.length)), Buffer.from(value)]);
    }
    return out;
  };
  const metaOf = new Map(scan('meta').map(([k, v]) => [Buffer.from(k).toString('latin1'), v]));
  const committed = metaOf.get(COMMITTED_REVISION_META_KEY);
  // Revisions past it are chunks of a commit still going in (Backend.commit): not part of this state.
  const committedRev = committed !== undefined ? readU64(committed, 0) : Number.POSITIVE_INFINITY;
  const ci = metaOf.get('consistent_index');
  const cancel = o.cancel;
  const checkCancel = (): void => {
    if (cancel !== undefined && Atomics.load(cancel, 0) !== 0) throw new ExportCancelled();
  };

  const small: Record<string, BucketEntry[]> = {
    alarm: sortEntries(
      scan('alarm').flatMap(([k]): BucketEntry[] => {
        const e = alarmEntry(k);
        return e === undefined ? [] : [e];
      }),
    ),
    auth: scan('auth'),
    authRoles: scan('authRoles'),
    authUsers: scan('authUsers'),
    cluster: [[Buffer.from('clusterVersion'), Buffer.from(ETCD_CLUSTER_VERSION)]],
    lease: scan('lease').map(([k, v]) => leaseEntry(k, v)),
    members: sortEntries(scan('members').map(([, v]) => memberEntry(v))),
    members_removed: sortEntries(scan('members_removed').map(([k]) => removedMemberEntry(k))),
    meta: sortEntries(ETCD_META_KEYS.flatMap((k): BucketEntry[] => (metaOf.has(k) ? [[Buffer.from(k), metaOf.get(k)!]] : []))),
  };
  // etcd's auth store writes revision 1 when it creates its bucket; tetcd only once something changes.
  if (!small.auth.some(([k]) => Buffer.from(k).toString() === 'authRevision')) {
    const one = Buffer.alloc(8);
    one.writeBigUInt64BE(1n);
    small.auth = sortEntries([...small.auth, [Buffer.from('authRevision'), one]]);
  }

  const fd = fs.openSync(o.outPath, 'wx', 0o600);
  let revision = 0;
  let keyRecords = 0;
  let sizeBytes: number;
  try {
    const w = new BboltWriter(fd);
    for (const name of ETCD_BUCKETS) {
      const b = w.bucket(Buffer.from(name));
      if (name === 'key') {
        for (const { key, value } of keyDb.getRange({ transaction: txn })) {
          const main = revKeyMain(key);
          if (main > committedRev) break;
          b.add(key, value);
          revision = main;
          if (++keyRecords % CANCEL_CHECK_RECORDS === 0) checkCancel();
        }
      } else {
        for (const [k, v] of small[name]) b.add(k, v);
      }
      b.end();
      checkCancel();
    }
    sizeBytes = w.finish();
  } finally {
    fs.closeSync(fd);
  }
  return { sizeBytes, revision, consistentIndex: ci !== undefined ? readU64(ci, 0) : 0, keyRecords };
}
