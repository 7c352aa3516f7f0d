// Shared bits of the WAL tests: temp dirs, deterministic entries, and a model of what recovery must return.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WalEntry, WalHardState, WalSnapshot } from '../../src/wal/index.js';

/** A fresh directory under /tmp; remove it with cleanup(). */
export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `tetcd-wal-${tag}-`));
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Entry `index` of term `term` whose data is derived from both (so a wrong or shuffled entry is visible). */
export function makeEntry(index: number, term: number, bytes = 40): WalEntry {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (index * 31 + term * 7 + i) & 0xff;
  return { index, term, type: index % 3, data };
}

/** Deterministic PRNG (mulberry32) so a failing run can be replayed from its seed. */
export { rng } from '../../tools/lib/rng.js';

/** What a sequence of saves must recover to: Raft's overwrite rule applied in call order. */
export class LogModel {
  entries: WalEntry[] = [];
  hardState: WalHardState | undefined;
  snapshots: WalSnapshot[] = [{ index: 0, term: 0 }];

  save(hs: WalHardState | undefined, entries: readonly WalEntry[]): void {
    for (const e of entries) {
      this.entries.length = e.index - 1;
      this.entries.push(e);
    }
    if (hs) this.hardState = hs;
  }

  snapshot(s: WalSnapshot): void {
    this.snapshots.push(s);
  }
}

/** Entry sizes of the crash test vary with the index so that a shuffled or torn entry would not compare equal. */
export function entryBytes(index: number): number {
  return 10 + ((index * 7919) % 300);
}
