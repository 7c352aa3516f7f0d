// Turns bench samples into medians, ratios and the Markdown of bench/RESULTS.md, and splices that
// Markdown between its markers so sections written by others (e.g. the WAL bench) stay as they are.
import type { Workload } from './workloads.js';
import type { ServerKind } from './servers.js';
import type { ProfileSummary } from './cpuprofile.js';
import { median, roundTo } from './stats.js';

/** One server's numbers for one round of one load workload. */
export interface LoadSample {
  server: ServerKind;
  round: number;
  /** Set when the run did not happen or is void (cluster did not start, a member died, nothing succeeded). */
  skipped?: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Failed calls in the measured window, by grpc-status. */
  errors: number;
  statuses: Record<string, number>;
  /** CPU of all members (and their child processes) over the measured window, in cores. */
  serverCores: number;
  /** CPU of the generator's worker processes, in cores. */
  clientCores: number;
  /** Resident memory at the end of the window, summed over members. */
  rssBytes: number;
  /** CPU used on the machine by anything else during the window (other people's work), in cores. */
  otherCores: number;
  /** Server CPU per thread over the window, in cores, largest first. */
  threadCores?: [string, number][];
  /** The measured window on the monotonic clock (to cut CPU profiles to it). */
  windowUs?: { fromUs: number; toUs: number };
  /** Process ids of the members (their children, e.g. tetcd's client processes, are not listed). */
  memberPids?: number[];
}

/** Every sample of one load workload. */
export interface LoadResult {
  workload: Workload;
  samples: LoadSample[];
}

/** The generator measured against the trivial server. */
export interface CeilingResult {
  skipped?: string;
  serverProcs: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  clientCores: number;
  clientCpuUsPerRequest: number;
  serverCores: number;
}

/** One server's memory workload. */
export interface MemoryResult {
  server: ServerKind;
  skipped?: string;
  keys: number;
  loadMs: number;
  rssBytes: number;
  peakRssBytes: number;
  /** Resident anonymous memory (heaps) and resident file-backed memory (the mapped database, binaries). */
  anonBytes: number;
  fileBytes: number;
  diskBytes: number;
}

/** Medians of one server's successful rounds. */
export interface ServerMedians {
  rounds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  serverCores: number;
  clientCores: number;
  rssBytes: number;
  otherCores: number;
  /** Requests per second of server CPU (rps ÷ server cores): less sensitive to CPU taken by others. */
  rpsPerCore: number;
  /** Why rounds were skipped (distinct reasons). */
  skipped: string[];
}

/** Medians over the rounds that ran for one server. */
export function mediansOf(samples: readonly LoadSample[], server: ServerKind): ServerMedians {
  const mine = samples.filter((s) => s.server === server);
  const ok = mine.filter((s) => s.skipped === undefined);
  const pick = (f: (s: LoadSample) => number): number => median(ok.map(f));
  return {
    rounds: ok.length,
    rps: pick((s) => s.rps),
    p50Ms: pick((s) => s.p50Ms),
    p99Ms: pick((s) => s.p99Ms),
    errors: pick((s) => s.errors),
    serverCores: pick((s) => s.serverCores),
    clientCores: pick((s) => s.clientCores),
    rssBytes: pick((s) => s.rssBytes),
    otherCores: pick((s) => s.otherCores),
    rpsPerCore: pick((s) => (s.serverCores > 0 ? s.rps / s.serverCores : NaN)),
    skipped: [...new Set(mine.filter((s) => s.skipped !== undefined).map((s) => s.skipped!))],
  };
}

/** tetcd ÷ etcd throughput, NaN when either did not run. */
export function ratioOf(etcd: ServerMedians, tetcd: ServerMedians): number {
  return etcd.rounds > 0 && tetcd.rounds > 0 && etcd.rps > 0 ? tetcd.rps / etcd.rps : NaN;
}

const fmtInt = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const fmtMs = (x: number): string => (Number.isFinite(x) ? (x < 10 ? roundTo(x, 2).toFixed(2) : roundTo(x, 1).toFixed(1)) : '–');
const fmtCores = (x: number): string => (Number.isFinite(x) ? roundTo(x, 2).toFixed(2) : '–');
const fmtMiB = (bytes: number): string => (Number.isFinite(bytes) && bytes > 0 ? `${Math.round(bytes / (1024 * 1024))}` : '–');
const fmtRatio = (x: number): string => (Number.isFinite(x) ? `**${roundTo(x, 2).toFixed(2)}**` : '–');
/** Above this much CPU used by other processes during a window, the table says the numbers are disturbed. */
const OTHER_CORES_NOTE = 0.25;
/** Table cells must not contain pipes or newlines. */
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ');

/** Facts printed above the tables. */
export interface RunFacts {
  date: string;
  commandLine: string;
  machine: string;
  rounds: number;
  durationMs: number;
  warmupMs: number;
  clientProcs: number;
  tetcdCmd: string;
  etcdCmd: string;
  engine: string;
}

/** The Markdown of a comparison run (without markers). */
export function renderRun(f: RunFacts, loads: readonly LoadResult[], ceiling: CeilingResult | undefined): string {
  const out: string[] = [];
  out.push('## tetcd vs etcd 3.4, side by side (`npm run bench`)', '');
  out.push(`- Date: ${f.date}`);
  out.push(`- Command: \`${f.commandLine}\``);
  out.push(`- Machine: ${f.machine}`);
  out.push(
    `- Servers: tetcd = \`${f.tetcdCmd}\`, etcd = \`${f.etcdCmd}\`; both with default flags (fsync on), fresh data dirs in /tmp for every run.`,
  );
  out.push(
    `- Method: ${f.rounds} round(s) per workload; in each round each server is started, warmed up for ${f.warmupMs} ms and measured for ${f.durationMs} ms, then stopped; the server that goes first alternates (etcd first in odd rounds). Numbers are medians over rounds.`,
  );
  out.push(
    `- Load: bench/grpc/loadgen.ts (engine \`${f.engine}\`${f.engine === 'raw' ? ': pre-framed HTTP/2 on bare sockets, bench/lib/h2-raw.ts' : ': node:http2'}) in ${f.clientProcs} worker processes, pre-encoded etcdserverpb requests (Put: 8 B keys drawn from 100k keys, 256 B values; Range: single keys of 1000 preloaded); identical settings for both servers. On 3 members, connections are spread over all members (like etcd's benchmark tool). The generator shares the machine's cores with the server: "gen cores" is its CPU use; "other cores" (per round, below) is whatever else ran on the machine meanwhile.`,
  );
  out.push('');
  if (loads.length > 0) {
    out.push(
      '| workload | etcd req/s | tetcd req/s | tetcd/etcd | etcd p50 / p99 ms | tetcd p50 / p99 ms | etcd cores | tetcd cores | req/s per server core etcd / tetcd | gen cores (etcd / tetcd runs) | RSS MiB etcd / tetcd |',
    );
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    const notes: string[] = [];
    for (const r of loads) {
      const e = mediansOf(r.samples, 'etcd');
      const t = mediansOf(r.samples, 'tetcd');
      const side = (m: ServerMedians): string =>
        m.rounds === 0 ? `skipped: ${cell(m.skipped.join('; ') || 'did not run')}` : fmtInt(m.rps);
      out.push(
        `| ${r.workload.name} | ${side(e)} | ${side(t)} | ${fmtRatio(ratioOf(e, t))} | ${fmtMs(e.p50Ms)} / ${fmtMs(e.p99Ms)} | ${fmtMs(t.p50Ms)} / ${fmtMs(t.p99Ms)} | ${fmtCores(e.serverCores)} | ${fmtCores(t.serverCores)} | ${fmtInt(e.rpsPerCore)} / ${fmtInt(t.rpsPerCore)} | ${fmtCores(e.clientCores)} / ${fmtCores(t.clientCores)} | ${fmtMiB(e.rssBytes)} / ${fmtMiB(t.rssBytes)} |`,
      );
      for (const [kind, m] of [
        ['etcd', e],
        ['tetcd', t],
      ] as const) {
        if (m.rounds > 0 && m.skipped.length > 0)
          notes.push(
            `${r.workload.name}, ${kind}: ${m.rounds} of ${r.samples.filter((s) => s.server === kind).length} rounds ran; skipped: ${m.skipped.join('; ')}`,
          );
        if (m.rounds > 0 && m.otherCores > OTHER_CORES_NOTE)
          notes.push(
            `${r.workload.name}, ${kind}: other processes used a median ${fmtCores(m.otherCores)} cores during the measurements; these numbers are disturbed`,
          );
        if (m.rounds > 0 && m.errors > 0)
          notes.push(
            `${r.workload.name}, ${kind}: median ${fmtInt(m.errors)} failed calls per round (statuses: ${statusesOf(r.samples, kind)})`,
          );
      }
    }
    out.push('');
    out.push('Workloads: ' + loads.map((r) => `\`${r.workload.name}\` = ${r.workload.title}`).join('; ') + '.');
    if (notes.length > 0) out.push('', 'Notes:', ...notes.map((n) => `- ${n}`));
    out.push('');
  }
  if (ceiling !== undefined) {
    out.push('### Load generator ceiling', '');
    if (ceiling.skipped !== undefined) {
      out.push(`skipped: ${ceiling.skipped}`, '');
    } else {
      const perCore = ceiling.clientCpuUsPerRequest > 0 ? 1e6 / ceiling.clientCpuUsPerRequest : NaN;
      out.push(
        `Same generator settings (1000 clients, 100 connections, ${f.clientProcs} worker processes, the put bodies) against bench/lib/trivial-server.ts (${ceiling.serverProcs} node processes answering every call with a fixed PutResponse on the raw HTTP/2 engine of src/api/h2):`,
        '',
      );
      out.push('| req/s | p50 / p99 ms | generator cores | generator µs CPU / request | server cores | generator req/s per core |');
      out.push('|---:|---:|---:|---:|---:|---:|');
      out.push(
        `| ${fmtInt(ceiling.rps)} | ${fmtMs(ceiling.p50Ms)} / ${fmtMs(ceiling.p99Ms)} | ${fmtCores(ceiling.clientCores)} | ${roundTo(ceiling.clientCpuUsPerRequest, 1)} | ${fmtCores(ceiling.serverCores)} | ${fmtInt(perCore)} |`,
      );
      out.push(
        '',
        `The generator costs ≈ ${roundTo(ceiling.clientCpuUsPerRequest, 1)} µs of CPU per call, so driving a server at R req/s takes R × ${roundTo(ceiling.clientCpuUsPerRequest, 1)} µs of the machine's 2 cores; what it leaves is what a server can use. Both servers are driven by the same generator with the same settings, so the ratio is fair even where the absolute numbers are bounded by the shared CPU.`,
        '',
      );
    }
  }
  if (loads.length > 0) {
    out.push('<details><summary>Every round</summary>', '');
    out.push('| workload | round | server | req/s | p50 ms | p99 ms | failed | server cores | gen cores | other cores | RSS MiB |');
    out.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of loads) {
      for (const s of r.samples) {
        if (s.skipped !== undefined)
          out.push(`| ${r.workload.name} | ${s.round} | ${s.server} | skipped: ${cell(s.skipped)} | | | | | | | |`);
        else
          out.push(
            `| ${r.workload.name} | ${s.round} | ${s.server} | ${fmtInt(s.rps)} | ${fmtMs(s.p50Ms)} | ${fmtMs(s.p99Ms)} | ${s.errors} | ${fmtCores(s.serverCores)} | ${fmtCores(s.clientCores)} | ${fmtCores(s.otherCores)} | ${fmtMiB(s.rssBytes)} |`,
          );
      }
    }
    out.push('', '</details>', '');
  }
  return out.join('\n');
}

/** The Markdown of the memory workload (without markers); it has its own section so it can run alone. */
export function renderMemory(f: RunFacts, memory: readonly MemoryResult[]): string {
  const out: string[] = [];
  out.push('## Memory: one member holding N keys × 256 B values (`npm run bench -- --workloads memory`)', '');
  out.push(`- Date: ${f.date}`);
  out.push(`- Command: \`${f.commandLine}\``);
  out.push(`- Machine: ${f.machine}`);
  out.push(
    '- Method: a fresh member (default flags) is filled with 8-byte keys and 256-byte values by Txns of 128 puts (4 connections × 4 in flight), a count-only Range checks every key is there, then after 3 s the resident memory of the member process is read from /proc (VmRSS; RssAnon = heaps, RssFile = mapped files such as the bbolt/LMDB database; VmHWM = peak).',
  );
  out.push('');
  out.push('| server | keys | load time s | keys/s (Txn of 128 puts) | RSS MiB | of which anon / file MiB | peak RSS MiB | data dir MiB |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const m of memory) {
    if (m.skipped !== undefined) {
      out.push(`| ${m.server} | skipped: ${cell(m.skipped)} | | | | | | |`);
      continue;
    }
    out.push(
      `| ${m.server} | ${fmtInt(m.keys)} | ${roundTo(m.loadMs / 1000, 1)} | ${fmtInt(m.keys / (m.loadMs / 1000))} | ${fmtMiB(m.rssBytes)} | ${fmtMiB(m.anonBytes)} / ${fmtMiB(m.fileBytes)} | ${fmtMiB(m.peakRssBytes)} | ${fmtMiB(m.diskBytes)} |`,
    );
  }
  const e = memory.find((m) => m.server === 'etcd' && m.skipped === undefined);
  const t = memory.find((m) => m.server === 'tetcd' && m.skipped === undefined);
  if (e !== undefined && t !== undefined)
    out.push('', `RSS ratio tetcd/etcd: ${fmtRatio(t.rssBytes / e.rssBytes)} (lower is better here).`);
  out.push('');
  return out.join('\n');
}

function statusesOf(samples: readonly LoadSample[], server: ServerKind): string {
  const sum: Record<string, number> = {};
  for (const s of samples) {
    if (s.server !== server || s.skipped !== undefined) continue;
    for (const [k, v] of Object.entries(s.statuses)) if (k !== '0') sum[k] = (sum[k] ?? 0) + v;
  }
  return (
    Object.entries(sum)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ') || 'none'
  );
}

/** One profiled workload. */
export interface ProfiledWorkload {
  workload: Workload;
  skipped?: string;
  rps: number;
  p99Ms: number;
  /** Which member's profile is summarised (the busiest one on 3 members: the leader). */
  memberLabel: string;
  serverCores: number;
  /** Server CPU per thread name, in cores (from /proc, so native threads are included). */
  threadCores: [string, number][];
  member?: ProfileSummary;
  client?: ProfileSummary;
  /** The busiest of tetcd's client processes (--client-workers), when there are any. */
  clientProcess?: ProfileSummary;
  clientProcessLabel?: string;
  profileDir: string;
}

/** The Markdown of a --profile run (without markers). */
export function renderProfiles(f: RunFacts, runs: readonly ProfiledWorkload[], topN: number): string {
  const out: string[] = [];
  out.push('## Where tetcd spends its CPU (`npm run bench -- --profile`)', '');
  out.push(`- Date: ${f.date}`);
  out.push(`- Command: \`${f.commandLine}\``);
  out.push(`- Machine: ${f.machine}`);
  out.push(
    `- Each workload ran once against tetcd under \`node --cpu-prof\` (member and generator workers), ${f.warmupMs} ms warm-up + ${f.durationMs} ms measured; throughput under the profiler is lower than without it. Self time is over the measured ${f.durationMs} ms only (profiles are cut to the window; start-up, preload and shutdown are left out) and counts only the main JS thread: LMDB's and the WAL's own threads do not appear here. Shares are of busy (non-idle) main-thread time.`,
  );
  out.push('');
  for (const r of runs) {
    out.push(`### ${r.workload.name} — ${r.workload.title}`, '');
    if (r.skipped !== undefined) {
      out.push(`skipped: ${r.skipped}`, '');
      continue;
    }
    out.push(`Under the profiler: ${fmtInt(r.rps)} req/s, p99 ${fmtMs(r.p99Ms)} ms. Profiles: \`${r.profileDir}\`.`, '');
    if (r.threadCores.length > 0) {
      // Thread keys end in " pid/tid"; the numbers mean nothing to a reader, the name and the ranking do.
      const shown = r.threadCores
        .filter(([, c]) => c >= 0.01)
        .slice(0, 8)
        .map(([n, c]) => `${cell(n.replace(/ \d+\/\d+$/, ''))} ${fmtCores(c)}`);
      out.push(
        `Server CPU ${fmtCores(r.serverCores)} cores${r.workload.members > 1 ? ' (all members)' : ''}; its busiest threads (from /proc): ${shown.join(', ')}.`,
        '',
      );
    }
    if (r.member !== undefined) {
      const m = r.member;
      out.push(
        `Member (${r.memberLabel}): main thread busy ${fmtInt(m.busyMs)} ms of ${fmtInt(m.wallMs)} ms (${Math.round((m.busyMs / Math.max(1, m.wallMs)) * 100)} %). Top ${topN} functions by self time:`,
        '',
      );
      out.push('| # | function | where | self ms | share |', '|---:|---|---|---:|---:|');
      m.functions.forEach((s, i) =>
        out.push(`| ${i + 1} | \`${cell(s.name)}\` | ${cell(s.where)} | ${fmtInt(s.selfMs)} | ${(s.share * 100).toFixed(1)} % |`),
      );
      out.push('', 'By file:', '', '| file | self ms | share |', '|---|---:|---:|');
      m.files.slice(0, 8).forEach((s) => out.push(`| ${cell(s.name)} | ${fmtInt(s.selfMs)} | ${(s.share * 100).toFixed(1)} % |`));
      out.push('');
    }
    if (r.clientProcess !== undefined) {
      const c = r.clientProcess;
      out.push(
        `Client process (${r.clientProcessLabel ?? 'one of them'}): main thread busy ${fmtInt(c.busyMs)} ms of ${fmtInt(c.wallMs)} ms (${Math.round((c.busyMs / Math.max(1, c.wallMs)) * 100)} %). Top ${topN} functions by self time:`,
        '',
      );
      out.push('| # | function | where | self ms | share |', '|---:|---|---|---:|---:|');
      c.functions.forEach((s, i) =>
        out.push(`| ${i + 1} | \`${cell(s.name)}\` | ${cell(s.where)} | ${fmtInt(s.selfMs)} | ${(s.share * 100).toFixed(1)} % |`),
      );
      out.push('', 'By file:', '', '| file | self ms | share |', '|---|---:|---:|');
      c.files.slice(0, 8).forEach((s) => out.push(`| ${cell(s.name)} | ${fmtInt(s.selfMs)} | ${(s.share * 100).toFixed(1)} % |`));
      out.push('');
    }
    if (r.client !== undefined) {
      out.push(
        `Generator worker (one of them): top 5 — ` +
          r.client.functions
            .slice(0, 5)
            .map((s) => `\`${s.name}\` ${(s.share * 100).toFixed(0)} %`)
            .join(', ') +
          '.',
        '',
      );
    }
  }
  return out.join('\n');
}

/**
 * Replaces the text between `<!-- name start -->` and `<!-- name end -->` (markers included) with the
 * markers around `content`, or appends that block when the markers are absent. Everything else is kept.
 */
export function spliceSection(doc: string, name: string, content: string): string {
  const start = `<!-- ${name} start -->`;
  const end = `<!-- ${name} end -->`;
  const block = `${start}\n${content.trimEnd()}\n${end}`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) return doc.slice(0, i) + block + doc.slice(j + end.length);
  if (i >= 0 || j >= 0) throw new Error(`RESULTS.md: marker for ${name} is unbalanced; fix the file by hand`);
  const base = doc.trimEnd();
  return (base === '' ? '# Benchmarks\n' : base + '\n') + '\n' + block + '\n';
}
