// Runs every scenario in test/raft/testdata/*.txt and compares each command's output with the expected
// output in the file. TETCD_REWRITE=1 rewrites the files with the actual outputs (read the diff!).
// TETCD_SCENARIO=name runs only files whose name contains it.
//
// A rewritten transcript proves only that nothing changed, so each scenario's property is also checked on
// the run itself (scenario/properties.ts), in both modes: a rewrite cannot make a broken property pass.

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatFile, parseFile } from './scenario/datadriven.js';
import { Env } from './scenario/env.js';
import { PROPERTIES, checkGeneral } from './scenario/properties.js';

/** The source testdata directory (the compiled test lives elsewhere; walk up to the checkout). */
function testdataDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const cand = join(dir, 'test', 'raft', 'testdata');
    if (existsSync(cand)) return cand;
    dir = dirname(dir);
  }
  throw new Error('test/raft/testdata not found above ' + fileURLToPath(import.meta.url));
}

const dir = testdataDir();
const rewrite = process.env.TETCD_REWRITE === '1';
const only = process.env.TETCD_SCENARIO;
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .filter((f) => only === undefined || f.includes(only))
  .sort();

test('there are scenario files', () => {
  assert.ok(files.length > 0, `no .txt files in ${dir}`);
});

test('every scenario file states its property', () => {
  const all = readdirSync(dir)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  assert.equal(
    all.filter((f) => PROPERTIES[f] === undefined),
    [],
    'scenarios without an entry in scenario/properties.ts',
  );
  assert.equal(
    Object.keys(PROPERTIES)
      .filter((f) => !all.includes(f))
      .sort(),
    [],
    'properties of scenarios that do not exist',
  );
});

for (const f of files) {
  test(`scenario ${f}`, () => {
    const path = join(dir, f);
    const { cases, trailer } = parseFile(readFileSync(path, 'utf8'));
    const env = new Env();
    const outputs: string[] = [];
    for (const c of cases) {
      const got = env.handle(c);
      outputs.push(got);
      if (!rewrite && got !== c.expected) {
        assert.fixture(got, c.expected, `${f}:${c.line}: ${c.cmdLine}`);
      }
    }
    if (rewrite) writeFileSync(path, formatFile(cases, outputs, trailer));
    checkGeneral(env.trace);
    PROPERTIES[f]?.(env.trace);
  });
}

test.run();
