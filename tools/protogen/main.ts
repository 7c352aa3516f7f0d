// CLI of the code generator: `node dist/tools/protogen/main.js [--check]` (or `npm run protogen`).
// Writes src/proto/*.ts from src/proto/*.proto; --check only reports files that are out of date.
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generateAll } from './generate.js';
import { findRepoRoot } from './paths.js';

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const unknown = argv.filter((a) => a !== '--check');
  if (unknown.length > 0) {
    process.stderr.write(`protogen: unknown argument ${unknown[0]}\nusage: protogen [--check]\n`);
    return 2;
  }
  const root = findRepoRoot(import.meta.url);
  let stale = 0;
  for (const f of generateAll(root)) {
    const abs = join(root, f.path);
    const current = existsSync(abs) ? readFileSync(abs, 'utf8') : undefined;
    if (current === f.content) continue;
    stale++;
    if (check) {
      process.stdout.write(`out of date: ${f.path}\n`);
    } else {
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(abs, f.content);
      process.stdout.write(`wrote ${f.path}\n`);
    }
  }
  if (check && stale > 0) return 1;
  if (stale === 0) process.stdout.write('protogen: everything up to date\n');
  return 0;
}

process.exitCode = main(process.argv.slice(2));
