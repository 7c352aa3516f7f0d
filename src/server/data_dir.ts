// Checks a data dir before a member opens anything in it: that it can be written at all (etcd's own check, with
// etcd's message), and that its files are in a format this tetcd reads. A data dir carries its format in
// member/tetcd-format, written at the first start; a data dir of etcd itself (a bbolt backend) or of a newer
// tetcd is refused with what to do instead, before anything in it is touched (LMDB would crash on a bbolt file).
import fs from 'node:fs';
import path from 'node:path';
import { syncDir } from '../wal/index.js';

/** The data dir format this tetcd writes and reads. Raise it when the WAL's or the backend's layout changes. */
export const DATA_DIR_FORMAT = 1;
const FORMAT_FILE = 'tetcd-format';
/** bbolt's meta page magic (etcd's backend), a little-endian u32 after the 16-byte page header. */
const BBOLT_MAGIC = 0xed0cdaed;
const BBOLT_MAGIC_OFFSET = 16;

/** Why a syscall failed, worded as Go words it (etcd's messages carry Go's texts). */
function goErrno(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const texts: Record<string, string> = {
    EROFS: 'read-only file system',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOSPC: 'no space left on device',
    ENOTDIR: 'not a directory',
    EIO: 'input/output error',
  };
  return (e.code && texts[e.code]) ?? e.message;
}

/**
 * etcd's TouchDirAll: creates the dir if missing, then writes and removes `.touch` in it. A read-only or
 * unwritable data dir is refused here with etcd's text (`cannot access data directory: open DIR/.touch:
 * read-only file system`), not later by whichever file happens to be opened first.
 */
export function checkDataDirWritable(dataDir: string): void {
  try {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new Error(`cannot access data directory: mkdir ${dataDir}: ${goErrno(err)}`);
  }
  const touch = path.join(dataDir, '.touch');
  try {
    fs.writeFileSync(touch, '', { mode: 0o600 });
  } catch (err) {
    throw new Error(`cannot access data directory: open ${touch}: ${goErrno(err)}`);
  }
  try {
    fs.unlinkSync(touch);
  } catch (err) {
    throw new Error(`cannot access data directory: remove ${touch}: ${goErrno(err)}`);
  }
}

/**
 * Refuses a data dir this tetcd cannot read: one marked with a newer format, or etcd's own (its backend is a
 * bbolt file). Reads only. A data dir with neither marker nor foreign files is new, or from a tetcd from before
 * the marker (same format): markDataDirFormat marks it once it is open.
 */
export function checkDataDirFormat(dataDir: string): void {
  const memberDir = path.join(dataDir, 'member');
  const marker = readFormat(memberDir);
  if (marker !== undefined) {
    if (marker > DATA_DIR_FORMAT) {
      throw new Error(
        `data dir ${dataDir} has format ${marker} (${path.join(memberDir, FORMAT_FILE)}), written by a newer tetcd; ` +
          `this tetcd reads format ${DATA_DIR_FORMAT} and older: run the newer tetcd on it, or move its data with ` +
          '`etcdctl snapshot save` (against the newer tetcd) and `tetcd snapshot restore`',
      );
    }
    return;
  }
  const db = path.join(memberDir, 'snap', 'db');
  if (isBbolt(db)) {
    throw new Error(
      `data dir ${dataDir} is an etcd data dir (${db} is a bbolt database); tetcd cannot run on it: ` +
        `take a snapshot with \`etcdctl snapshot save FILE\` (or copy ${db} and add --skip-hash-check) and ` +
        'create a tetcd data dir from it with `tetcd snapshot restore FILE --data-dir NEW_DIR`',
    );
  }
}

/** Marks the data dir with this tetcd's format (once; durable before the member serves anything). */
export function markDataDirFormat(dataDir: string): void {
  const memberDir = path.join(dataDir, 'member');
  if (readFormat(memberDir) !== undefined) return;
  const file = path.join(memberDir, FORMAT_FILE);
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify({ format: DATA_DIR_FORMAT })}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  syncDir(memberDir);
}

function readFormat(memberDir: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(memberDir, FORMAT_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const format = (JSON.parse(text) as { format?: unknown }).format;
  if (typeof format !== 'number' || !Number.isInteger(format) || format < 1) {
    throw new Error(`${path.join(memberDir, FORMAT_FILE)} is damaged (no format number): ${JSON.stringify(text.slice(0, 80))}`);
  }
  return format;
}

function isBbolt(file: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(BBOLT_MAGIC_OFFSET + 4);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    return n === head.length && head.readUInt32LE(BBOLT_MAGIC_OFFSET) === BBOLT_MAGIC;
  } finally {
    fs.closeSync(fd);
  }
}
