// The Go load generator on etcd's own client (bench/go/etcdload): built once per source change, offline, in
// GOPATH mode against Debian's golang-etcd-server-dev (clientv3 of etcd 3.4 and its grpc-go), and run as a
// child process that prints one JSON result.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian's Go packages live; clientv3 must be under it. */
const GOPATH = '/usr/share/gocode';
const CLIENTV3 = join(GOPATH, 'src', 'go.etcd.io', 'etcd', 'clientv3');
/** A run that has not printed its result this long after its planned end is killed. */
const RUN_GRACE_MS = 60_000;

/** What one run of the Go generator reports. */
export interface EtcdLoadResult {
  workload: string;
  requests: number;
  errors: number;
  firstError?: string;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  cpuSeconds: number;
}

/** One run: etcd's benchmark tool's shape (connections shared by clients) and what each request is. */
export interface EtcdLoadOptions {
  endpoints: readonly string[];
  /** TLS to the endpoints, verified with this CA file; cleartext without. */
  caFile?: string;
  conns: number;
  clients: number;
  /** Requests to send; or 0 and durationMs. */
  total: number;
  durationMs: number;
  workload:
    | { method: 'put'; keyBytes: number; valueBytes: number; keySpace: number }
    | { method: 'range'; key: string; serializable: boolean };
}

/** The generator's arguments for the options (exported for the test). */
export function etcdLoadArgs(o: EtcdLoadOptions): string[] {
  const args = ['--endpoints', o.endpoints.join(','), '--conns', String(o.conns), '--clients', String(o.clients)];
  if (o.caFile !== undefined) args.push('--cacert', o.caFile);
  if (o.total > 0) args.push('--total', String(o.total));
  else args.push('--duration', `${o.durationMs}ms`);
  const w = o.workload;
  if (w.method === 'put') {
    args.push(
      'put',
      '--key-size',
      String(w.keyBytes),
      '--val-size',
      String(w.valueBytes),
      '--sequential-keys',
      '--key-space-size',
      String(w.keySpace),
    );
  } else {
    args.push('range', '--key', w.key, '--consistency', w.serializable ? 's' : 'l');
  }
  return args;
}

/**
 * Builds bench/go/etcdload into `outDir` unless the binary is newer than its source; returns the binary's path.
 * Throws, saying what to install, when Go or etcd's Go sources are missing.
 */
export function buildEtcdLoad(root: string, outDir: string): string {
  const src = join(root, 'bench', 'go', 'etcdload');
  const main = join(src, 'main.go');
  const bin = join(outDir, 'etcdload');
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(main).mtimeMs) return bin;
  if (spawnSync('go', ['version']).error !== undefined || !existsSync(CLIENTV3)) {
    throw new Error('the Go generator needs Go and etcd 3.4 Go sources: apt-get install golang-go golang-etcd-server-dev');
  }
  mkdirSync(outDir, { recursive: true });
  const r = spawnSync('go', ['build', '-o', bin, '.'], {
    cwd: src,
    encoding: 'utf8',
    env: { ...process.env, GOPATH, GO111MODULE: 'off', GOFLAGS: '', GOCACHE: join(tmpdir(), 'tetcd-go-build-cache') },
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`go build of bench/go/etcdload failed:\n${r.stderr}${r.stdout}`);
  return bin;
}

/** Runs the generator once and parses its result; rejects with its stderr when it fails. */
export function runEtcdLoad(bin: string, o: EtcdLoadOptions): Promise<EtcdLoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, etcdLoadArgs(o), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      err = (err + c.toString()).slice(-4096);
    });
    const limitMs = (o.total > 0 ? 600_000 : o.durationMs) + RUN_GRACE_MS;
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || line === '') {
        reject(new Error(`etcdload exited ${signal ?? code}: ${err.trim() || out.trim()}`));
        return;
      }
      try {
        resolve(JSON.parse(line) as EtcdLoadResult);
      } catch {
        reject(new Error(`etcdload printed no JSON result: ${line.slice(0, 200)}`));
      }
    });
  });
}
