// Everything a test starts is registered here and torn down when the test process ends — normally, by an
// uncaught error, or by SIGINT/SIGTERM — so a failing test never leaves a member running or a temp dir behind.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  children.clear();
  if (process.env.TETCD_KEEP_TMP !== '1') {
    for (const d of dirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
  }
  dirs.clear();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/**
 * Registers a child process to be SIGKILLed when the test process exits; unregisters it when it exits.
 * The child and its pipes are unref'd: a test that fails with members still running must not keep the
 * event loop (and so the test process) alive forever — 'exit' must fire so the children get killed.
 * Code that awaits a tracked child must therefore hold a ref'd timer while it waits.
 */
export function track(child: ChildProcess): ChildProcess {
  hook();
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) (s as { unref?: () => void } | null)?.unref?.();
  return child;
}

/** Resolves when `done` settles, keeping the event loop alive meanwhile (see track); rejects after `timeoutMs`. */
export function awaitWithTimer<T>(done: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${timeoutMs} ms`)), timeoutMs);
    done.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e as Error);
      },
    );
  });
}

/** A fresh directory under the system temp dir, removed at exit (kept when TETCD_KEEP_TMP=1). */
export function tempDir(prefix = 'tetcd-test-'): string {
  hook();
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}

/** How many tracked children are still running (tests assert 0 after stopping everything). */
export function runningChildren(): number {
  let n = 0;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) n++;
  return n;
}

/** Whether a process with this pid exists (signal 0 probes without signalling). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
