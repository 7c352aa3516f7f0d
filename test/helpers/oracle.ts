// The oracle is real etcd 3.4 + etcdctl. Compatibility tests run only when they are installed: in CI
// (TETCD_REQUIRE_ORACLE=1) their absence fails the run; elsewhere the tests are reported as skipped with
// the line that installs them. Also picks the system under test (TETCD_COMPAT_TARGET).
import { spawnSync } from 'node:child_process';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';

/** How to get the oracle on Debian/Ubuntu. */
export const ORACLE_INSTALL = 'sudo apt-get install -y etcd-server etcd-client';

/** Null when `etcd` and `etcdctl` run, else why not. */
export function oracleMissing(): string | null {
  for (const [bin, arg] of [
    ['etcd', '--version'],
    ['etcdctl', 'version'],
  ] as const) {
    const r = spawnSync(bin, [arg], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, ETCDCTL_API: '3' } });
    if (r.error || r.status !== 0) return `${bin} is not runnable (${r.error?.message ?? `exit ${r.status}`})`;
  }
  return null;
}

/**
 * Decides whether a compat suite runs. Returns `test` itself when the oracle is installed, otherwise
 * `test.skip` (after printing how to install it) — or, under TETCD_REQUIRE_ORACLE=1, registers one failing
 * test and returns `test.skip` for the rest.
 *
 *   const t = oracleGate(test);  t('put then get', async () => { ... });
 */
export function oracleGate<T>(test: Test<T>): Test<T>['skip'] | Test<T> {
  const missing = oracleMissing();
  if (missing === null) return test;
  if (process.env.TETCD_REQUIRE_ORACLE === '1') {
    test('oracle etcd/etcdctl is installed (TETCD_REQUIRE_ORACLE=1)', () => {
      assert.unreachable(`${missing}; install it with: ${ORACLE_INSTALL}`);
    });
  } else {
    process.stdout.write(`SKIP compatibility tests: ${missing}. Install the oracle with: ${ORACLE_INSTALL}\n`);
  }
  return test.skip;
}

/** The system under test: TETCD_COMPAT_TARGET=etcd runs etcd against itself (proves the harness), default tetcd. */
export function compatTarget(): 'etcd' | 'tetcd' {
  const t = process.env.TETCD_COMPAT_TARGET ?? 'tetcd';
  if (t !== 'etcd' && t !== 'tetcd') throw new Error(`TETCD_COMPAT_TARGET must be etcd or tetcd, got ${JSON.stringify(t)}`);
  return t;
}
