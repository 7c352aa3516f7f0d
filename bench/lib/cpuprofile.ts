// Reads V8 .cpuprofile files (node --cpu-prof) and ranks functions and source files by self time,
// which is what bench/RESULTS.md names as the top costs of a member.
import { readFileSync } from 'node:fs';

/** The parts of a V8 CPU profile the analysis reads. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; hitCount?: number }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  /** Microseconds between consecutive samples (the first is from startTime). */
  timeDeltas?: number[];
}

/** Self time of one function or file. */
export interface SelfTime {
  /** Function name, or file for the per-file ranking. */
  name: string;
  /** file:line (1-based), or '' for V8's pseudo-frames such as (garbage collector). */
  where: string;
  selfMs: number;
  /** Fraction of the busy (non-idle) time. */
  share: number;
}

/** A profile summarised. */
export interface ProfileSummary {
  wallMs: number;
  idleMs: number;
  busyMs: number;
  functions: SelfTime[];
  files: SelfTime[];
}

/** Loads a .cpuprofile file. */
export function readCpuProfile(path: string): CpuProfile {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  if (!Array.isArray(p.nodes)) throw new Error(`${path}: not a V8 CPU profile`);
  return p;
}

/** Strips file:// and a root directory from a script URL so tables stay readable. */
export function shortUrl(url: string, root: string): string {
  let u = url.startsWith('file://') ? url.slice('file://'.length) : url;
  if (root !== '' && u.startsWith(root)) u = u.slice(root.length).replace(/^\/+/, '');
  return u;
}

const IDLE = '(idle)';

/** A span of time on the profile's clock: CLOCK_MONOTONIC in µs, the clock of process.hrtime() in any process. */
export interface TimeWindowUs {
  fromUs: number;
  toUs: number;
}

/** Now on the profiles' clock, to mark a window from another process (the bench runner). */
export function monotonicNowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Self time per function (name + location) and per source file, largest first, `top` of each. Sample i
 * lasts until sample i+1, so it is charged timeDeltas[i+1]. With a window, only samples taken inside it
 * count (e.g. the measured load, without start-up, preload and shutdown). Profiles without samples fall
 * back to hitCount × the mean interval, over their whole life.
 */
export function summarize(p: CpuProfile, top: number, root = '', window?: TimeWindowUs): ProfileSummary {
  const byId = new Map<number, CpuProfile['nodes'][number]>();
  for (const n of p.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  let wallUs = p.endTime - p.startTime;
  if (p.samples !== undefined && p.timeDeltas !== undefined && p.samples.length > 0) {
    let t = p.startTime;
    let counted = 0;
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i];
      if (window !== undefined && (t < window.fromUs || t >= window.toUs)) continue;
      const dt = i + 1 < p.timeDeltas.length ? Math.max(0, p.timeDeltas[i + 1]) : 0;
      selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + dt);
      counted += dt;
    }
    if (window !== undefined) wallUs = counted;
  } else {
    const hits = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
    const perHitUs = hits > 0 ? (p.endTime - p.startTime) / hits : 0;
    for (const n of p.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * perHitUs);
  }
  const fn = new Map<string, { name: string; where: string; us: number }>();
  const file = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    totalUs += us;
    if (cf.functionName === IDLE) {
      idleUs += us;
      continue;
    }
    const url = shortUrl(cf.url, root);
    const name = cf.functionName === '' ? '(anonymous)' : cf.functionName;
    const where = url === '' ? '' : `${url}:${cf.lineNumber + 1}`;
    const key = `${name}\u0000${where}`;
    const e = fn.get(key);
    if (e === undefined) fn.set(key, { name, where, us });
    else e.us += us;
    const fileKey = url === '' ? name : url;
    file.set(fileKey, (file.get(fileKey) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const share = (us: number): number => (busyUs > 0 ? us / busyUs : 0);
  const functions = [...fn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, share: share(e.us) }));
  const files = [...file.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, where: '', selfMs: us / 1000, share: share(us) }));
  return { wallMs: wallUs / 1000, idleMs: idleUs / 1000, busyMs: busyUs / 1000, functions, files };
}
