// Starts and stops etcd or tetcd members for the bench: 1- or 3-member clusters on loopback with etcd's
// flags, fresh data dirs, logs to files, readiness by a linearizable Range on every member, optional
// V8 CPU profiling of tetcd members. A cluster that does not come up is a StartError with the reason.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, mkdirSync, existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { GrpcConn } from './grpc-client.js';
import { KV, type MemberAddResponse, decodeMemberAddResponse, encodeMemberAddRequest, encodeRangeRequest } from '../../src/proto/rpc.js';
import { shebangNodeFlags } from '../../tools/cluster.js';

/** Which server a member runs. */
export type ServerKind = 'etcd' | 'tetcd';

/** How to start a cluster. */
export interface ClusterSpec {
  kind: ServerKind;
  /** argv prefix, e.g. ['node', 'bin/tetcd'] or ['/usr/bin/etcd']; etcd's flags are appended. */
  cmd: readonly string[];
  /** Working directory for cmd (relative paths in it resolve here). */
  cwd: string;
  members: number;
  /** A fresh, empty directory: data dirs and logs go below it. */
  baseDir: string;
  /** Write a V8 CPU profile of every member into this directory (tetcd only: the command must run node). */
  cpuProfDir?: string;
  /** How long to wait for every member to answer a linearizable read (default 30 s). */
  readyTimeoutMs?: number;
  /** Extra environment variables for the members. */
  env?: Readonly<Record<string, string>>;
  /** Client and peer TLS with this certificate (valid for 127.0.0.1) and CA; cleartext without. */
  tls?: BenchTls;
  /** More flags for every member (the same for etcd and tetcd), after the cluster's own. */
  args?: readonly string[];
}

/** TLS material of a bench run: one certificate for every member's client and peer URLs, and its CA. */
export interface BenchTls {
  certFile: string;
  keyFile: string;
  caFile: string;
  /** The CA's PEM, for the generators and the probes. */
  caPem: string;
}

/** A cluster that could not be started; `reason` is one line for the results table. */
export class StartError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** One running member process. */
export interface MemberProc {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logPath: string;
  child: ChildProcess;
  /** Resolves when the process has exited (its exit code, or the signal name). */
  exited: Promise<number | string>;
}

const STOP_GRACE_MS = 15_000;
const PROBE_TIMEOUT_MS = 2_000;
const PROBE_INTERVAL_MS = 200;
const LOG_TAIL_BYTES = 2_000;
const JOIN_ATTEMPTS = 40;

/** Free loopback ports: the tests' helper (random in 20000-60000, never handed out twice by this process). */
import { freePort } from '../../tools/lib/ports.js';
export { freePort };

/**
 * The argv that runs `cmd` under node's CPU profiler: node flags go right after the node binary, or a
 * script with a node shebang (bin/tetcd) is run by this node with the shebang's node flags. Throws if cmd does not run node.
 */
export function profiledCommand(cmd: readonly string[], profDir: string): string[] {
  if (cmd.length === 0) throw new Error('empty command');
  const prof = ['--cpu-prof', '--cpu-prof-dir', profDir];
  const exe = basename(cmd[0]);
  if (exe === 'node' || exe === 'nodejs' || cmd[0] === process.execPath) return [cmd[0], ...prof, ...cmd.slice(1)];
  let flags: string[];
  try {
    flags = shebangNodeFlags(cmd[0]);
  } catch {
    throw new Error(`cannot profile ${cmd[0]}: not node nor a node script`);
  }
  return [process.execPath, ...flags, ...prof, ...cmd];
}

function logTail(path: string): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(-LOG_TAIL_BYTES);
  } catch {
    return '';
  }
}

/** The last meaningful log line, shortened, for a one-line reason. */
function lastLogLine(path: string): string {
  const lines = logTail(path)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const line = lines.length > 0 ? lines[lines.length - 1] : '(empty log)';
  return line.length > 200 ? line.slice(0, 200) + '…' : line;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A running cluster of etcd or tetcd members. */
export class Cluster {
  private constructor(
    readonly spec: ClusterSpec,
    readonly members: MemberProc[],
  ) {}

  /** host:port of every member's client URL. */
  get endpoints(): string[] {
    return this.members.map((m) => `127.0.0.1:${m.clientPort}`);
  }

  /** Process ids of the members (their descendants are found through /proc when sampling). */
  get pids(): number[] {
    return this.members.map((m) => m.child.pid!);
  }

  /**
   * Starts spec.members members and waits until each answers a linearizable Range.
   * Throws StartError (after stopping whatever did start) when that does not happen in time.
   */
  static async start(spec: ClusterSpec): Promise<Cluster> {
    if (spec.members < 1 || spec.members > 7) throw new RangeError('cluster: 1..7 members');
    const ports: { client: number; peer: number }[] = [];
    for (let i = 0; i < spec.members; i++) ports.push({ client: await freePort(), peer: await freePort() });
    const names = ports.map((_, i) => `m${i + 1}`);
    const scheme = spec.tls === undefined ? 'http' : 'https';
    const initialCluster = names.map((n, i) => `${n}=${scheme}://127.0.0.1:${ports[i].peer}`).join(',');
    let argvPrefix = [...spec.cmd];
    if (spec.cpuProfDir !== undefined) {
      mkdirSync(spec.cpuProfDir, { recursive: true });
      try {
        argvPrefix = profiledCommand(spec.cmd, spec.cpuProfDir);
      } catch (err) {
        throw new StartError((err as Error).message);
      }
    }
    const members: MemberProc[] = [];
    for (let i = 0; i < spec.members; i++) {
      members.push(spawnMember(spec, argvPrefix, names[i], ports[i], initialCluster, 'new'));
    }
    const cluster = new Cluster(spec, members);
    try {
      await cluster.waitReady(spec.readyTimeoutMs ?? 30_000);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /**
   * Adds a voter through MemberAdd on the first member and starts it with --initial-cluster-state existing
   * and an empty data dir (extraArgs after the cluster's flags); returns as soon as it is spawned (catching up
   * is the caller's to watch).
   */
  async join(extraArgs: readonly string[] = []): Promise<MemberProc> {
    if (this.spec.cpuProfDir !== undefined) throw new Error('cluster: join does not profile');
    const port = { client: await freePort(), peer: await freePort() };
    const scheme = this.spec.tls === undefined ? 'http' : 'https';
    const c = await GrpcConn.connect(this.endpoints[0], PROBE_TIMEOUT_MS, this.spec.tls?.caPem);
    let added: MemberAddResponse;
    try {
      const req = encodeMemberAddRequest({ peerURLs: [`${scheme}://127.0.0.1:${port.peer}`] });
      // etcd 3.4 (--strict-reconfig-check, its default) refuses until every peer has been connected for 5 s.
      for (let attempt = 1; ; attempt++) {
        const r = await c.unary('/etcdserverpb.Cluster/MemberAdd', req, 30_000);
        if (r.grpcStatus === 0) {
          added = decodeMemberAddResponse(r.body);
          break;
        }
        if (!r.grpcMessage.includes('unhealthy cluster') || attempt >= JOIN_ATTEMPTS)
          throw new Error(`member add: ${r.grpcStatus} ${r.grpcMessage}`);
        await sleep(500);
      }
    } finally {
      c.close();
    }
    let i = this.members.length + 1;
    while (this.members.some((m) => m.name === `m${i}`)) i++;
    const name = `m${i}`;
    const newId = added.member?.ID;
    const initialCluster = added.members.flatMap((m) => m.peerURLs.map((u) => `${m.ID === newId ? name : m.name}=${u}`)).join(',');
    const spec = { ...this.spec, args: [...(this.spec.args ?? []), ...extraArgs] };
    const m = spawnMember(spec, this.spec.cmd, name, port, initialCluster, 'existing');
    this.members.push(m);
    return m;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const probe = encodeRangeRequest({ key: Buffer.from('bench-ready') });
    for (const m of this.members) {
      let lastProblem = 'no answer';
      for (;;) {
        const exit = await Promise.race([m.exited, sleep(0).then(() => null)]);
        if (exit !== null) {
          throw new StartError(`${this.spec.kind} member ${m.name} exited (${exit}) during start-up: ${lastLogLine(m.logPath)}`);
        }
        if (Date.now() > deadline) {
          throw new StartError(
            `${this.spec.kind} ${this.members.length}-member cluster not ready after ${timeoutMs} ms (${m.name}: ${lastProblem})`,
          );
        }
        try {
          const c = await GrpcConn.connect(`127.0.0.1:${m.clientPort}`, PROBE_TIMEOUT_MS, this.spec.tls?.caPem);
          const r = await c.unary(KV.methods.Range.path, probe, PROBE_TIMEOUT_MS);
          c.close();
          if (r.grpcStatus === 0) break;
          lastProblem = `grpc-status ${r.grpcStatus} ${r.grpcMessage}`;
        } catch (err) {
          lastProblem = (err as Error).message;
        }
        await sleep(PROBE_INTERVAL_MS);
      }
    }
  }

  /** SIGTERM every member, SIGKILL whoever is still there after the grace period; waits for all exits. */
  async stop(): Promise<void> {
    await Promise.all(
      this.members.map(async (m) => {
        if (m.child.exitCode !== null || m.child.signalCode !== null) return;
        m.child.kill('SIGTERM');
        const timer = setTimeout(() => m.child.kill('SIGKILL'), STOP_GRACE_MS);
        await m.exited;
        clearTimeout(timer);
      }),
    );
  }

  /** Whether any member has died (then its numbers mean nothing). */
  deadMembers(): string[] {
    return this.members
      .filter((m) => m.child.exitCode !== null || m.child.signalCode !== null)
      .map((m) => `${m.name}: ${lastLogLine(m.logPath)}`);
  }
}

/** Spawns one member with etcd's flags; its log goes to <baseDir>/<name>.log, its data to <name>.data. */
function spawnMember(
  spec: ClusterSpec,
  argvPrefix: readonly string[],
  name: string,
  port: { client: number; peer: number },
  initialCluster: string,
  state: 'new' | 'existing',
): MemberProc {
  const scheme = spec.tls === undefined ? 'http' : 'https';
  const dataDir = join(spec.baseDir, `${name}.data`);
  const logPath = join(spec.baseDir, `${name}.log`);
  const client = `${scheme}://127.0.0.1:${port.client}`;
  const peer = `${scheme}://127.0.0.1:${port.peer}`;
  const args = [
    ...argvPrefix.slice(1),
    ...['--name', name, '--data-dir', dataDir],
    ...['--listen-client-urls', client, '--advertise-client-urls', client],
    ...['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer],
    ...['--initial-cluster', initialCluster, '--initial-cluster-token', 'bench-cluster', '--initial-cluster-state', state],
    ...(spec.tls === undefined
      ? []
      : [
          ...['--cert-file', spec.tls.certFile, '--key-file', spec.tls.keyFile],
          ...['--peer-cert-file', spec.tls.certFile, '--peer-key-file', spec.tls.keyFile, '--peer-trusted-ca-file', spec.tls.caFile],
        ]),
    ...(spec.args ?? []),
  ];
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(argvPrefix[0], args, {
      cwd: spec.cwd,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ETCDCTL_API: '3', ...(spec.env ?? {}) },
    });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', (err) => resolve(`spawn error: ${err.message}`));
  });
  return { name, clientPort: port.client, peerPort: port.peer, dataDir, logPath, child, exited };
}

/** Bytes allocated on disk below dir (files only), like `du -s`. */
export function dirBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) total += statSync(p).blocks * 512;
    }
  }
  return total;
}
