// Kill-and-lose rounds for the power-loss tests: writers with their acknowledgements recorded, a SIGKILL of
// every member at once, the power-loss rollback of each member's unsynced changes (tools/powerloss), a
// restart, and the check that every acknowledged put is there with the revision its response reported.
import * as assert from 'uvu/assert';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { rollback, shimEnv } from '../../tools/powerloss/rollback.js';
import { KvClient, prefixEnd } from './grpc-kv.js';
import type { Member } from './member.js';
import { startPutLoops, type PutRecord } from './put_loops.js';

export type { PutRecord };

export const PREFIX = Buffer.from('pl/');

/** A put's value: its key, padded so a few hundred puts fill a small WAL segment and rotate it. */
function putValue(key: string): Buffer {
  return Buffer.from(key.padEnd(400, '.'));
}

/** Where a member's data dir and its journal live (siblings: the shim stashes by hard link). */
export function powerlossDirs(base: string, name: string): { dataDir: string; journal: string } {
  return { dataDir: join(base, name, 'data'), journal: join(base, name, 'powerloss') };
}

/** The environment of a member whose data dir is tracked by the shim. */
export function memberShimEnv(base: string, name: string, extra: Record<string, string> = {}): Record<string, string> {
  const d = powerlossDirs(base, name);
  // The shim tracks an existing root; the data dir itself counts as durable (made before the first start).
  mkdirSync(d.dataDir, { recursive: true });
  return shimEnv(d.dataDir, d.journal, extra);
}

/** Put loops (one per writer, rotating over endpoints) until stop() or a put without an answer. */
export function startWriters(
  endpoints: string[],
  writers: number,
  tag: string,
  records: PutRecord[],
): { stop: () => void; done: Promise<void> } {
  const clients = endpoints.map((e) => new KvClient(e));
  const loops = startPutLoops(clients, writers, (w, seq) => `pl/${tag}/${w}/${seq}`, records, putValue);
  return {
    stop: loops.stop,
    done: loops.done.then(() => {
      for (const c of clients) c.close();
    }),
  };
}

/** Rolls back each member's unsynced changes (all members lose power together); returns the summaries. */
export function powerLoss(base: string, members: readonly Member[], torn: boolean, seed: number): string[] {
  const out: string[] = [];
  for (const m of members) {
    assert.ok(!m.running(), `${m.name} still running at the power loss`);
    const d = powerlossDirs(base, m.name);
    const r = rollback({ root: d.dataDir, journal: d.journal, torn, seed: seed + out.length });
    out.push(`${m.name}: ${r.summary}${r.notes.length ? `; notes: ${r.notes.join('; ')}` : ''}`);
  }
  return out;
}

/** Every acknowledged put is present with its revision; nothing present was never written. */
export async function verifyAcked(endpoint: string, records: readonly PutRecord[], what: string): Promise<number> {
  const kv = new KvClient(endpoint);
  try {
    const r = await kv.range(PREFIX, prefixEnd(PREFIX), 30_000);
    const present = new Map(r.kvs.map((x) => [x.key.toString(), x]));
    const written = new Set(records.map((x) => x.key));
    for (const k of present.keys()) assert.ok(written.has(k), `${what}: key ${k} exists but was never written`);
    let acked = 0;
    for (const rec of records) {
      if (rec.outcome !== 'acked') continue;
      acked++;
      const kvr = present.get(rec.key);
      assert.ok(kvr, `${what}: acknowledged put ${rec.key} (revision ${rec.revision}) is missing`);
      assert.is(kvr.modRevision, rec.revision, `${what}: ${rec.key} mod_revision ${kvr.modRevision}, acknowledged ${rec.revision}`);
      assert.ok(kvr.value.equals(putValue(rec.key)), `${what}: ${rec.key} value`);
    }
    return acked;
  } finally {
    kv.close();
  }
}
