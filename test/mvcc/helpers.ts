// Shared bits of the mvcc tests: temp stores, byte helpers, readable kvs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mvcc, type MvccOptions } from '../../src/mvcc/index.js';
import { decodeKeyValue, type KeyValue } from '../../src/proto/kv.js';

/** Bytes of a latin1 string (test keys are short ASCII). */
export const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A fresh temp directory; remove it with cleanup(). */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tetcd-mvcc-'));
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Opens a store in a new temp dir. */
export async function openTemp(opts: Partial<MvccOptions> = {}): Promise<{ s: Mvcc; dir: string; path: string }> {
  const dir = tempDir();
  const path = join(dir, 'member', 'snap', 'db');
  const s = await Mvcc.open({ path, ...opts });
  return { s, dir, path };
}

/** "key=value@c<create>m<mod>v<version>" like the etcd probe output the expectations come from. */
export function show(kv: KeyValue): string {
  return `${Buffer.from(kv.key).toString('latin1')}=${Buffer.from(kv.value).toString('latin1')}@c${kv.create_revision}m${kv.mod_revision}v${kv.version}${kv.lease !== 0n ? 'l' + kv.lease : ''}`;
}

/** Encoded kvs → one string. */
export function showAll(kvs: Uint8Array[]): string {
  return kvs.map((k) => show(decodeKeyValue(k))).join(' ');
}

/** One put in its own write transaction; returns the new revision. */
export function put(s: Mvcc, key: string, value: string, lease = 0n): number {
  const t = s.write();
  t.put(b(key), b(value), lease);
  return t.end().rev;
}

/** One delete-range in its own write transaction. */
export function del(s: Mvcc, key: string, end?: string): { deleted: number; rev: number } {
  const t = s.write();
  const r = t.deleteRange(b(key), end === undefined ? undefined : b(end), false);
  t.end();
  return { deleted: r.deleted, rev: r.rev };
}
