// `tetcd snapshot status`: etcdctl's summary of a snapshot file (clientv3/snapshot v3_snapshot.go Status):
// bbolt's integrity check first, then a crc32 (Castagnoli) over every top-level bucket's name and records in
// order, the newest revision of the key bucket, the record count and the database's size in use.
import fs from 'node:fs';
import { crc32c } from '../crc32c.js';
import { revKeyMain } from '../mvcc/revision.js';
import { BboltFile } from './bbolt_read.js';

/** What `snapshot status` prints (etcd's snapshot.Status). */
export interface SnapshotStatus {
  /** crc32 (Castagnoli) over every bucket name, key and value in order, as etcdctl computes it. */
  hash: number;
  /** The newest main revision in the key bucket. */
  revision: number;
  /** Entries in all buckets. */
  totalKey: number;
  /** The database's bytes in use (bbolt's tx.Size()). */
  totalSize: number;
}

/** Opens a snapshot file as etcdctl does for status: any size, bbolt's integrity check first. */
export function snapshotStatus(file: string): SnapshotStatus {
  fs.statSync(file);
  const db = BboltFile.open(file);
  try {
    const errs = db.check();
    if (errs.length > 0) throw new Error(`snapshot file integrity check failed. ${errs.length} errors found.\n` + errs.join('\n'));
    let hash = 0;
    let revision = 0;
    let totalKey = 0;
    for (const name of db.bucketNames()) {
      const entries = db.bucket(name);
      if (entries === undefined) throw new Error(`cannot get hash of bucket ${name.toString()}`);
      hash = crc32c(hash, name);
      const isKey = name.toString('latin1') === 'key';
      for (const e of entries) {
        hash = crc32c(hash, e.key);
        // A nested bucket's value is nil to bbolt's ForEach.
        if (!e.bucket) hash = crc32c(hash, e.value);
        if (isKey) revision = e.key.length >= 8 ? revKeyMain(e.key) : 0;
        totalKey++;
      }
    }
    return { hash: hash >>> 0, revision, totalKey, totalSize: db.sizeBytes };
  } finally {
    db.close();
  }
}
