// What prom-client and pino cost per call, beside the plain counters and the hand-written JSON logger
// they would replace: decides whether the hot path may call them (bench/RESULTS.md, "metrics and logs").
//   node dist/bench/obs/micro.bench.js [--ms 500] [--rounds 5]
import { openSync, closeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Counter, Histogram, Registry } from 'prom-client';
import pino from 'pino';
import { HistogramCounts, DISK_SECONDS_BUCKETS } from '../../src/metrics.js';
import { newLogger } from '../../src/log.js';

const args = process.argv.slice(2);
const arg = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const ms = arg('ms', 500);
const rounds = arg('rounds', 5);

/** ns per call of `fn`, over about `ms` milliseconds, median of `rounds`. */
function measure(fn: (i: number) => void): number {
  const out: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < ms) {
      for (let i = 0; i < 10_000; i++) fn(i);
      n += 10_000;
      t = performance.now();
    }
    out.push(((t - t0) * 1e6) / n);
  }
  out.sort((a, b) => a - b);
  return out[out.length >> 1];
}

const buckets = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];
const reg = new Registry();
const counter = new Counter({ name: 'c', help: 'h', registers: [reg] });
const labelled = new Counter({
  name: 'cl',
  help: 'h',
  labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
  registers: [reg],
});
const labels = { grpc_type: 'unary', grpc_service: 'etcdserverpb.KV', grpc_method: 'Put', grpc_code: 'OK' };
const child = labelled.labels(labels);
const hist = new Histogram({ name: 'h', help: 'h', buckets, registers: [reg] });
const histL = new Histogram({ name: 'hl', help: 'h', buckets, labelNames: ['grpc_type', 'grpc_service', 'grpc_method'], registers: [reg] });
const hl = { grpc_type: 'unary', grpc_service: 'etcdserverpb.KV', grpc_method: 'Put' };
// The hand-kept alternative: numbers in place, read at scrape time.
const plain = { n: 0 };
const counts = new HistogramCounts(DISK_SECONDS_BUCKETS);
const values = Array.from({ length: 1024 }, (_, i) => (i % 97) / 10_000);

const rows: [string, number][] = [];
rows.push(['plain counter x++', measure(() => plain.n++)]);
rows.push(['prom-client Counter.inc()', measure(() => counter.inc())]);
rows.push(['prom-client Counter.inc(labels) (4 labels)', measure(() => labelled.inc(labels))]);
rows.push(['prom-client Counter.labels(...) child .inc()', measure(() => child.inc())]);
rows.push(['HistogramCounts.observe(v) (src/metrics.ts)', measure((i) => counts.observe(values[i & 1023]))]);
rows.push(['prom-client Histogram.observe(v)', measure((i) => hist.observe(values[i & 1023]))]);
rows.push(['prom-client Histogram.observe(labels, v) (3 labels)', measure((i) => histL.observe(hl, values[i & 1023]))]);

// Logs: one info line with three fields, to /dev/null, as etcd's "apply request took too long" is shaped.
const devnull = openSync('/dev/null', 'w');
const fields = { took: '123.4ms', 'expected-duration': '100ms', prefix: 'read-only range ', request: 'key:"foo"' };
const hand = (msg: string, f: Record<string, unknown>) => {
  const line = JSON.stringify({ level: 'info', ts: new Date().toISOString(), msg, ...f }) + '\n';
  return line;
};
const sinkSync = pino.destination({ fd: devnull, sync: true });
const sinkAsync = pino.destination({ fd: devnull, sync: false, minLength: 4096 });
const pinoOpts = {
  base: null,
  messageKey: 'msg',
  timestamp: () => `,"ts":"${new Date().toISOString()}"`,
  formatters: { level: (label: string) => ({ level: label }) },
};
const pSync = pino(pinoOpts, sinkSync);
const pAsync = pino(pinoOpts, sinkAsync);
rows.push(['hand JSON.stringify line (no write)', measure(() => hand('apply request took too long', fields))]);
rows.push(['pino info(fields, msg), sync /dev/null', measure(() => pSync.info(fields, 'apply request took too long'))]);
rows.push(['pino info(fields, msg), async /dev/null', measure(() => pAsync.info(fields, 'apply request took too long'))]);
rows.push(['pino below level (debug at info)', measure(() => pAsync.debug(fields, 'x'))]);
const tetcdLog = newLogger('info', { outputs: ['/dev/null'] });
rows.push(['tetcd newLogger (pino, zap fields), async /dev/null', measure(() => tetcdLog.info('apply request took too long', fields))]);
sinkAsync.flushSync();
closeSync(devnull);

const wide = Math.max(...rows.map(([n]) => n.length));
console.log(`node ${process.version}; median of ${rounds} rounds of ~${ms} ms each (${plain.n > 0 && counts.count > 0 ? 'ran' : '?'})`);
for (const [name, ns] of rows) console.log(`${name.padEnd(wide)}  ${ns.toFixed(1).padStart(8)} ns/call`);
