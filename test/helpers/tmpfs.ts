// A real full disk for tests: a small tmpfs mounted on a temp dir (needs root). Whether mounting works is
// decided once, when the tests are registered: a test that needs it runs, or is registered with test.skip
// (counted as skipped, with the reason printed) — or, in CI (CI=true) or under TETCD_REQUIRE_ORACLE=1,
// fails with the reason, so a machine that silently cannot test a full disk never looks green.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Callback, Test } from 'uvu';
import * as assert from 'uvu/assert';

const mounted = new Set<string>();
let exitHooked = false;
let probed: string | null | undefined;

/** Mounts a tmpfs of `sizeBytes` on the existing directory `dir`; undo with unmountTmpfs (also done at exit). */
export function mountTmpfs(dir: string, sizeBytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  mounted.add(dir);
  if (!exitHooked) {
    exitHooked = true;
    // A test that throws past its finally (or a crash) must not leave mounts behind.
    process.on('exit', () => {
      for (const d of mounted) unmountTmpfs(d, true);
    });
  }
}

/** Unmounts what mountTmpfs mounted on `dir`; `lazy` detaches it even while files on it are still open. */
export function unmountTmpfs(dir: string, lazy = false): void {
  if (!mounted.has(dir)) return;
  try {
    execFileSync('umount', lazy ? ['-l', dir] : [dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    if (lazy) return;
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    mounted.delete(dir);
    throw e;
  }
  mounted.delete(dir);
}

/** Bytes a non-root writer could still write on the filesystem holding `dir`. */
function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/**
 * Fills the filesystem holding `dir` to the last byte with a file `name` (tmpfs counts pages, so a byte-exact
 * size cannot be planned): writes chunks until ENOSPC. Returns the file's path; delete it to free the space.
 */
export function fillDisk(dir: string, name = 'filler'): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(0));
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let small = Buffer.alloc(4096, 0x5a);
  for (;;) {
    try {
      writeFileSync(path, freeBytes(dir) >= chunk.length ? chunk : small, { flag: 'a' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      if (small.length === 1) return path;
      small = small.subarray(0, small.length >> 1);
    }
  }
}

/** Null when a tmpfs can be mounted here (probed once by mounting and unmounting one), else why not. */
export function tmpfsMissing(): string | null {
  if (probed !== undefined) return probed;
  const dir = mkdtempSync(join(tmpdir(), 'tetcd-tmpfs-probe-'));
  try {
    mountTmpfs(dir, 64 * 1024);
    unmountTmpfs(dir);
    probed = null;
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    probed = `cannot mount a tmpfs (${stderr || (e as Error).message}; it needs root)`;
  } finally {
    rmdirSync(dir);
  }
  return probed;
}

/** Whether a test that cannot run here must fail instead of being skipped. */
function mustRun(): boolean {
  return process.env.CI === 'true' || process.env.TETCD_REQUIRE_ORACLE === '1';
}

/**
 * Returns how to register a test that needs a tmpfs: `test` itself when mounting works, else `test.skip`
 * (after printing why) — or, in CI or under TETCD_REQUIRE_ORACLE=1, a registration whose test fails with
 * the reason.
 *
 *   const onTmpfs = tmpfsGate(test);  onTmpfs('ENOSPC on a full disk', async () => { ... });
 */
export function tmpfsGate<T>(test: Test<T>): (name: string, fn: Callback<T>) => void {
  const missing = tmpfsMissing();
  if (missing === null) return test;
  if (mustRun()) {
    return (name) => test(name, () => assert.unreachable(`${missing} (required: CI=true or TETCD_REQUIRE_ORACLE=1)`));
  }
  return (name) => {
    process.stdout.write(`SKIP ${name}: ${missing}\n`);
    test.skip(name);
  };
}
