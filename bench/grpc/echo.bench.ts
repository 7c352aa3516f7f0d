// Unary echo throughput, our GrpcServer vs a @grpc/grpc-js server running the same handler, each in its
// own process, driven by bench/grpc/loadgen.ts: 1 call in flight on 1 connection, and 1000 in flight
// over 100 connections. Besides requests/s it reports the server's CPU time per request over the
// measured window: on a 2-core machine the load generator shares the CPU, so requests per
// server-CPU-second is the fairer measure of what each server can do. Not part of `npm test`.
//
//   node dist/bench/grpc/echo.bench.js [--duration-ms 5000] [--workers 2] [--only tetcd|grpcjs]
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { runLoad, type LoadResult } from './loadgen.js';
import { encodeEcho } from '../../tools/lib/echo.js';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const durationMs = Number(arg('duration-ms', '5000'));
const workers = Number(arg('workers', '2'));
const only = arg('only', '');

interface ServerProc {
  child: ChildProcess;
  port: number;
  nextLine(): Promise<string>;
}

async function startServer(kind: string): Promise<ServerProc> {
  const child = spawn(process.execPath, [join(here, 'echo-server.js'), kind], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      const w = waiters.shift();
      if (w !== undefined) w(line);
      else lines.push(line);
    }
  });
  const nextLine = (): Promise<string> => {
    const l = lines.shift();
    return l !== undefined ? Promise.resolve(l) : new Promise((resolve) => waiters.push(resolve));
  };
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`))));
  exited.catch(() => {});
  const port = (JSON.parse(await Promise.race([nextLine(), exited])) as { port: number }).port;
  return { child, port, nextLine };
}

async function serverCpuUs(s: ServerProc): Promise<number> {
  s.child.stdin!.write('cpu\n');
  return (JSON.parse(await s.nextLine()) as { cpuUs: number }).cpuUs;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const body = encodeEcho({ payload: Buffer.alloc(128, 0x61), n: 7 });
const scenarios = [
  { name: '1 call, 1 connection', connections: 1, concurrency: 1 },
  { name: '1000 calls, 100 connections', connections: 100, concurrency: 1000 },
];
const warmupMs = 1000;
const rows: { server: string; scenario: string; result: LoadResult; serverCpuUsPerRequest: number; requestsPerServerCpuSecond: number }[] =
  [];
for (const kind of ['tetcd', 'grpcjs'].filter((k) => only === '' || k === only)) {
  for (const sc of scenarios) {
    const server = await startServer(kind);
    const load = runLoad({
      target: `127.0.0.1:${server.port}`,
      path: '/test.Echo/Unary',
      body,
      warmupMs,
      connections: sc.connections,
      concurrency: sc.concurrency,
      durationMs,
      workers: Math.min(workers, sc.connections),
    });
    // Sample the server's CPU over (roughly) the measured window; worker start-up takes ~100 ms.
    await sleep(warmupMs + 150);
    const cpu0 = await serverCpuUs(server);
    await sleep(durationMs);
    const cpu1 = await serverCpuUs(server);
    const result = await load;
    server.child.stdin!.end();
    await new Promise((resolve) => server.child.once('exit', resolve));
    const cpuPerReq = result.requests > 0 ? (cpu1 - cpu0) / result.requests : 0;
    rows.push({
      server: kind,
      scenario: sc.name,
      result,
      serverCpuUsPerRequest: Math.round(cpuPerReq * 10) / 10,
      requestsPerServerCpuSecond: Math.round(1e6 / cpuPerReq),
    });
    const r = result;
    console.log(
      `${kind.padEnd(7)} ${sc.name.padEnd(28)} ${String(r.rps).padStart(7)} req/s  p50 ${r.latencyMs.p50.toFixed(3)} ms  p99 ${r.latencyMs.p99.toFixed(3)} ms  errors ${r.errors}  server ${cpuPerReq.toFixed(1)} µs CPU/req (${Math.round(1e6 / cpuPerReq)} req per CPU-s)`,
    );
  }
}
console.log(JSON.stringify(rows));
