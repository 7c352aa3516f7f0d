// Crash safety: a child appends concurrently and reports every acknowledged save; the parent SIGKILLs it at
// random moments (36 times over one log) and checks that every acknowledged entry is in the recovered log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../../src/wal/native.js';
import { recoverWal } from '../../src/wal/recovery.js';
import { cleanup, entryBytes, makeEntry, rng, tempDir } from './helpers.js';

const KILLS = 36;
const child = fileURLToPath(new URL('./crash-child.js', import.meta.url));
const crc = loadNative().crc32c;

interface Round {
  acked: number;
  lines: number;
}

function runChild(dir: string, seed: number, killAfterMs: number): Promise<Round> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    let acked = 0;
    let lines = 0;
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error('child never became ready'));
    }, 20_000);
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') {
          timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
          continue;
        }
        const n = Number(line);
        if (Number.isSafeInteger(n) && n > acked) acked = n;
        lines++;
      }
    });
    p.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child ended by itself: code ${code} signal ${signal}`));
      else resolve({ acked, lines });
    });
  });
}

test(`SIGKILL ${KILLS} times mid-group-commit: every acknowledged entry survives, nothing is invented`, async () => {
  const root = tempDir('crash');
  const dir = join(root, 'wal');
  const r = rng(2024);
  let ackedMax = 0;
  let totalAcks = 0;
  let grew = 0;
  try {
    for (let round = 0; round < KILLS; round++) {
      const killAfterMs = 5 + Math.floor(r() * 120);
      const { acked, lines } = await runChild(dir, round, killAfterMs);
      totalAcks += lines;
      ackedMax = Math.max(ackedMax, acked);
      const rec = recoverWal(dir, { index: 0, term: 0 }, crc);
      const last = rec.entries.length;
      assert.ok(last >= ackedMax, `round ${round}: acknowledged up to ${ackedMax}, recovered only ${last}`);
      if (last > ackedMax) grew++;
      for (let i = 0; i < rec.entries.length; i++) {
        const e = rec.entries[i]!;
        if (e.index !== i + 1) assert.unreachable(`round ${round}: entry ${i + 1} has index ${e.index}`);
        assert.equal(e, makeEntry(i + 1, 1, entryBytes(i + 1)), `round ${round}: entry ${i + 1} differs`);
      }
      assert.ok(rec.hardState !== undefined && rec.hardState.commit >= ackedMax, `round ${round}: hard state behind`);
      ackedMax = Math.max(ackedMax, last); // what was recovered is now the log the next child continues
    }
    assert.ok(totalAcks > KILLS * 5, `too few acknowledgements to mean anything: ${totalAcks}`);
    const segs = (await import('node:fs')).readdirSync(dir).filter((n) => n.endsWith('.wal')).length;
    console.log(
      `  ${KILLS} kills, ${totalAcks} acknowledged saves, log of ${ackedMax} entries in ${segs} segments; ` +
        `${grew} rounds left durable-but-unacknowledged entries`,
    );
  } finally {
    cleanup(root);
  }
});

test.run();
