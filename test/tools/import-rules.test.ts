// DESIGN's import rules (.dependency-cruiser.cjs) hold over src, bench, tools and test; and the same rules, run over
// test/fixtures/import-rules (a tree that breaks each of them), report every break, so a rule that stops
// matching (a renamed directory, a broken regular expression, imports that no longer resolve) fails here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { findRepoRoot } from '../../tools/protogen/paths.js';

const root = findRepoRoot(import.meta.url);
const CONFIG = join(root, '.dependency-cruiser.cjs');
const FIXTURE = join(root, 'test', 'fixtures', 'import-rules');

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

interface CruiseSummary {
  violations: Violation[];
  totalCruised: number;
  totalDependenciesCruised: number;
  ruleSetUsed: { forbidden: { name: string }[] };
}

/** Runs depcruise in `cwd` over `dirs` with the project's rules; its JSON summary. */
function cruise(cwd: string, dirs: string[]): CruiseSummary {
  const bin = join(root, 'node_modules', '.bin', 'depcruise');
  const r = spawnSync(bin, [...dirs, '--config', CONFIG, '--output-type', 'json'], { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  // depcruise exits with the number of errors; the JSON is on stdout either way.
  if (!r.stdout.startsWith('{')) throw new Error(`depcruise failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  return (JSON.parse(r.stdout) as { summary: CruiseSummary }).summary;
}

/** One line per violation; a package is named by its name, wherever node_modules is. */
const show = (v: Violation): string => `${v.rule.name}: ${v.from} → ${v.to.replace(/^.*node_modules\/([^/]+)\/.*$/, 'package $1')}`;

test('src, bench, tools and test follow the import rules', () => {
  const s = cruise(root, ['src', 'bench', 'tools', 'test']);
  assert.equal(
    s.violations.map(show),
    [],
    `depcruise found violations (run \`npm run lint:imports\`):\n${s.violations.map(show).join('\n')}`,
  );
  // An empty cruise would pass the line above: make sure it read the tree.
  assert.ok(s.totalCruised > 200, `only ${s.totalCruised} modules cruised`);
  assert.ok(s.totalDependenciesCruised > 800, `only ${s.totalDependenciesCruised} imports cruised`);
});

test('every rule reports its break in the fixture tree, and nothing else is reported', () => {
  const s = cruise(FIXTURE, ['src', 'bench', 'tools']);
  const found = s.violations.map(show).sort();
  assert.equal(found, [
    'api-not-client-procs: src/api/a.ts → src/client_procs/host.ts',
    'api-not-client-procs: src/api/a.ts → src/workers/forwarder.ts',
    'base-imports-base-only: src/log.ts → src/server/member.ts',
    'bench-not-test: bench/load.ts → test/helper.ts',
    'config-not-cli-nor-wal: src/config/flags.ts → src/cli/main.ts',
    'config-not-cli-nor-wal: src/config/flags.ts → src/wal/index.ts',
    'core-not-up: src/raft/raft.ts → src/server/member.ts',
    'core-not-up: src/wal/index.ts → src/server/member.ts',
    'front-not-cli: src/api/a.ts → src/cli/main.ts',
    'lease-talks-to-the-store-through-interfaces: src/lease/lessor.ts → src/mvcc/store.ts',
    'mvcc-knows-no-raft: src/mvcc/store.ts → src/raft/raft.ts',
    'no-circular: src/api/a.ts → src/api/b.ts',
    'not-to-unresolvable: src/server/member.ts → ./missing.js',
    'proto-is-a-leaf: src/proto/kv.ts → src/errors.ts',
    'raft-imports-only-raft: src/raft/raft.ts → fs',
    'raft-imports-only-raft: src/raft/raft.ts → package sorted-btree',
    'raft-imports-only-raft: src/raft/raft.ts → src/server/member.ts',
    'server-not-up: src/server/member.ts → src/api/a.ts',
    'src-not-bench-test-tools: src/server/member.ts → test/helper.ts',
    'tools-not-bench-nor-test: tools/gen.ts → bench/load.ts',
  ]);
  // A rule added to the config needs a break in the fixture too.
  const reported = new Set(s.violations.map((v) => v.rule.name));
  const untested = s.ruleSetUsed.forbidden.map((r) => r.name).filter((n) => !reported.has(n));
  assert.equal(untested, [], `rules with no break in ${FIXTURE}: ${untested.join(', ')}`);
});

test.run();
