// Starts real member processes for tests — etcd or tetcd from the same options, so either can be the
// system under test — waits until they answer /health, stops them (SIGTERM, then SIGKILL) and keeps the
// tail of their logs for failure messages.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { awaitWithTimer, tempDir, track } from './cleanup.js';
import { freePort } from '../../tools/lib/ports.js';
import { memberFlags, tetcdNodeFlags } from '../../tools/cluster.js';

/** Which server binary a member runs. */
export type MemberKind = 'etcd' | 'tetcd';

/** Options shared by etcd and tetcd; they become the same command-line flags for both. */
export interface MemberOptions {
  /** --name (default "m1"). */
  name?: string;
  /** --data-dir (default: a fresh temp dir). */
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  /** --initial-cluster (default: this member alone). */
  initialCluster?: string;
  initialClusterToken?: string;
  initialClusterState?: 'new' | 'existing';
  /** More flags, appended as given. */
  extraArgs?: readonly string[];
  /** Extra environment variables. */
  env?: Readonly<Record<string, string>>;
  /** How long start() waits for /health (default 20 s). */
  readyTimeoutMs?: number;
  /** Wait for /health after starting (default true; members of a cluster being formed pass false). */
  waitReady?: boolean;
  /** https for the client URL (the flags giving the certificate go in extraArgs); default http. */
  clientScheme?: 'http' | 'https';
  /** https for the peer URL; default http. */
  peerScheme?: 'http' | 'https';
  /** What the /health poll presents over https (CA, client certificate); default: no verification. */
  healthTls?: https.RequestOptions;
}

const LOG_TAIL_BYTES = 64 * 1024;
const STOP_GRACE_MS = 5_000;
const EXIT_WAIT_MS = 10_000;

/** The repository root (the directory holding package.json above this file, in src or compiled form). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repoRoot: no package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/**
 * The tetcd entry point to run: the compiled src/cli/main.js of the build tree this helper was compiled
 * into (dist/ for `npm test`, .build/<x>/out/ for a private build), so a test always runs the member it
 * was built with; bin/tetcd (which runs dist/) when there is none.
 */
export function tetcdEntry(): string {
  const buildRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const main = join(buildRoot, 'src', 'cli', 'main.js');
  if (existsSync(main)) return main;
  const bin = join(repoRoot(), 'bin', 'tetcd');
  if (!existsSync(bin)) {
    throw new Error(
      `tetcd is not runnable yet: neither ${main} nor ${bin} exists (TETCD_COMPAT_TARGET=etcd proves the harness against etcd)`,
    );
  }
  return bin;
}

/** A running (or stopped) member process. */
export class Member {
  readonly clientUrl: string;
  readonly peerUrl: string;
  /** host:port, as etcdctl --endpoints wants it. */
  readonly endpoint: string;
  proc: ChildProcess | null = null;
  /** Set by pause(), cleared by resume(). */
  paused = false;
  private logTail = '';
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly kind: MemberKind,
    readonly name: string,
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
    private opts: MemberOptions,
  ) {
    this.clientUrl = `${opts.clientScheme ?? 'http'}://127.0.0.1:${clientPort}`;
    this.peerUrl = `${opts.peerScheme ?? 'http'}://127.0.0.1:${peerPort}`;
    this.endpoint = `127.0.0.1:${clientPort}`;
  }

  /** The flags both etcd and tetcd are started with. */
  args(): string[] {
    const o = this.opts;
    return memberFlags({
      name: this.name,
      dataDir: this.dataDir,
      clientUrl: this.clientUrl,
      peerUrl: this.peerUrl,
      initialCluster: o.initialCluster ?? `${this.name}=${this.peerUrl}`,
      token: o.initialClusterToken,
      state: o.initialClusterState,
      extraArgs: o.extraArgs,
    });
  }

  private command(): { cmd: string; args: string[] } {
    if (this.kind === 'etcd') return { cmd: 'etcd', args: this.args() };
    return { cmd: process.execPath, args: [...tetcdNodeFlags(), tetcdEntry(), ...this.args(), ...modeArgs()] };
  }

  /** Replaces the extra environment variables the next start() runs the member with. */
  setEnv(env: Readonly<Record<string, string>>): void {
    this.opts = { ...this.opts, env };
  }

  /** The last ~64 KiB of the member's stdout+stderr. */
  logs(): string {
    return this.logTail;
  }

  running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Spawns the process and, unless waitReady is false, waits for /health. */
  async start(): Promise<void> {
    if (this.running()) throw new Error(`${this.name} is already running`);
    const { cmd, args } = this.command();
    const child = track(
      spawn(cmd, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...(this.opts.env ?? {}) },
      }),
    );
    this.proc = child;
    this.paused = false;
    const onData = (chunk: Buffer) => {
      this.logTail += chunk.toString();
      if (this.logTail.length > LOG_TAIL_BYTES) this.logTail = this.logTail.slice(-LOG_TAIL_BYTES);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    if (this.opts.waitReady !== false) await this.waitReady(this.opts.readyTimeoutMs ?? 20_000);
  }

  /** Polls GET /health until it answers {"health":"true"}; throws with the log tail if the process dies or time runs out. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (!this.running())
        throw new Error(
          `${this.kind} ${this.name} exited (${this.proc?.exitCode ?? this.proc?.signalCode}) before it was ready:\n${this.logs()}`,
        );
      try {
        const body = await httpGet(`${this.clientUrl}/health`, 1_000, this.opts.healthTls);
        if (body.status === 200 && /"health"\s*:\s*"true"/.test(body.text)) return;
        last = `${body.status} ${body.text}`;
      } catch (e) {
        last = (e as Error).message;
      }
      await sleep(100);
    }
    throw new Error(`${this.kind} ${this.name} not ready after ${timeoutMs} ms (last /health: ${last}):\n${this.logs()}`);
  }

  /** Waits for the process to end on its own (a member that refuses to start); false if it still runs. */
  async exitsWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), timeoutMs);
    });
    const done = await Promise.race([this.exited.then(() => true), timeout]);
    clearTimeout(timer);
    return done;
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
  async stop(): Promise<void> {
    if (!this.running()) return;
    // A stopped process would sit on SIGTERM until the grace period ends.
    if (this.paused) this.resume();
    this.proc!.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (this.running()) this.proc!.kill('SIGKILL');
    }, STOP_GRACE_MS);
    await awaitWithTimer(this.exited, STOP_GRACE_MS + EXIT_WAIT_MS, `stop ${this.name}`);
    clearTimeout(timer);
  }

  /** SIGKILL (a crash); resolves once the process is gone. */
  async kill(): Promise<void> {
    if (!this.running()) return;
    this.proc!.kill('SIGKILL');
    await awaitWithTimer(this.exited, EXIT_WAIT_MS, `kill ${this.name}`);
    this.paused = false;
  }

  /** SIGSTOP: the process freezes with its sockets open. stop() and kill() still work on a paused member. */
  pause(): void {
    if (!this.running()) throw new Error(`${this.name} is not running`);
    this.proc!.kill('SIGSTOP');
    this.paused = true;
  }

  /** SIGCONT. */
  resume(): void {
    if (!this.running()) throw new Error(`${this.name} is not running`);
    this.proc!.kill('SIGCONT');
    this.paused = false;
  }

  /** Starts the same member again on the same data dir and ports. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

/**
 * The serving mode under test, for tetcd members: `--client-workers N` when TETCD_CLIENT_WORKERS=N is set
 * (`TETCD_CLIENT_WORKERS=2 npm test` runs every suite against the client-process mode) and
 * `--grpc-engine E` when TETCD_GRPC_ENGINE=E is set, `--worker-threads 2 --watch-pool-min-watchers 1` (every
 * watch response built on the worker threads) when TETCD_WATCH_POOL=1; nothing otherwise.
 */
export function modeArgs(): string[] {
  const args: string[] = [];
  const v = process.env.TETCD_CLIENT_WORKERS;
  if (v !== undefined && v !== '') {
    if (!/^\d+$/.test(v)) throw new Error(`TETCD_CLIENT_WORKERS must be a number, got ${v}`);
    args.push('--client-workers', v);
  }
  const engine = process.env.TETCD_GRPC_ENGINE;
  if (engine !== undefined && engine !== '') args.push('--grpc-engine', engine);
  // Every watch fan-out through the worker threads, however small (test/run.ts runs the watch suites so).
  if (process.env.TETCD_WATCH_POOL === '1') args.push('--worker-threads', '2', '--watch-pool-min-watchers', '1');
  return args;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A GET with a timeout; resolves with status and body text. */
export function httpGet(
  url: string,
  timeoutMs: number,
  tlsOptions: https.RequestOptions = { rejectUnauthorized: false },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:')
      ? (u: string, o: https.RequestOptions, cb: (r: http.IncomingMessage) => void) => https.get(u, { ...tlsOptions, ...o }, cb)
      : http.get;
    const req = get(url, { timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (text.length < 1 << 20) text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Creates (and by default starts) a member of the given kind; ports and data dir are picked when not given.
 *
 *   const m = await startMember('etcd', { name: 'm1' }); ... await m.stop();
 */
export async function startMember(kind: MemberKind, opts: MemberOptions = {}): Promise<Member> {
  const name = opts.name ?? 'm1';
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const dataDir = opts.dataDir ?? join(tempDir(`tetcd-${kind}-`), 'data');
  const m = new Member(kind, name, dataDir, clientPort, peerPort, opts);
  await m.start();
  return m;
}

/** startMember('etcd', opts). */
export function startEtcd(opts: MemberOptions = {}): Promise<Member> {
  return startMember('etcd', opts);
}

/** startMember('tetcd', opts): `node <build>/src/cli/main.js` (see tetcdEntry) with the same flags as etcd. */
export function startTetcd(opts: MemberOptions = {}): Promise<Member> {
  return startMember('tetcd', opts);
}

/**
 * A cluster of `names.length` members of one kind, started together (each waits for the others to form a
 * quorum), all ready on return.
 */
export async function startCluster(
  kind: MemberKind,
  names: readonly string[],
  opts: Omit<MemberOptions, 'name' | 'initialCluster' | 'clientPort' | 'peerPort' | 'dataDir'> = {},
): Promise<Member[]> {
  const ports: Array<{ client: number; peer: number }> = [];
  for (const _ of names) ports.push({ client: await freePort(), peer: await freePort() });
  const initialCluster = names.map((n, i) => `${n}=${opts.peerScheme ?? 'http'}://127.0.0.1:${ports[i]!.peer}`).join(',');
  const members = await Promise.all(
    names.map((name, i) =>
      startMember(kind, {
        ...opts,
        name,
        initialCluster,
        clientPort: ports[i]!.client,
        peerPort: ports[i]!.peer,
        waitReady: false,
      }),
    ),
  );
  await Promise.all(members.map((m) => m.waitReady(opts.readyTimeoutMs ?? 30_000)));
  return members;
}
