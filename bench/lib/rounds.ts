// Rounds beside etcd: each round runs both servers, alternating which goes first, and the medians of what the
// rounds measured become a markdown table with the tetcd/etcd ratio.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerKind } from './servers.js';
import { median } from './stats.js';

/** One round's measures by name. */
export type Measures = Record<string, number>;

/**
 * Runs `rounds` rounds of `round(kind, dir)` for etcd and tetcd in alternating order, each in a fresh temp dir
 * (removed after it), printing each result; returns the results by server.
 */
export async function alternatingRounds<R extends Measures>(
  rounds: number,
  tag: string,
  round: (kind: ServerKind, dir: string) => Promise<R>,
): Promise<Record<ServerKind, R[]>> {
  const rows: Record<ServerKind, R[]> = { etcd: [], tetcd: [] };
  for (let r = 0; r < rounds; r++) {
    const order: ServerKind[] = r % 2 === 0 ? ['etcd', 'tetcd'] : ['tetcd', 'etcd'];
    for (const kind of order) {
      const dir = mkdtempSync(join(tmpdir(), `bench-${tag}-${kind}-`));
      try {
        const row = await round(kind, dir);
        rows[kind].push(row);
        process.stdout.write(`round ${r + 1} ${kind}: ${JSON.stringify(row)}\n`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return rows;
}

/** The markdown table of each measure's median for etcd and tetcd and their ratio (values to `digits` places). */
export function medianTable(rows: Record<ServerKind, readonly Measures[]>, digits = 2): string[] {
  const lines = ['| measure | etcd | tetcd | tetcd/etcd |', '|---|---|---|---|'];
  for (const m of Object.keys(rows.etcd[0] ?? {})) {
    const e = median(rows.etcd.map((x) => x[m]!));
    const t = median(rows.tetcd.map((x) => x[m]!));
    lines.push(`| ${m} | ${e.toFixed(digits)} | ${t.toFixed(digits)} | ${(t / e).toFixed(2)} |`);
  }
  return lines;
}
