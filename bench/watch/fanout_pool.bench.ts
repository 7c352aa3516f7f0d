// The watch fan-out in one process, main-thread cost per applied entry: inline (WatchStream.sendEvents,
// each response framed by the call as ServerCall.write does) against the worker-thread fan-out
// (src/watch/fanout_pool.ts) with the plan shared (SharedArrayBuffer) or copied and transferred per task.
// W watchers on one key in streams of 100, one 256 B put per entry; the pool keeps at most 8 tasks out.
//   node dist/bench/watch/fanout_pool.bench.js [--ms 1000] [--watchers 100,1000,10000] [--modes inline,shared,transfer]
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { MvccEvent } from '../../src/mvcc/index.js';
import { ProtoWriter } from '../../src/proto/wire.js';
import { sizeWatchResponse, writeWatchResponse, type WatchResponseInit } from '../../src/proto/rpc.js';
import { WatchFanout, WatchHub, WatchStream, WATCH_FANOUT_DEFAULTS, startFanoutThreads, type WatchStore } from '../../src/watch/index.js';
import type { FramedWatchSink } from '../../src/watch/ordered_sink.js';
import type { Scheduler } from '../../src/scheduler.js';
import { median } from '../lib/stats.js';

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const runMs = Number(argValue('--ms') ?? 1000);
const WATCHERS = (argValue('--watchers') ?? '100,1000,10000').split(',').map(Number);
const MODES = (argValue('--modes') ?? 'inline,shared,transfer').split(',') as Case['mode'][];
const RUNS = 3;
const PER_STREAM = 100;
const TASKS_OUT_MAX = 8;

/** CPU time of the main thread alone (its tid is the pid), in ns. */
function mainThreadCpuNs(): number {
  const text = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8');
  return Number(text.slice(0, text.indexOf(' ')));
}

/** A call's writer that frames as ServerCall.write does and drops the bytes. */
class NullCall implements FramedWatchSink {
  done = false;
  writable = true;
  bytes = 0;
  write(res: WatchResponseInit): boolean {
    const size = sizeWatchResponse(res);
    const w = new ProtoWriter(5 + size);
    w.buf[0] = 0;
    w.pos = 5;
    writeWatchResponse(res, w);
    this.bytes += w.finish().length;
    return true;
  }
  writeFramed(framed: Uint8Array): boolean {
    this.bytes += framed.length;
    return true;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
}

const noSched: Scheduler = {
  immediate: () => {},
  timeout: () => undefined,
  interval: () => undefined,
  cancel: () => {},
  now: () => Date.now(),
};

interface Case {
  mode: 'inline' | 'shared' | 'transfer';
  watchers: number;
}

async function runCase(c: Case): Promise<{ mainUsPerEntry: number; entriesPerSec: number; mainUsPerResponse: number }> {
  const store = { currentRevision: 1, compactRevision: 0, history: () => {}, get: () => undefined } as WatchStore & {
    currentRevision: number;
  };
  const header = (rev: number) => ({ cluster_id: 0x1234n, member_id: 0xabcdn, revision: rev, raft_term: 3 });
  const fanout =
    c.mode === 'inline'
      ? undefined
      : new WatchFanout(startFanoutThreads(2), header, { ...WATCH_FANOUT_DEFAULTS, watchersMin: 1, input: c.mode });
  const hub = new WatchHub(() => store, noSched, undefined, fanout);
  let ws: WatchStream | undefined;
  for (let i = 0; i < c.watchers; i++) {
    if (i % PER_STREAM === 0) {
      const call = new NullCall();
      const out = fanout?.wrap(call) ?? call;
      ws = new WatchStream(hub, out, { header, fragmentBytes: 1 << 21, watchersPerStreamMax: 1000 });
      fanout?.register(ws, out);
    }
    ws!.onRequest({
      create_request: {
        key: Buffer.from('key'),
        range_end: new Uint8Array(0),
        start_revision: 0,
        progress_notify: false,
        filters: [],
        prev_kv: false,
        watch_id: 0,
        fragment: false,
      },
    });
  }
  const value = Buffer.alloc(256, 'v');
  let index = 0;
  const entry = (): void => {
    const rev = ++store.currentRevision;
    const ev: MvccEvent = {
      type: 0,
      kv: { key: Buffer.from('key'), create_revision: 2, mod_revision: rev, version: rev - 1, value, lease: 0n },
    };
    hub.deliver({ kind: 'kv', index: ++index, revision: rev, changes: [ev] });
  };
  const body = async (untilMs: number): Promise<number> => {
    let n = 0;
    while (performance.now() < untilMs) {
      entry();
      n++;
      if (fanout !== undefined && fanout.tasksInflight >= TASKS_OUT_MAX) await fanout.idle();
      else if (n % 16 === 0) await new Promise((r) => setImmediate(r));
    }
    await fanout?.idle();
    return n;
  };
  await body(performance.now() + 200);
  const samples: Array<{ us: number; rate: number }> = [];
  for (let r = 0; r < RUNS; r++) {
    const cpu0 = mainThreadCpuNs();
    const t0 = performance.now();
    const n = await body(t0 + runMs);
    const wallMs = performance.now() - t0;
    samples.push({ us: (mainThreadCpuNs() - cpu0) / 1000 / n, rate: (n * 1000) / wallMs });
  }
  if (fanout !== undefined) {
    if (fanout.stats.failedTasks > 0) throw new Error(`${c.mode}: ${fanout.stats.failedTasks} tasks failed`);
    await fanout.close();
  }
  const us = median(samples.map((s) => s.us));
  return { mainUsPerEntry: us, entriesPerSec: median(samples.map((s) => s.rate)), mainUsPerResponse: us / c.watchers };
}

async function main(): Promise<void> {
  const rows: string[] = [
    '| watchers | inline main µs/entry | shared main µs/entry | transfer main µs/entry | inline entries/s | shared entries/s | transfer entries/s | shared ÷ inline (main CPU) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const watchers of WATCHERS) {
    const r: Record<string, Awaited<ReturnType<typeof runCase>>> = {};
    for (const mode of MODES) {
      r[mode] = await runCase({ mode, watchers });
      process.stdout.write(`${watchers} ${mode}: ${JSON.stringify(r[mode])}\n`);
    }
    if (MODES.length < 3) continue;
    const f = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
    rows.push(
      `| ${watchers} | ${f(r.inline.mainUsPerEntry)} | ${f(r.shared.mainUsPerEntry)} | ${f(r.transfer.mainUsPerEntry)} | ${r.inline.entriesPerSec.toFixed(0)} | ${r.shared.entriesPerSec.toFixed(0)} | ${r.transfer.entriesPerSec.toFixed(0)} | ${(r.shared.mainUsPerEntry / r.inline.mainUsPerEntry).toFixed(2)} |`,
    );
  }
  process.stdout.write(`\n${rows.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
