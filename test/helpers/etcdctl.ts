// Runs the real `etcdctl` (API v3) against one endpoint and returns exit code, stdout and stderr.
import { spawn } from 'node:child_process';
import { track } from './cleanup.js';

/** What one etcdctl invocation produced. */
export interface CtlResult {
  /** Exit status; -1 when it was killed for running past the timeout. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CtlOptions {
  /** Bytes written to stdin (then closed); stdin is empty otherwise. */
  stdin?: string | Uint8Array;
  /** Default 20 s. */
  timeoutMs?: number;
}

const OUTPUT_MAX_BYTES = 16 * 1024 * 1024;

/**
 * `etcdctl --endpoints=<endpoint> <args...>`.
 *
 *   const r = await etcdctl(m.endpoint, ['put', 'foo', 'bar']); // { code: 0, stdout: 'OK\n', stderr: '' }
 */
export function etcdctl(endpoint: string, args: readonly string[], opts: CtlOptions = {}): Promise<CtlResult> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn('etcdctl', [`--endpoints=${endpoint}`, ...args], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, ETCDCTL_API: '3' },
      }),
    );
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    const collect = (into: Buffer[]) => (c: Buffer) => {
      outBytes += c.length;
      if (outBytes <= OUTPUT_MAX_BYTES) into.push(c);
    };
    child.stdout!.on('data', collect(out));
    child.stderr!.on('data', collect(err));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 20_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      let stderr = Buffer.concat(err).toString();
      if (timedOut) stderr += `\n[etcdctl killed after ${opts.timeoutMs ?? 20_000} ms]`;
      resolve({ code: timedOut ? -1 : (code ?? -1), stdout: Buffer.concat(out).toString(), stderr });
    });
    child.stdin!.on('error', () => {
      /* etcdctl may exit before reading all of stdin */
    });
    child.stdin!.end(opts.stdin ?? '');
  });
}
