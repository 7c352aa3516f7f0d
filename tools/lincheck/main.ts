// `node dist/tools/lincheck/main.js history.json [--time-budget-ms N]`: checks a saved history (the fault
// tests save one when a check fails) and prints the verdict; exit 0 = ok, 1 = violation, 2 = unknown.
import { readFileSync } from 'node:fs';
import { historyFromJson } from './history.js';
import { checkHistory } from './check.js';

function main(argv: string[]): number {
  let file: string | undefined;
  let timeBudgetMs = 120_000;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--time-budget-ms') timeBudgetMs = Number(argv[++i]);
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: lincheck <history.json> [--time-budget-ms N]\n');
      return 0;
    } else file = a;
  }
  if (file === undefined || !Number.isFinite(timeBudgetMs)) {
    process.stderr.write('usage: lincheck <history.json> [--time-budget-ms N]\n');
    return 2;
  }
  const ops = historyFromJson(readFileSync(file, 'utf8'));
  const r = checkHistory(ops, { timeBudgetMs });
  process.stdout.write(r.summary + '\n');
  if (r.report) process.stdout.write(r.report + '\n');
  return r.verdict === 'ok' ? 0 : r.verdict === 'violation' ? 1 : 2;
}

process.exitCode = main(process.argv.slice(2));
