// Biome (biome.json) over the repository: no lint findings, warnings included, and every file formatted as
// `npm run format` would write it. `npm run lint` runs both checks (and the import rules) by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { findRepoRoot } from '../../tools/protogen/paths.js';

const root = findRepoRoot(import.meta.url);

/** Runs biome with `args` at the repository root; exit code and everything it printed. */
function biome(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(join(root, 'node_modules', '.bin', 'biome'), [...args, '--colors=off', '--max-diagnostics=20', '.'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('biome lint: no findings (warnings count)', () => {
  const r = biome(['lint', '--error-on-warnings']);
  assert.is(r.status, 0, `biome lint failed (run \`npx biome lint .\`):\n${r.output}`);
});

test('biome format: every file is formatted (`npm run format` writes them)', () => {
  const r = biome(['format']);
  assert.is(r.status, 0, `files are not formatted (run \`npm run format\`):\n${r.output}`);
});

test.run();
