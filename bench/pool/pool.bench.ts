// Does a Piscina pool lower the member's main-thread CPU per request? Measures request decode -> proposal
// envelopes and watch fan-out inline vs in a 2-thread pool, counting all the main thread still does.
//   node dist/bench/pool/pool.bench.js [--out bench/RESULTS.md] [--ms 1000] [--only decode|watch]
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import {
  decodePutRequest,
  encodePutRequest,
  sizeWatchResponse,
  writeWatchResponse,
  type ResponseHeaderInit,
  type WatchResponseInit,
} from '../../src/proto/rpc.js';
import { encodeEvent, type EventInit } from '../../src/proto/kv.js';
import { EMPTY_BYTES } from '../../src/proto/wire.js';
import { validatePutRequest } from '../../src/server/apply_kv.js';
import { encodeProposal } from '../../src/server/proposal.js';
import {
  BATCH_REQUESTS_MAX,
  FANOUT_TASK_BYTES_MAX,
  GRPC_FRAME_BYTES,
  decodeResultHeaderWords,
  encodeEventsBlock,
  encodeHeader,
  fanoutResultHeaderWords,
  frameInto,
  framedBytes,
  framedWatchResponseBytes,
  writeFrameHeader,
  writeWatchPrefix,
  writerOver,
} from './work.js';
import type { PoolTask } from './pool.worker.js';

// ---- options ----

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i >= 0) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}
const outPath = argValue('--out');
const runMs = Number(argValue('--ms') ?? 1000);
const warmMs = Math.min(200, runMs);
const only = argValue('--only');
const RUNS = 3;
const THREADS = 2;
/** Tasks the main thread keeps posted at once; enough to keep both workers busy through round trips. */
const IN_FLIGHT_MAX = 8;
const BATCH_SIZES = [1, 16, 128, 1024];
const WATCHERS = [1, 100, 1000];
const KEY_BYTES = 8;
const VALUE_BYTES = 256;
const MARK_START = '<!-- bench:pool start -->';
const MARK_END = '<!-- bench:pool end -->';

const pool = new Piscina<PoolTask, ArrayBuffer>({
  filename: new URL('./pool.worker.js', import.meta.url).href,
  minThreads: THREADS,
  maxThreads: THREADS,
  idleTimeout: 60_000,
  maxQueue: 4 * IN_FLIGHT_MAX,
});

let sink = 0;

// ---- measurement ----

/** CPU time of the main thread alone (Linux: its tid is the pid), in ns; process.cpuUsage counts the workers too. */
function mainThreadCpuNs(): number {
  const text = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8');
  return Number(text.slice(0, text.indexOf(' ')));
}

interface Sample {
  units: number;
  wallMs: number;
  mainCpuMs: number;
  procCpuMs: number;
  elu: number;
}

/** A timed body: does whole units of work until performance.now() passes untilMs, returns the units done. */
type Body = (untilMs: number) => Promise<number>;

async function sampleOnce(body: Body, ms: number): Promise<Sample> {
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadCpuNs();
  const t0 = performance.now();
  const units = await body(t0 + ms);
  const wallMs = performance.now() - t0;
  const main1 = mainThreadCpuNs();
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0).utilization;
  return { units, wallMs, mainCpuMs: (main1 - main0) / 1e6, procCpuMs: (cpu.user + cpu.system) / 1000, elu };
}

/** Medians over RUNS runs of one case. */
interface CaseResult {
  mainUsPerUnit: number;
  procUsPerUnit: number;
  unitsPerSec: number;
  elu: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
};

async function measure(name: string, body: Body): Promise<CaseResult> {
  await body(performance.now() + warmMs);
  const samples: Sample[] = [];
  for (let r = 0; r < RUNS; r++) samples.push(await sampleOnce(body, runMs));
  const res: CaseResult = {
    mainUsPerUnit: median(samples.map((s) => (s.mainCpuMs * 1000) / s.units)),
    procUsPerUnit: median(samples.map((s) => (s.procCpuMs * 1000) / s.units)),
    unitsPerSec: median(samples.map((s) => (s.units * 1000) / s.wallMs)),
    elu: median(samples.map((s) => s.elu)),
  };
  process.stderr.write(
    `${name.padEnd(34)} main ${res.mainUsPerUnit.toFixed(3).padStart(9)} µs/unit  proc ${res.procUsPerUnit.toFixed(3).padStart(9)} µs/unit  ${Math.round(res.unitsPerSec).toString().padStart(9)} units/s  ELU ${res.elu.toFixed(2)}\n`,
  );
  return res;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs `step` (returns units done) back to back until untilMs, letting the event loop turn every ~10 ms. */
async function driveInline(untilMs: number, step: () => number): Promise<number> {
  let units = 0;
  let now = performance.now();
  while (now < untilMs) {
    const sliceEnd = Math.min(untilMs, now + 10);
    while (now < sliceEnd) {
      units += step();
      now = performance.now();
    }
    await yieldToLoop();
    now = performance.now();
  }
  return units;
}

/** A pool task ready to post, with the units of work it stands for and what to do with its result. */
interface Posting {
  task: PoolTask;
  transferList: ArrayBuffer[] | undefined;
  units: number;
  consume: (result: ArrayBuffer) => void;
}

/** Keeps up to IN_FLIGHT_MAX tasks posted until untilMs, then waits for the last ones; returns units done. */
function drivePool(untilMs: number, next: () => Posting): Promise<number> {
  return new Promise((resolve, reject) => {
    let inFlight = 0;
    let units = 0;
    let failed = false;
    const pump = (): void => {
      while (!failed && inFlight < IN_FLIGHT_MAX && performance.now() < untilMs) {
        const p = next();
        inFlight++;
        pool.run(p.task, { transferList: p.transferList }).then(
          (result) => {
            inFlight--;
            p.consume(result);
            units += p.units;
            pump();
          },
          (err: unknown) => {
            failed = true;
            reject(err);
          },
        );
      }
      if (inFlight === 0 && !failed) resolve(units);
    };
    pump();
  });
}

// ---- case 1: Put requests -> proposal envelopes ----

function putRequests(count: number, firstKey: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const key = Buffer.from((firstKey + i).toString(16).padStart(KEY_BYTES, '0'));
    out.push(encodePutRequest({ key, value: Buffer.alloc(VALUE_BYTES, i & 255) }));
  }
  return out;
}

function framedBatch(messages: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(framedBytes(messages));
  frameInto(out, messages);
  return out;
}

/** Inline path: decode + etcd's checks + envelope per request, as the member's hot path does it. Returns requests done. */
function inlineEnvelopes(batch: Uint8Array, count: number, idBase: bigint, out: Uint8Array[]): number {
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const len = ((batch[pos + 1] << 24) >>> 0) + (batch[pos + 2] << 16) + (batch[pos + 3] << 8) + batch[pos + 4];
    const body = batch.subarray(pos + GRPC_FRAME_BYTES, pos + GRPC_FRAME_BYTES + len);
    pos += GRPC_FRAME_BYTES + len;
    try {
      const req = decodePutRequest(body);
      validatePutRequest(req);
      out[i] = encodeProposal(idBase + BigInt(i), { put: req });
    } catch {
      out[i] = EMPTY_BYTES;
    }
  }
  return count;
}

/** Main-thread side of a decode result: views of the envelopes (no copy); empty for a rejected request. */
function sliceEnvelopes(result: ArrayBuffer, count: number, out: Uint8Array[]): void {
  const words = new Uint32Array(result, 0, decodeResultHeaderWords(count));
  for (let i = 0; i < count; i++) {
    out[i] = words[i] === 0 ? new Uint8Array(result, words[count + i], words[count + i + 1] - words[count + i]) : EMPTY_BYTES;
  }
}

function checkEnvelopesMatch(): Promise<void> {
  const msgs = putRequests(20, 1);
  msgs[7] = encodePutRequest({ value: Buffer.alloc(VALUE_BYTES) }); // no key: etcd's EmptyKey
  const batch = framedBatch(msgs);
  const inline: Uint8Array[] = new Array(msgs.length);
  const idBase = 0x1234_5678_9abc_0000n;
  inlineEnvelopes(batch, msgs.length, idBase, inline);
  const ab = batch.slice().buffer;
  return pool
    .run({ kind: 'decode', task: { batch: ab, batchBytes: batch.length, count: msgs.length, idBase } }, { transferList: [ab] })
    .then((result) => {
      if (ab.byteLength !== 0) throw new Error('self-check: the batch was copied, not transferred');
      const pooled: Uint8Array[] = new Array(msgs.length);
      sliceEnvelopes(result, msgs.length, pooled);
      for (let i = 0; i < msgs.length; i++) {
        if (!Buffer.from(pooled[i]).equals(Buffer.from(inline[i])))
          throw new Error(`self-check: envelope ${i} differs between pool and inline`);
      }
      if (inline[7].length !== 0 || inline[6].length === 0) throw new Error('self-check: the keyless request was not rejected');
    });
}

async function benchDecode(): Promise<Map<number, { inline: CaseResult; pool: CaseResult; gather: CaseResult }>> {
  const res = new Map<number, { inline: CaseResult; pool: CaseResult; gather: CaseResult }>();
  let idBase = 1n << 40n;
  for (const n of BATCH_SIZES) {
    if (n > BATCH_REQUESTS_MAX) throw new Error('batch size over the limit');
    const msgs = putRequests(n, 0);
    const batch = framedBatch(msgs);
    const out: Uint8Array[] = new Array(n);
    const step = (): number => {
      const done = inlineEnvelopes(batch, n, idBase, out);
      idBase += BigInt(n);
      sink += out[n - 1].length;
      return done;
    };
    const inline = await measure(`decode inline batch=${n}`, (until) => driveInline(until, step));
    const consume = (result: ArrayBuffer): void => {
      const env: Uint8Array[] = new Array(n);
      sliceEnvelopes(result, n, env);
      sink += env[n - 1].length;
    };
    // The batch arrives contiguous: one memcpy into a fresh ArrayBuffer to transfer (node's own
    // receive buffers cannot be given away).
    const contiguous = (): Posting => {
      const ab = new ArrayBuffer(batch.length);
      new Uint8Array(ab).set(batch);
      const task: PoolTask = { kind: 'decode', task: { batch: ab, batchBytes: batch.length, count: n, idBase } };
      idBase += BigInt(n);
      return { task, transferList: [ab], units: n, consume };
    };
    const pooled = await measure(`decode pool batch=${n}`, (until) => drivePool(until, contiguous));
    // The requests arrive as separate messages (one per gRPC stream) and are framed into one buffer.
    const gathered = (): Posting => {
      const bytes = framedBytes(msgs);
      const ab = new ArrayBuffer(bytes);
      frameInto(new Uint8Array(ab), msgs);
      const task: PoolTask = { kind: 'decode', task: { batch: ab, batchBytes: bytes, count: n, idBase } };
      idBase += BigInt(n);
      return { task, transferList: [ab], units: n, consume };
    };
    const gather = await measure(`decode pool+gather batch=${n}`, (until) => drivePool(until, gathered));
    res.set(n, { inline, pool: pooled, gather });
  }
  return res;
}

// ---- case 2: watch fan-out ----

function putEvents(count: number): EventInit[] {
  const out: EventInit[] = [];
  for (let i = 0; i < count; i++) {
    const key = Buffer.from(i.toString(16).padStart(KEY_BYTES, '0'));
    out.push({
      kv: { key, create_revision: 1_000_000 + i, mod_revision: 1_000_000 + i, version: 1, value: Buffer.alloc(VALUE_BYTES, i & 255) },
    });
  }
  return out;
}

const header: ResponseHeaderInit = {
  cluster_id: 14841639068965178418n,
  member_id: 10276657743932975437n,
  revision: 1_000_000,
  raft_term: 2,
};

/** One framed WatchResponse through the generated codec, as an inline server would write it. */
function framedResponse(m: WatchResponseInit): Uint8Array {
  const size = sizeWatchResponse(m);
  const buf = Buffer.allocUnsafe(GRPC_FRAME_BYTES + size);
  writeFrameHeader(buf, 0, size);
  const w = writerOver(buf);
  w.pos = GRPC_FRAME_BYTES;
  writeWatchResponse(m, w);
  w.finish();
  return buf;
}

/** (a) every watcher's response encoded from the event objects. */
function fanoutPerWatcher(events: EventInit[], watchers: number, out: Uint8Array[]): void {
  for (let i = 0; i < watchers; i++) out[i] = framedResponse({ header, watch_id: i, events });
}

/** (c) events encoded once (events_encoded), copied into each watcher's response. */
function fanoutEncodedOnce(events: EventInit[], watchers: number, out: Uint8Array[]): void {
  const encoded = events.map(encodeEvent);
  for (let i = 0; i < watchers; i++) out[i] = framedResponse({ header, watch_id: i, events_encoded: encoded });
}

/** (d) events block encoded once and shared: per watcher only a small prefix; the transport writes [prefix, block]. */
function fanoutSharedBlock(events: EventInit[], watchers: number, out: Uint8Array[]): Uint8Array {
  const block = encodeEventsBlock(events);
  const hdr = encodeHeader(header);
  for (let i = 0; i < watchers; i++) {
    const prefix = Buffer.allocUnsafe(framedWatchResponseBytes(hdr.length, i, block.length) - block.length);
    const w = writerOver(prefix);
    writeWatchPrefix(w, hdr, i, block.length);
    w.finish();
    out[i] = prefix;
  }
  return block;
}

/** Watchers per pool task so that a task's result stays under FANOUT_TASK_BYTES_MAX. */
function watchersPerTask(hdrBytes: number, blockBytes: number, watchers: number): number {
  const per = framedWatchResponseBytes(hdrBytes, watchers, blockBytes) + 4;
  return Math.max(1, Math.min(watchers, Math.floor(FANOUT_TASK_BYTES_MAX / per) - 1));
}

/** (b) makes the postings of pool fan-outs: the main thread encodes the events block once into shared memory. */
function poolFanouts(events: EventInit[], watchers: number, consume: (r: ArrayBuffer, count: number) => void): () => Posting {
  let sab: SharedArrayBuffer | undefined;
  let blockBytes = 0;
  let hdr = EMPTY_BYTES;
  let chunk = 1;
  let nextWatcher = watchers;
  return () => {
    if (nextWatcher >= watchers) {
      const block = encodeEventsBlock(events, (n) => new Uint8Array(new SharedArrayBuffer(n)));
      sab = block.buffer as SharedArrayBuffer;
      blockBytes = block.length;
      hdr = encodeHeader(header);
      chunk = watchersPerTask(hdr.length, blockBytes, watchers);
      nextWatcher = 0;
    }
    const count = Math.min(chunk, watchers - nextWatcher);
    const task: PoolTask = {
      kind: 'fanout',
      task: { events: sab as SharedArrayBuffer, eventsBytes: blockBytes, header: hdr, watchIdFirst: nextWatcher, count },
    };
    nextWatcher += count;
    return { task, transferList: undefined, units: count, consume: (r) => consume(r, count) };
  };
}

function sliceResponses(result: ArrayBuffer, count: number, out: Uint8Array[]): void {
  const words = new Uint32Array(result, 0, fanoutResultHeaderWords(count));
  for (let i = 0; i < count; i++) out[i] = new Uint8Array(result, words[i], words[i + 1] - words[i]);
}

async function checkResponsesMatch(): Promise<void> {
  for (const m of [1, 16]) {
    const events = putEvents(m);
    const w = 3;
    const a: Uint8Array[] = new Array(w);
    const c: Uint8Array[] = new Array(w);
    const d: Uint8Array[] = new Array(w);
    fanoutPerWatcher(events, w, a);
    fanoutEncodedOnce(events, w, c);
    const block = fanoutSharedBlock(events, w, d);
    const b: Uint8Array[] = new Array(w);
    const posting = poolFanouts(events, w, (r, count) => sliceResponses(r, count, b))();
    if (posting.units !== w) throw new Error('self-check: fan-out split over tasks');
    posting.consume(await pool.run(posting.task));
    for (let i = 0; i < w; i++) {
      const ref = Buffer.from(a[i]);
      if (!ref.equals(Buffer.from(c[i]))) throw new Error(`self-check: events_encoded response ${i} differs`);
      if (!ref.equals(Buffer.concat([d[i], block]))) throw new Error(`self-check: shared-block response ${i} differs`);
      if (b[i] === undefined || !ref.equals(Buffer.from(b[i]))) throw new Error(`self-check: pool response ${i} differs`);
    }
  }
}

interface WatchRow {
  m: number;
  w: number;
  a: CaseResult;
  b: CaseResult;
  c?: CaseResult;
  d?: CaseResult;
}

async function benchWatch(): Promise<WatchRow[]> {
  const rows: WatchRow[] = [];
  for (const m of BATCH_SIZES) {
    const events = putEvents(m);
    for (const w of WATCHERS) {
      const out: Uint8Array[] = new Array(w);
      const a = await measure(`watch inline M=${m} W=${w}`, (until) =>
        driveInline(until, () => {
          fanoutPerWatcher(events, w, out);
          sink += out[w - 1].length;
          return w;
        }),
      );
      const b = await measure(`watch pool M=${m} W=${w}`, (until) =>
        drivePool(
          until,
          poolFanouts(events, w, (r, count) => {
            const views: Uint8Array[] = new Array(count);
            sliceResponses(r, count, views);
            sink += views[count - 1].length;
          }),
        ),
      );
      const row: WatchRow = { m, w, a, b };
      // With one watcher, encoding once is encoding per watcher.
      if (w > 1) {
        row.c = await measure(`watch inline-once M=${m} W=${w}`, (until) =>
          driveInline(until, () => {
            fanoutEncodedOnce(events, w, out);
            sink += out[w - 1].length;
            return w;
          }),
        );
        row.d = await measure(`watch inline-shared M=${m} W=${w}`, (until) =>
          driveInline(until, () => {
            sink += fanoutSharedBlock(events, w, out).length + out[w - 1].length;
            return w;
          }),
        );
      }
      rows.push(row);
    }
  }
  return rows;
}

// ---- report ----

const f2 = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(2));
const int = (x: number): string => Math.round(x).toLocaleString('en-US');

function renderDecode(res: Map<number, { inline: CaseResult; pool: CaseResult; gather: CaseResult }>): string[] {
  const out: string[] = [];
  out.push('### 1. Put request decode + validate + proposal envelope');
  out.push('');
  out.push(
    "Main-thread CPU µs per request (lower is better; the main thread is the bottleneck), throughput in requests/s, and the whole process's CPU (main + workers) per request.",
  );
  out.push('');
  out.push(
    '| batch | inline main µs/req | inline req/s | pool main µs/req | pool req/s | pool process µs/req | pool+gather main µs/req | pool+gather req/s | pool ÷ inline (main CPU) |',
  );
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [n, r] of res) {
    out.push(
      `| ${n} | ${f2(r.inline.mainUsPerUnit)} | ${int(r.inline.unitsPerSec)} | ${f2(r.pool.mainUsPerUnit)} | ${int(r.pool.unitsPerSec)} | ${f2(r.pool.procUsPerUnit)} | ${f2(r.gather.mainUsPerUnit)} | ${int(r.gather.unitsPerSec)} | ${(r.pool.mainUsPerUnit / r.inline.mainUsPerUnit).toFixed(2)} |`,
    );
  }
  return out;
}

function renderWatch(rows: WatchRow[]): string[] {
  const out: string[] = [];
  out.push('### 2. Watch fan-out: M Put events to W watchers, one framed WatchResponse each');
  out.push('');
  out.push(
    'Main-thread CPU µs per watcher response, then in parentheses per delivered event (= per response ÷ M); responses/s below. (a) inline, each response encoded from the event objects; (c) inline, events encoded once (`events_encoded`) and copied into each response; (d) inline, events block encoded once and shared: per watcher only a ~40 B prefix, the transport writes [prefix, block]; (b) pool: the main thread encodes the events block once into a SharedArrayBuffer, workers build the framed responses into transferred buffers (≤ 16 MiB per task), the main thread slices.',
  );
  out.push('');
  out.push(
    '| M | W | (a) inline µs/resp | (c) inline-once | (d) inline-shared | (b) pool | pool process µs/resp | (a) resp/s | (c) resp/s | (d) resp/s | (b) resp/s |',
  );
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const cell = (r: CaseResult | undefined, m: number): string =>
    r === undefined ? '–' : `${f2(r.mainUsPerUnit)} (${f2(r.mainUsPerUnit / m)})`;
  for (const r of rows) {
    out.push(
      `| ${r.m} | ${r.w} | ${cell(r.a, r.m)} | ${cell(r.c, r.m)} | ${cell(r.d, r.m)} | ${cell(r.b, r.m)} | ${f2(r.b.procUsPerUnit)} | ${int(r.a.unitsPerSec)} | ${r.c ? int(r.c.unitsPerSec) : '–'} | ${r.d ? int(r.d.unitsPerSec) : '–'} | ${int(r.b.unitsPerSec)} |`,
    );
  }
  return out;
}

/**
 * Main-thread µs per put of a saturated member at put-1000: ≈ 35k req/s on one busy main thread in the
 * run section of bench/RESULTS.md. Only used to put the savings measured here in proportion.
 */
const MEMBER_MAIN_US_PER_PUT = 1e6 / 35_000;

function decisionText(
  dec: Map<number, { inline: CaseResult; pool: CaseResult; gather: CaseResult }> | undefined,
  rows: WatchRow[] | undefined,
): string[] {
  const out: string[] = ['### Decision', ''];
  if (dec !== undefined) {
    const entries = [...dec];
    const firstPaying = (pick: (r: { inline: CaseResult; pool: CaseResult; gather: CaseResult }) => CaseResult): number | undefined =>
      entries.find(([, r]) => pick(r).mainUsPerUnit < r.inline.mainUsPerUnit)?.[0];
    const breakEven = (n: number | undefined): string => {
      if (n === undefined) return 'pays at no measured batch size';
      const i = BATCH_SIZES.indexOf(n);
      return i === 0
        ? `pays from batch ${n} on`
        : `pays from batch ${n} on (break-even between ${BATCH_SIZES[i - 1]} and ${n} requests per task)`;
    };
    const parts = entries.map(([n, r]) => `batch ${n}: ${f2(r.inline.mainUsPerUnit)} → ${f2(r.gather.mainUsPerUnit)} µs`);
    const best = Math.max(...entries.map(([, r]) => r.inline.mainUsPerUnit - r.gather.mainUsPerUnit));
    out.push(
      `- **Request decode** — main-thread CPU per request, inline → pool with gather: ${parts.join('; ')}. ` +
        `With the batch already contiguous the pool ${breakEven(firstPaying((r) => r.pool))}; counting the copy of the separate request messages into one buffer (what the member really has to do) it ${breakEven(firstPaying((r) => r.gather))}. ` +
        `The most it saves is ${f2(Math.max(0, best))} µs per request, ${((100 * Math.max(0, best)) / MEMBER_MAIN_US_PER_PUT).toFixed(1)} % of the ≈ ${f2(MEMBER_MAIN_US_PER_PUT)} µs the member's main thread spends per put at put-1000, ` +
        'and only at batch sizes one event-loop turn rarely collects, at the price of at least one pool round trip of latency per request and a second decode for what the main thread still needs (quota cost, response). ' +
        (best < 0.05 * MEMBER_MAIN_US_PER_PUT
          ? "**Verdict: do not decode requests in the pool** — the saving is under 5 % of a put's main-thread cost, too small for the hand-off to matter."
          : `**Verdict: the pool pays for decode at batch ≥ ${firstPaying((r) => r.gather) ?? '?'}** — the saving is at least 5 % of a put's main-thread cost there.`),
    );
  }
  if (rows !== undefined) {
    const bestInline = (r: WatchRow): { name: string; us: number } => {
      let b = { name: '(a)', us: r.a.mainUsPerUnit };
      if (r.c !== undefined && r.c.mainUsPerUnit < b.us) b = { name: '(c)', us: r.c.mainUsPerUnit };
      if (r.d !== undefined && r.d.mainUsPerUnit < b.us) b = { name: '(d)', us: r.d.mainUsPerUnit };
      return b;
    };
    const vsA = rows.filter((r) => r.b.mainUsPerUnit < r.a.mainUsPerUnit);
    const vsBest = rows.filter((r) => r.b.mainUsPerUnit < bestInline(r).us);
    const list = (xs: WatchRow[]): string => (xs.length === 0 ? 'no case' : xs.map((r) => `M=${r.m}/W=${r.w}`).join(', '));
    const gains = vsBest.map((r) => `M=${r.m}/W=${r.w}: ${f2(bestInline(r).us)} → ${f2(r.b.mainUsPerUnit)} µs per response`);
    const maxGain = Math.max(0, ...vsBest.map((r) => bestInline(r).us - r.b.mainUsPerUnit));
    const dWins = rows.filter((r) => r.d !== undefined && bestInline(r).name === '(d)').length;
    const multi = rows.filter((r) => r.w > 1).length;
    out.push(
      `- **Watch fan-out** — the pool uses less main-thread CPU than encoding every response from the events (a) at ${list(vsA)}, never with one watcher. ` +
        `Against the best inline variant it wins at ${list(vsBest)}${gains.length > 0 ? ` (${gains.join('; ')})` : ''}. ` +
        `Encoding the events once and sharing the block (d) is the cheapest inline variant in ${dWins} of ${multi} multi-watcher cases. Caveat: (d) assumes the gRPC layer hands [prefix, block] to the stream without copying; src/api/grpc/call.ts today writes one framed buffer per message, and neither a second \`stream.write\` nor a per-watcher copy of the block is counted in (d). ` +
        (maxGain < 0.5
          ? `**Verdict: fan out inline with the shared events block** (encode the events once; per watcher write only frame header + header + watch_id and hand the transport [prefix, block]): where the pool still wins it saves at most ${f2(maxGain)} µs per response, not worth a round trip of latency and a copy of every response.`
          : `**Verdict: use the pool for fan-out where it wins against (d)** (${list(vsBest)}): it saves up to ${f2(maxGain)} µs per response there; elsewhere fan out inline with the shared events block.`),
    );
  }
  return out;
}

function machine(): string {
  const model = cpus()[0]?.model ?? 'unknown CPU';
  return `nproc ${cpus().length}, ${model}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, piscina ${THREADS} threads (atomics sync)`;
}

function spliceSection(doc: string, section: string): string {
  const start = doc.indexOf(MARK_START);
  const end = doc.indexOf(MARK_END);
  const block = `${MARK_START}\n${section}\n${MARK_END}\n`;
  if (start >= 0 && end > start) return doc.slice(0, start) + block + doc.slice(end + MARK_END.length).replace(/^\n/, '');
  return `${doc.replace(/\n*$/, '\n')}\n${block}`;
}

async function main(): Promise<void> {
  await checkEnvelopesMatch();
  await checkResponsesMatch();
  process.stderr.write('self-check passed: pool envelopes and watch responses are byte-identical to the inline ones\n');
  const dec = only === undefined || only === 'decode' ? await benchDecode() : undefined;
  const rows = only === undefined || only === 'watch' ? await benchWatch() : undefined;
  await pool.destroy();
  const lines: string[] = [];
  lines.push('## Piscina pool vs inline on the main thread (`node dist/bench/pool/pool.bench.js`)');
  lines.push('');
  lines.push(`- Date: ${new Date().toISOString().replace('T', ' ').slice(0, 19)} UTC`);
  lines.push(`- Machine: ${machine()}`);
  lines.push(
    `- Method: each case warms up ${warmMs} ms, then runs ${RUNS} × ${runMs} ms; medians reported. Main-thread CPU is the main thread's own run time from /proc/self/task/<pid>/schedstat (process CPU, which includes the workers, is shown separately). Requests and events: 8 B keys, 256 B values. Pool cases keep ${IN_FLIGHT_MAX} tasks in flight; a task's input goes as one transferred ArrayBuffer (fan-out: one SharedArrayBuffer per fan-out), its result comes back as one transferred ArrayBuffer of offsets + bytes that the main thread only slices. The bench first asserts the pool's envelopes and responses are byte-identical to the inline ones.`,
  );
  lines.push('');
  if (dec !== undefined) lines.push(...renderDecode(dec), '');
  if (rows !== undefined) lines.push(...renderWatch(rows), '');
  lines.push(...decisionText(dec, rows));
  const section = lines.join('\n');
  process.stdout.write(`${section}\n`);
  if (outPath !== undefined) writeFileSync(outPath, spliceSection(readFileSync(outPath, 'utf8'), section));
  if (sink === -1) process.stdout.write('\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`pool bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
  void pool.destroy();
});
