// Auth beside etcd 3.4 (`npm run bench:auth`): one fresh member per server, workload and round, alternating
// which goes first, the same generator for both, etcd's default bcrypt cost (10). Workloads:
//   authenticate  C closed loops of Authenticate (root's password): calls per second. Each is one bcrypt
//                 compare (tens of ms of CPU) and one Raft entry: the hash bounds it, on as many cores as run it
//   put-simple    C closed loops of Put with a simple token, auth on: puts per second
//   put-jwt       the same with an RS256 JWT (--auth-token jwt,...)
//   put-off       the same puts with auth off, for scale
//   range-simple  C closed loops of a linearizable Range of one key (256-byte value) with a simple token,
//                 auth on: ranges per second
//   range-jwt     the same with an RS256 JWT
//   range-off     the same ranges with auth off, for scale
// Results go to the console (and, with --out FILE, into its `auth` section); medians over the rounds.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type ServerKind } from '../lib/servers.js';
import { GrpcConn } from '../lib/grpc-client.js';
import { spliceSection } from '../lib/results.js';
import { median } from '../lib/stats.js';
import {
  decodeAuthenticateResponse,
  encodeAuthenticateRequest,
  encodeAuthEnableRequest,
  encodeAuthRoleAddRequest,
  encodeAuthUserAddRequest,
  encodeAuthUserGrantRoleRequest,
  encodePutRequest,
  encodeRangeRequest,
} from '../../src/proto/rpc.js';
import { readFlags } from '../lib/flags.js';

interface Options {
  rounds: number;
  workloads: string[];
  tetcdCmd: string[];
  etcdCmd: string[];
  durationMs: number;
  authLoops: number;
  putLoops: number;
  out: string;
}

function options(argv: string[]): Options {
  const o: Options = {
    rounds: 3,
    workloads: ['authenticate', 'put-simple', 'put-jwt', 'put-off', 'range-simple', 'range-jwt', 'range-off'],
    tetcdCmd: ['bin/tetcd'],
    etcdCmd: ['/usr/bin/etcd'],
    durationMs: 3000,
    authLoops: 16,
    putLoops: 64,
    out: '',
  };
  return readFlags(argv, o, {
    '--rounds': ['rounds', 'number'],
    '--workloads': ['workloads', 'list'],
    '--tetcd-cmd': ['tetcdCmd', 'command'],
    '--etcd-cmd': ['etcdCmd', 'command'],
    '--duration-ms': ['durationMs', 'number'],
    '--auth-loops': ['authLoops', 'number'],
    '--put-loops': ['putLoops', 'number'],
    '--out': ['out', 'string'],
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CONNECTIONS = 8;
const PASSWORD = 'bench-root-password';

async function must(c: GrpcConn, path: string, body: Uint8Array, token?: string): Promise<Buffer> {
  const r = await c.unary(path, body, 30_000, token === undefined ? undefined : { token });
  if (r.grpcStatus !== 0) throw new Error(`${path}: ${r.grpcStatus} ${r.grpcMessage}`);
  return r.body;
}

/** root with the root role, auth on; returns root's token. */
async function enableAuth(c: GrpcConn): Promise<string> {
  await must(c, '/etcdserverpb.Auth/UserAdd', encodeAuthUserAddRequest({ name: 'root', password: PASSWORD }));
  await must(c, '/etcdserverpb.Auth/RoleAdd', encodeAuthRoleAddRequest({ name: 'root' }));
  await must(c, '/etcdserverpb.Auth/UserGrantRole', encodeAuthUserGrantRoleRequest({ user: 'root', role: 'root' }));
  await must(c, '/etcdserverpb.Auth/AuthEnable', encodeAuthEnableRequest({}));
  const r = await must(c, '/etcdserverpb.Auth/Authenticate', encodeAuthenticateRequest({ name: 'root', password: PASSWORD }));
  return decodeAuthenticateResponse(r).token;
}

/** `loops` closed loops of `call` for the duration: completed calls per second, and errors. */
async function closedLoops(
  conns: GrpcConn[],
  loops: number,
  durationMs: number,
  call: (c: GrpcConn, i: number) => Promise<boolean>,
): Promise<Record<string, number>> {
  let done = 0;
  let errors = 0;
  let stop = false;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: loops }, async (_, i) => {
      const c = conns[i % conns.length];
      for (let n = 0; !stop; n++) {
        if (await call(c, i * 1_000_000 + n)) done++;
        else errors++;
      }
    }).concat([sleep(durationMs).then(() => void (stop = true))]),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { perSec: done / elapsedS, errors, generatorCores: (cpu.user + cpu.system) / 1e6 / elapsedS };
}

async function run(endpoint: string, workload: string, o: Options): Promise<Record<string, number>> {
  const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => GrpcConn.connect(endpoint, 5000)));
  try {
    const token = workload.endsWith('-off') ? undefined : await enableAuth(conns[0]);
    if (workload === 'authenticate') {
      const body = encodeAuthenticateRequest({ name: 'root', password: PASSWORD });
      return await closedLoops(
        conns,
        o.authLoops,
        o.durationMs,
        async (c) => (await c.unary('/etcdserverpb.Auth/Authenticate', body, 30_000)).grpcStatus === 0,
      );
    }
    const value = Buffer.alloc(256, 0x61);
    const md = token === undefined ? undefined : { token };
    if (workload.startsWith('range-')) {
      const key = Buffer.from('range-key');
      await must(conns[0], '/etcdserverpb.KV/Put', encodePutRequest({ key, value }), token);
      const body = encodeRangeRequest({ key });
      return await closedLoops(
        conns,
        o.putLoops,
        o.durationMs,
        async (c) => (await c.unary('/etcdserverpb.KV/Range', body, 30_000, md)).grpcStatus === 0,
      );
    }
    return await closedLoops(conns, o.putLoops, o.durationMs, async (c, n) => {
      const r = await c.unary('/etcdserverpb.KV/Put', encodePutRequest({ key: Buffer.from(`k${n % 10_000}`), value }), 30_000, md);
      return r.grpcStatus === 0;
    });
  } finally {
    for (const c of conns) c.close();
  }
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const base = mkdtempSync('/tmp/tetcd-auth-bench-');
  const keys = join(base, 'keys');
  mkdirSync(keys);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(keys, 'priv.pem'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
  writeFileSync(join(keys, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  const jwt = ['--auth-token', `jwt,pub-key=${join(keys, 'pub.pem')},priv-key=${join(keys, 'priv.pem')},sign-method=RS256,ttl=10m`];
  const results: Record<string, Record<ServerKind, Record<string, number>[]>> = {};
  try {
    for (let round = 0; round < o.rounds; round++) {
      const kinds: ServerKind[] = round % 2 === 0 ? ['etcd', 'tetcd'] : ['tetcd', 'etcd'];
      for (const workload of o.workloads) {
        for (const kind of kinds) {
          const dir = join(base, `${workload}-${kind}-${round}`);
          mkdirSync(dir, { recursive: true });
          const cmd = [...(kind === 'etcd' ? o.etcdCmd : o.tetcdCmd), ...(workload.endsWith('-jwt') ? jwt : [])];
          const cluster = await Cluster.start({ kind, cmd, cwd: process.cwd(), members: 1, baseDir: dir });
          try {
            const row = await run(cluster.endpoints[0], workload, o);
            (results[workload] ??= { etcd: [], tetcd: [] })[kind].push(row);
            process.stdout.write(`round ${round + 1} ${workload} ${kind}: ${JSON.stringify(row)}\n`);
          } finally {
            await cluster.stop();
            rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  const lines = [
    '### Auth beside etcd 3.4',
    '',
    `\`npm run bench:auth\`, ${new Date().toISOString().slice(0, 16)} UTC, medians of ${o.rounds} rounds of ${o.durationMs} ms, one fresh member per server, workload and round, bcrypt cost 10 (both defaults); authenticate: ${o.authLoops} closed loops; puts: ${o.putLoops} closed loops of 256-byte values as root over ${CONNECTIONS} connections; ranges: as many loops of a linearizable Range of one 256-byte key, as root.`,
    '',
    '| workload | measure | etcd | tetcd | tetcd/etcd |',
    '|---|---|---|---|---|',
  ];
  for (const [workload, byKind] of Object.entries(results)) {
    for (const measure of Object.keys(byKind.etcd[0] ?? {})) {
      const e = median(byKind.etcd.map((r) => r[measure]));
      const t = median(byKind.tetcd.map((r) => r[measure]));
      lines.push(`| ${workload} | ${measure} | ${e.toFixed(2)} | ${t.toFixed(2)} | ${(t / e).toFixed(2)} |`);
    }
  }
  const text = lines.join('\n');
  process.stdout.write(`\n${text}\n`);
  if (o.out !== '') writeFileSync(o.out, spliceSection(readFileSync(o.out, 'utf8'), 'auth', text));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
