// A local cluster launcher: N tetcd (or, with --etcd, real etcd) members on loopback started with etcd's
// flags, each logging to <data-dir>/<name>.log. A library (LocalCluster, used by the fault tests to kill,
// pause and restart members) and a CLI: `npm run cluster -- --size 3 [--base-port N] [--data-dir D] [--keep] [--etcd] [-- flags...]`.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, fstatSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import http2 from 'node:http2';
import { createInterface } from 'node:readline';
import { findRepoRoot } from './protogen/paths.js';
import { freeBlock } from './lib/ports.js';
import type { ProxiedMember } from './lib/peer_proxy.js';
import { memberId } from '../src/server/ids.js';
import {
  decodeMemberAddResponse,
  decodeMemberListResponse,
  encodeMemberAddRequest,
  encodeMemberListRequest,
  encodeMemberPromoteRequest,
  encodeMemberRemoveRequest,
  type Member,
} from '../src/proto/rpc.js';

/** Which server a cluster runs. */
export type ClusterKind = 'tetcd' | 'etcd';

/** How to start a cluster. */
export interface ClusterOptions {
  /** Members, 1..9. */
  size: number;
  kind?: ClusterKind;
  /** Member i (0-based) listens for clients on basePort + 2i and for peers on basePort + 2i + 1 (default: a free block outside the ephemeral port range). */
  basePort?: number;
  /** Members keep their data in <dataDir>/<name> (default: a new temp dir). */
  dataDir?: string;
  /** Keep a temp data dir after stop (a given dataDir is always kept). */
  keepDataDir?: boolean;
  /** --initial-cluster-token (default "tetcd-local-cluster"). */
  token?: string;
  /** Flags appended to every member's command line (e.g. --election-timeout 500). */
  extraArgs?: readonly string[];
  /** Flags appended to one member's command line, after extraArgs (e.g. its own --wal-dir). */
  memberArgs?: (name: string) => readonly string[];
  /** Extra environment for the members. */
  env?: Readonly<Record<string, string>>;
  /** Extra environment for one member, after env (e.g. a power-loss shim tracking its own data dir). */
  memberEnv?: (name: string) => Readonly<Record<string, string>>;
  /** Called with every member process right after it is spawned (tests register them for cleanup). */
  onSpawn?: (child: ChildProcess) => void;
  /** How long start() waits for every member's /health (default 30 s). */
  readyTimeoutMs?: number;
  /** SIGTERM → SIGKILL grace on stop (default 5 s). */
  stopGraceMs?: number;
  /**
   * Members listen for peers on ports of their own (after the block) and advertise basePort + 2i + 1, where a
   * PeerNet (tools/lib/peer_proxy.ts, started with proxiedMembers()) stands between them.
   */
  peerProxy?: boolean;
  /** Runs after the members are laid out and before they start (e.g. starts the PeerNet of a peerProxy cluster). */
  beforeStart?: (c: LocalCluster) => Promise<void>;
}

/** How a member process ended. */
export interface MemberExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The member-level numbers /metrics exposes (the same names on etcd and tetcd). */
export interface MemberMetrics {
  isLeader: boolean;
  hasLeader: boolean;
  revision: number;
  appliedIndex: number;
  committedIndex: number;
}

const HOST = '127.0.0.1';
const SIZE_MAX = 9;
const EXIT_WAIT_MS = 10_000;
const HTTP_BODY_BYTES_MAX = 4 * 1024 * 1024;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The compiled member entry point of the build tree this file belongs to (dist/ or a private outDir). */
export function tetcdMainPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const main = resolve(here, '..', 'src', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error(`tetcd is not built next to this launcher: ${main} does not exist`);
  return main;
}

/**
 * The node flags a script's `#!/usr/bin/env -S node <flags>` line runs it with ([] for a plain
 * `#!/usr/bin/env node`). Throws if the first line does not start node.
 */
export function shebangNodeFlags(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0];
  const m = /^#!\s*\S*?(?:\/env(?:\s+-S)?\s+)?\S*\bnode\b(.*)$/.exec(first);
  if (m === null) throw new Error(`${script} is not a node script: ${first}`);
  return m[1]
    .trim()
    .split(/\s+/)
    .filter((f) => f !== '');
}

/**
 * The node flags bin/tetcd runs the member with (V8's young generation size, see README "Node's
 * flags"), for everything that starts the compiled main.js itself and should run the member as shipped.
 */
export function tetcdNodeFlags(): string[] {
  const bin = join(findRepoRoot(import.meta.url), 'bin', 'tetcd');
  if (!existsSync(bin)) throw new Error(`no ${bin}`);
  return shebangNodeFlags(bin);
}

/** A GET with a timeout; resolves with status and body. */
export function httpGet(url: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (text.length < HTTP_BODY_BYTES_MAX) text += c;
      });
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const s = net.createServer();
    s.once('error', () => resolvePromise(false));
    s.listen(port, HOST, () => s.close(() => resolvePromise(true)));
  });
}

/** What one member needs to be started with etcd's flags. */
export interface MemberFlagOptions {
  name: string;
  dataDir: string;
  clientUrl: string;
  peerUrl: string;
  /** The peer URL to listen on when it differs from the advertised peerUrl (a proxy in between). */
  listenPeerUrl?: string;
  initialCluster: string;
  token?: string;
  state?: 'new' | 'existing';
  extraArgs?: readonly string[];
}

/** etcd's flags for one member listening on one client and one peer URL (also used by the test helpers). */
export function memberFlags(o: MemberFlagOptions): string[] {
  const args = [
    '--name',
    o.name,
    '--data-dir',
    o.dataDir,
    '--listen-client-urls',
    o.clientUrl,
    '--advertise-client-urls',
    o.clientUrl,
    '--listen-peer-urls',
    o.listenPeerUrl ?? o.peerUrl,
    '--initial-advertise-peer-urls',
    o.peerUrl,
    '--initial-cluster',
    o.initialCluster,
  ];
  if (o.token !== undefined) args.push('--initial-cluster-token', o.token);
  if (o.state !== undefined) args.push('--initial-cluster-state', o.state);
  args.push(...(o.extraArgs ?? []));
  return args;
}

/** One member of a LocalCluster: its flags, its process, and signals to hurt it with. */
export class ClusterMember {
  readonly clientUrl: string;
  readonly peerUrl: string;
  /** host:port, as etcdctl --endpoints wants it. */
  readonly endpoint: string;
  readonly logFile: string;
  proc: ChildProcess | null = null;
  /** Set by pause(), cleared by resume(). */
  paused = false;
  /** How the last process ended (null while running or before the first start). */
  lastExit: MemberExit | null = null;
  /** Exits that no one asked for (a crash): cleared by nobody; tests assert it stays empty. */
  readonly unexpectedExits: MemberExit[] = [];
  private exitPromise: Promise<MemberExit> = Promise.resolve({ code: null, signal: null });
  private expectingExit = false;

  constructor(
    readonly kind: ClusterKind,
    readonly name: string,
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
    private readonly initialCluster: string,
    private readonly opts: ClusterOptions,
    /** 'existing' for a member added to a running cluster (LocalCluster.grow). */
    private readonly state: 'new' | 'existing' = 'new',
    /** The port the member itself listens on for peers (peerPort unless a proxy stands in between). */
    readonly listenPeerPort: number = peerPort,
  ) {
    this.clientUrl = `http://${HOST}:${clientPort}`;
    this.peerUrl = `http://${HOST}:${peerPort}`;
    this.endpoint = `${HOST}:${clientPort}`;
    this.logFile = `${dataDir}.log`;
  }

  /** The member's flags, exactly as one would start etcd. */
  args(): string[] {
    return memberFlags({
      name: this.name,
      dataDir: this.dataDir,
      clientUrl: this.clientUrl,
      peerUrl: this.peerUrl,
      ...(this.listenPeerPort !== this.peerPort ? { listenPeerUrl: `http://${HOST}:${this.listenPeerPort}` } : {}),
      initialCluster: this.initialCluster,
      token: this.opts.token ?? 'tetcd-local-cluster',
      state: this.state,
      extraArgs: [...(this.opts.extraArgs ?? []), ...(this.opts.memberArgs?.(this.name) ?? [])],
    });
  }

  /** The full command line (for printing). */
  commandLine(): string[] {
    return this.kind === 'etcd' ? ['etcd', ...this.args()] : [process.execPath, ...tetcdNodeFlags(), tetcdMainPath(), ...this.args()];
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** The process exists (it may be paused). */
  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Spawns the member (same data dir and ports every time); does not wait for it to be healthy. */
  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const [cmd, ...args] = this.commandLine();
    const fd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      // Its own process group: a Ctrl-C in the launcher's terminal reaches only the launcher, which then
      // stops the members in order (and reports any member that dies on its own).
      child = spawn(cmd!, args, {
        stdio: ['ignore', fd, fd],
        env: { ...process.env, ...(this.opts.env ?? {}), ...(this.opts.memberEnv?.(this.name) ?? {}) },
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    this.proc = child;
    this.paused = false;
    this.lastExit = null;
    this.expectingExit = false;
    this.exitPromise = new Promise((resolvePromise) => {
      child.once('exit', (code, signal) => {
        const exit = { code, signal };
        this.lastExit = exit;
        if (!this.expectingExit) this.unexpectedExits.push(exit);
        resolvePromise(exit);
      });
    });
    child.once('error', () => {
      /* reported through 'exit' or the health checks */
    });
    this.opts.onSpawn?.(child);
  }

  private async waitExit(what: string): Promise<MemberExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} ${this.name}: still running after ${EXIT_WAIT_MS} ms`)), EXIT_WAIT_MS);
    });
    try {
      return await Promise.race([this.exitPromise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the process to end on its own, as a removed member does (an expected exit): false if it still runs. */
  async exitsWithin(timeoutMs: number): Promise<boolean> {
    if (!this.running) return true;
    this.expectingExit = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), timeoutMs);
    });
    try {
      return await Promise.race([this.exitPromise.then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` (default SIGKILL: a crash) and waits for the process to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<MemberExit> {
    if (!this.running) return this.lastExit ?? { code: null, signal: null };
    this.expectingExit = true;
    this.proc!.kill(signal);
    // A stopped process only acts on SIGKILL; let any other signal through.
    if (this.paused && signal !== 'SIGKILL') this.proc!.kill('SIGCONT');
    const exit = await this.waitExit('kill');
    this.paused = false;
    return exit;
  }

  /** SIGSTOP: the process freezes with its sockets open (a hung member, a long GC pause, a partition of sorts). */
  pause(): void {
    if (!this.running) throw new Error(`${this.name} is not running`);
    this.proc!.kill('SIGSTOP');
    this.paused = true;
  }

  /** SIGCONT. */
  resume(): void {
    if (!this.running) throw new Error(`${this.name} is not running`);
    this.proc!.kill('SIGCONT');
    this.paused = false;
  }

  /** Graceful stop: SIGTERM (after SIGCONT if paused), SIGKILL after the grace period. */
  async stop(graceMs = this.opts.stopGraceMs ?? 5_000): Promise<MemberExit> {
    if (!this.running) return this.lastExit ?? { code: null, signal: null };
    this.expectingExit = true;
    if (this.paused) this.resume();
    this.proc!.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (this.running) this.proc!.kill('SIGKILL');
    }, graceMs);
    try {
      return await this.waitExit('stop');
    } finally {
      clearTimeout(timer);
    }
  }

  /** Graceful stop, then start again on the same data dir and ports. */
  async restart(): Promise<void> {
    await this.stop();
    this.start();
  }

  /** GET /health: true when the member answers {"health":"true"} (it has a leader and can do a linearizable read). */
  async healthy(timeoutMs = 1_000): Promise<boolean> {
    try {
      const r = await httpGet(`${this.clientUrl}/health`, timeoutMs);
      return r.status === 200 && /"health"\s*:\s*"true"/.test(r.text);
    } catch {
      return false;
    }
  }

  /** Polls /health until true; throws with the log tail when the process dies or time runs out. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running)
        throw new Error(`${this.kind} ${this.name} exited (${JSON.stringify(this.lastExit)}) before it was healthy:\n${this.logTail()}`);
      if (await this.healthy()) return;
      await sleep(100);
    }
    throw new Error(`${this.kind} ${this.name} not healthy after ${timeoutMs} ms:\n${this.logTail()}`);
  }

  /** A few numbers from /metrics. */
  async metrics(timeoutMs = 1_000): Promise<MemberMetrics> {
    const r = await httpGet(`${this.clientUrl}/metrics`, timeoutMs);
    if (r.status !== 200) throw new Error(`${this.name} /metrics: HTTP ${r.status}`);
    const num = (name: string): number => {
      const m = new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(r.text);
      if (m === null) throw new Error(`${this.name} /metrics has no ${name}`);
      return Number(m[1]);
    };
    return {
      isLeader: num('etcd_server_is_leader') === 1,
      hasLeader: num('etcd_server_has_leader') === 1,
      revision: num('etcd_debugging_mvcc_current_revision'),
      appliedIndex: num('etcd_server_proposals_applied_total'),
      committedIndex: num('etcd_server_proposals_committed_total'),
    };
  }

  /** The last `bytes` of the member's log file (all its processes, appended). */
  logTail(bytes = 16 * 1024): string {
    if (!existsSync(this.logFile)) return '';
    const fd = openSync(this.logFile, 'r');
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(bytes, size);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      return buf.toString();
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * N members on loopback.
 *
 *   const c = await LocalCluster.start({ size: 3 });
 *   const leader = await c.leader(5_000); await leader.kill(); ... await c.stop();
 */
export class LocalCluster {
  private constructor(
    readonly members: ClusterMember[],
    readonly dataDir: string,
    private readonly removeDataDir: boolean,
    private readonly opts: ClusterOptions,
  ) {}

  /** Lays out the members (ports, dirs) without starting them. */
  static async create(opts: ClusterOptions): Promise<LocalCluster> {
    if (!Number.isInteger(opts.size) || opts.size < 1 || opts.size > SIZE_MAX)
      throw new Error(`--size must be 1..${SIZE_MAX}, got ${opts.size}`);
    const kind = opts.kind ?? 'tetcd';
    if (kind === 'tetcd') tetcdMainPath();
    let base: number;
    const ports = (opts.peerProxy ? 3 : 2) * opts.size;
    if (opts.basePort !== undefined) {
      base = opts.basePort;
      if (!Number.isInteger(base) || base < 1024 || base + ports > 65535) throw new Error(`bad --base-port ${base}`);
      for (let p = base; p < base + ports; p++) {
        if (!(await portFree(p))) throw new Error(`port ${p} (from --base-port ${base}) is in use`);
      }
    } else {
      base = await freeBlock(ports);
    }
    const given = opts.dataDir !== undefined;
    const dataDir = given ? resolve(opts.dataDir!) : mkdtempSync(join(tmpdir(), `${kind}-cluster-`));
    mkdirSync(dataDir, { recursive: true });
    const names = Array.from({ length: opts.size }, (_, i) => `m${i + 1}`);
    const initialCluster = names.map((n, i) => `${n}=http://${HOST}:${base + 2 * i + 1}`).join(',');
    const members = names.map(
      (n, i) =>
        new ClusterMember(
          kind,
          n,
          join(dataDir, n),
          base + 2 * i,
          base + 2 * i + 1,
          initialCluster,
          opts,
          'new',
          opts.peerProxy ? base + 2 * opts.size + i : base + 2 * i + 1,
        ),
    );
    return new LocalCluster(members, dataDir, !given && opts.keepDataDir !== true, opts);
  }

  /** create() + start every member + wait until all are healthy. */
  static async start(opts: ClusterOptions): Promise<LocalCluster> {
    const c = await LocalCluster.create(opts);
    try {
      await opts.beforeStart?.(c);
      for (const m of c.members) m.start();
      await c.waitHealthy(opts.readyTimeoutMs ?? 30_000);
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** What a PeerNet needs to stand between the members (peerProxy clusters). */
  proxiedMembers(): ProxiedMember[] {
    const token = this.opts.token ?? 'tetcd-local-cluster';
    return this.members.map((m) => ({
      name: m.name,
      idHex: memberId([m.peerUrl], token).toString(16),
      proxyPort: m.peerPort,
      memberPort: m.listenPeerPort,
    }));
  }

  /** Comma-separated client endpoints (etcdctl --endpoints). */
  get endpoints(): string {
    return this.members.map((m) => m.endpoint).join(',');
  }

  /** A command to try against the cluster. */
  etcdctlHint(): string {
    return `etcdctl --endpoints=${this.endpoints} endpoint status -w table`;
  }

  /** Waits until every running, unpaused member answers /health. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    await Promise.all(this.members.filter((m) => m.running && !m.paused).map((m) => m.waitHealthy(timeoutMs)));
  }

  /**
   * The one member that says it leads, among running unpaused members (or `among`); polls /metrics until
   * exactly one does. Throws after `timeoutMs`.
   */
  async leader(timeoutMs: number, among: readonly ClusterMember[] = this.members): Promise<ClusterMember> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const live = among.filter((m) => m.running && !m.paused);
      const says = await Promise.all(
        live.map((m) =>
          m.metrics(500).then(
            (x) => x.isLeader,
            () => false,
          ),
        ),
      );
      const leaders = live.filter((_, i) => says[i]);
      if (leaders.length === 1) return leaders[0]!;
      last = leaders.map((m) => m.name).join(',') || 'none';
      await sleep(50);
    }
    throw new Error(`no single leader after ${timeoutMs} ms (last seen: ${last})`);
  }

  /**
   * Adds a member through MemberAdd (a learner if asked) on a running member, then starts it with the
   * --initial-cluster the add implies and --initial-cluster-state existing; resolves once it is healthy
   * (a learner: once it answers). Its name is the next free m<i>; ports are free ones.
   */
  async grow(o: { learner?: boolean; readyTimeoutMs?: number } = {}): Promise<ClusterMember> {
    const via = this.runningMember();
    let i = this.members.length + 1;
    while (this.members.some((m) => m.name === `m${i}`)) i++;
    const name = `m${i}`;
    const base = await freeBlock(2);
    const peerUrl = `http://${HOST}:${base + 1}`;
    const added = decodeMemberAddResponse(
      await unary(
        via.endpoint,
        '/etcdserverpb.Cluster/MemberAdd',
        encodeMemberAddRequest({ peerURLs: [peerUrl], isLearner: o.learner === true }),
      ),
    );
    const newId = added.member?.ID;
    const initialCluster = added.members.flatMap((m) => m.peerURLs.map((u) => `${m.ID === newId ? name : m.name}=${u}`)).join(',');
    const kind = this.members[0]?.kind ?? 'tetcd';
    const m = new ClusterMember(kind, name, join(this.dataDir, name), base, base + 1, initialCluster, this.opts, 'existing');
    this.members.push(m);
    m.start();
    await m.waitHealthy(o.readyTimeoutMs ?? 30_000);
    return m;
  }

  /** Promotes a learner (MemberPromote through another running member; the leader must find it caught up). */
  async promote(name: string): Promise<void> {
    const m = this.member(name);
    const id = await this.idOf(m);
    await unary(this.runningMember(m).endpoint, '/etcdserverpb.Cluster/MemberPromote', encodeMemberPromoteRequest({ ID: id }));
  }

  /** Removes a member (MemberRemove through another running member); it stops itself, and leaves the list. */
  async shrink(name: string, timeoutMs = 15_000): Promise<void> {
    const m = this.member(name);
    const id = await this.idOf(m);
    await unary(this.runningMember(m).endpoint, '/etcdserverpb.Cluster/MemberRemove', encodeMemberRemoveRequest({ ID: id }));
    if (!(await m.exitsWithin(timeoutMs))) await m.stop(this.opts.stopGraceMs ?? 5_000).catch(async () => m.kill());
    this.members.splice(this.members.indexOf(m), 1);
  }

  /** The members as MemberList on a running member says. */
  async memberList(): Promise<Member[]> {
    return decodeMemberListResponse(
      await unary(this.runningMember().endpoint, '/etcdserverpb.Cluster/MemberList', encodeMemberListRequest({})),
    ).members;
  }

  private member(name: string): ClusterMember {
    const m = this.members.find((x) => x.name === name);
    if (m === undefined) throw new Error(`no member ${name}`);
    return m;
  }

  private runningMember(except?: ClusterMember): ClusterMember {
    const m = this.members.find((x) => x !== except && x.running && !x.paused);
    if (m === undefined) throw new Error('no running member to ask');
    return m;
  }

  private async idOf(m: ClusterMember): Promise<bigint> {
    const found = (await this.memberList()).find((x) => x.peerURLs.includes(m.peerUrl));
    if (found === undefined) throw new Error(`${m.name} (${m.peerUrl}) is not a member`);
    return found.ID;
  }

  /** Stops every member (gracefully, SIGKILL after the grace period) and removes a temp data dir unless kept. */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop(this.opts.stopGraceMs ?? 5_000).catch(async () => m.kill())));
    if (this.removeDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** One unary gRPC call over cleartext HTTP/2 (the cluster's own membership calls); rejects with the grpc-message. */
function unary(endpoint: string, path: string, body: Uint8Array, timeoutMs = 10_000): Promise<Uint8Array> {
  return new Promise((resolvePromise, reject) => {
    const session = http2.connect(`http://${endpoint}`);
    const fail = (err: Error) => {
      session.destroy();
      reject(err);
    };
    session.on('error', fail);
    const timer = setTimeout(() => fail(new Error(`${path} on ${endpoint}: no answer after ${timeoutMs} ms`)), timeoutMs);
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    let message = '';
    const takeStatus = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) {
        status = String(h['grpc-status']);
        message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      }
    };
    req.on('response', takeStatus);
    req.on('trailers', takeStatus);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', fail);
    req.on('end', () => {
      clearTimeout(timer);
      session.close();
      const data = Buffer.concat(chunks);
      if (status !== '0') reject(new Error(`${path} on ${endpoint}: ${message || `grpc-status ${status}`}`));
      else if (data.length < 5) reject(new Error(`${path} on ${endpoint}: empty answer`));
      else resolvePromise(data.subarray(5, 5 + data.readUInt32BE(1)));
    });
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    req.end(frame);
  });
}

// ---- CLI ----

const USAGE = `usage: cluster [--size N] [--base-port P] [--data-dir D] [--keep] [--etcd] [-- member flags...]
  --size N        members (default 3)
  --base-port P   member i listens for clients on P+2i and for peers on P+2i+1 (default: free ports)
  --data-dir D    data in D/m1, D/m2, ... and logs in D/m1.log, ... (kept); default a temp dir
  --keep          keep the temp data dir after stopping
  --etcd          run real etcd (from PATH) with the same layout, for comparisons
  -- flags...     passed to every member, e.g. -- --election-timeout 500 --heartbeat-interval 50
Ctrl-C or SIGTERM stops the members (SIGTERM, then SIGKILL after 5 s).
While it runs, lines on stdin change the membership:
  add [learner]   MemberAdd a new member (m<i>, free ports) and start it with --initial-cluster-state existing
  promote NAME    MemberPromote a learner
  remove NAME     MemberRemove a member (it stops itself)
  list            MemberList
`;

/** Parses the CLI's arguments; returns the options or a message for stderr. */
export function parseClusterArgs(argv: readonly string[]): ClusterOptions | { usage: string; exitCode: number } {
  const o: ClusterOptions = { size: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] =
      a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    try {
      switch (flag) {
        case '--size':
          o.size = Number(value());
          break;
        case '--base-port':
          o.basePort = Number(value());
          break;
        case '--data-dir':
          o.dataDir = value();
          break;
        case '--keep':
          o.keepDataDir = true;
          break;
        case '--etcd':
          o.kind = 'etcd';
          break;
        case '-h':
        case '--help':
          return { usage: USAGE, exitCode: 0 };
        case '--':
          o.extraArgs = argv.slice(i + 1);
          i = argv.length;
          break;
        default:
          return { usage: `unknown argument ${a}\n${USAGE}`, exitCode: 2 };
      }
    } catch (e) {
      return { usage: `${(e as Error).message}\n${USAGE}`, exitCode: 2 };
    }
  }
  if (!Number.isInteger(o.size) || o.size < 1 || o.size > SIZE_MAX)
    return { usage: `--size must be 1..${SIZE_MAX}\n${USAGE}`, exitCode: 2 };
  return o;
}

async function cli(argv: readonly string[]): Promise<number> {
  const parsed = parseClusterArgs(argv);
  if ('usage' in parsed) {
    (parsed.exitCode === 0 ? process.stdout : process.stderr).write(parsed.usage);
    return parsed.exitCode;
  }
  const out = (s: string) => process.stdout.write(s + '\n');
  let cluster: LocalCluster;
  try {
    cluster = await LocalCluster.create(parsed);
  } catch (e) {
    process.stderr.write(`cluster: ${(e as Error).message}\n`);
    return 1;
  }
  let stopping = false;
  let stopped!: () => void;
  const done = new Promise<void>((r) => {
    stopped = r;
  });
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    out(`\n${why}: stopping ${cluster.members.length} member(s)…`);
    void cluster.stop().then(() => {
      out(parsed.dataDir !== undefined || parsed.keepDataDir ? `stopped; data kept in ${cluster.dataDir}` : 'stopped; temp data removed');
      stopped();
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => stop('SIGHUP'));

  const kind = parsed.kind ?? 'tetcd';
  out(`starting a ${cluster.members.length}-member ${kind} cluster; data in ${cluster.dataDir}`);
  for (const m of cluster.members) m.start();
  try {
    await cluster.waitHealthy(parsed.readyTimeoutMs ?? 30_000);
  } catch (e) {
    process.stderr.write(`cluster: ${(e as Error).message}\n`);
    stop('not healthy');
    await done;
    return 1;
  }
  for (const m of cluster.members) {
    out(`  ${m.name}  client ${m.clientUrl}  peer ${m.peerUrl}  pid ${m.pid}  log ${m.logFile}`);
  }
  out(`endpoints: ${cluster.endpoints}`);
  out(`try:\n  ${cluster.etcdctlHint()}`);
  out(`one member's command line:\n  ${cluster.members[0]!.commandLine().join(' ')}`);
  out('membership: type "add [learner]", "promote NAME", "remove NAME" or "list" (one per line).');
  out('Ctrl-C stops the cluster.');
  const commands = readMembershipCommands(cluster, out, () => stopping);
  // Say so when a member dies on its own; the others keep running.
  for (const m of cluster.members) {
    m.proc?.once('exit', (code, signal) => {
      if (!stopping) out(`!! ${m.name} exited (code ${code}, signal ${signal}); last log lines:\n${m.logTail(2048)}`);
    });
  }
  await done;
  commands.close();
  return 0;
}

/** The CLI's membership commands, one per stdin line (see USAGE); one at a time. Close it to stop reading. */
function readMembershipCommands(cluster: LocalCluster, out: (s: string) => void, stopping: () => boolean): { close(): void } {
  const rl = createInterface({ input: process.stdin });
  let busy: Promise<void> = Promise.resolve();
  rl.on('line', (line) => {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (!cmd || stopping()) return;
    busy = busy.then(async () => {
      try {
        if (cmd === 'add') {
          const m = await cluster.grow({ learner: arg === 'learner' });
          out(
            `  ${m.name}  client ${m.clientUrl}  peer ${m.peerUrl}  pid ${m.pid}  log ${m.logFile}${arg === 'learner' ? '  (learner)' : ''}`,
          );
        } else if (cmd === 'promote' && arg) {
          await cluster.promote(arg);
          out(`promoted ${arg}`);
        } else if (cmd === 'remove' && arg) {
          await cluster.shrink(arg);
          out(`removed ${arg}; endpoints: ${cluster.endpoints}`);
        } else if (cmd === 'list') {
          for (const m of await cluster.memberList()) {
            out(
              `  ${m.ID.toString(16)}  ${m.name || '(unstarted)'}  ${m.peerURLs.join(',')}  ${m.clientURLs.join(',')}${m.isLearner ? '  learner' : ''}`,
            );
          }
        } else out(`unknown command: ${line.trim()}`);
      } catch (e) {
        out(`${cmd}: ${(e as Error).message}`);
      }
    });
  });
  return rl;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  cli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`cluster: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
