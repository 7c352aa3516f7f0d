// Raft snapshot metadata on disk (member/snap/<term>-<index>.snap): where the state machine was
// snapshotted and the membership at that point. The snapshot's data is the backend itself
// (member/snap/db), so these files are small; each carries a CRC and a torn one is ignored in
// favour of the previous one.
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '../crc32c.js';

export interface SnapMeta {
  index: number;
  term: number;
  voters: bigint[];
  learners: bigint[];
}

const SUFFIX = '.snap';

function fileName(m: SnapMeta): string {
  return `${m.term.toString(16).padStart(16, '0')}-${m.index.toString(16).padStart(16, '0')}${SUFFIX}`;
}

function encode(m: SnapMeta): Buffer {
  const body = Buffer.from(
    JSON.stringify({
      index: m.index,
      term: m.term,
      voters: m.voters.map((v) => v.toString(16)),
      learners: m.learners.map((v) => v.toString(16)),
    }),
  );
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(crc32c(0, body), 0);
  body.copy(out, 4);
  return out;
}

function decode(buf: Buffer): SnapMeta | undefined {
  if (buf.length < 4) return undefined;
  const body = buf.subarray(4);
  if (crc32c(0, body) !== buf.readUInt32BE(0)) return undefined;
  const j = JSON.parse(body.toString()) as { index: number; term: number; voters: string[]; learners: string[] };
  return { index: j.index, term: j.term, voters: j.voters.map((v) => BigInt('0x' + v)), learners: j.learners.map((v) => BigInt('0x' + v)) };
}

/** Newest valid snapshot metadata in dir, or undefined. */
export function loadNewestSnap(dir: string): SnapMeta | undefined {
  return loadSnaps(dir)[0];
}

/** Every valid snapshot metadata in dir, newest first (torn files are skipped). */
export function loadSnaps(dir: string): SnapMeta[] {
  if (!fs.existsSync(dir)) return [];
  const names = fs
    .readdirSync(dir)
    .filter((n) => n.endsWith(SUFFIX))
    .sort()
    .reverse();
  const out: SnapMeta[] = [];
  for (const n of names) {
    const m = decode(fs.readFileSync(path.join(dir, n)));
    if (m) out.push(m);
  }
  return out;
}

/** Removes one snapshot's metadata file (one the WAL has no marker for). */
export function removeSnap(dir: string, m: SnapMeta): void {
  fs.rmSync(path.join(dir, fileName(m)), { force: true });
}

/** Writes snapshot metadata durably (temp file, fsync, rename, fsync dir) and keeps the newest `keep` files. */
export async function saveSnap(dir: string, m: SnapMeta, keep: number): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true });
  const final = path.join(dir, fileName(m));
  const tmp = final + '.tmp';
  const fh = await fs.promises.open(tmp, 'w');
  try {
    await fh.writeFile(encode(m));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, final);
  const dh = await fs.promises.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
  const names = (await fs.promises.readdir(dir)).filter((n) => n.endsWith(SUFFIX)).sort();
  for (const n of names.slice(0, Math.max(0, names.length - keep))) await fs.promises.rm(path.join(dir, n), { force: true });
}
