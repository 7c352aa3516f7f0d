// Reads a server's resource use from /proc: CPU time (utime + stime of the process and all its
// descendants) and resident memory, so the bench can report cores used and RSS of etcd and tetcd alike.
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** Clock ticks per second of /proc/<pid>/stat times (sysconf(_SC_CLK_TCK)); 100 on every Linux we run on. */
export const CLK_TCK = readClkTck();

function readClkTck(): number {
  try {
    const v = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(v) && v > 0 ? v : 100;
  } catch {
    return 100;
  }
}

/** The fields of /proc/<pid>/stat the bench needs. */
export interface ProcStat {
  pid: number;
  ppid: number;
  /** user + system CPU time in clock ticks (all threads, dead ones included). */
  cpuTicks: number;
}

/**
 * Parses the text of /proc/<pid>/stat. The command name (field 2) may hold spaces and parentheses,
 * so fields are counted from the last ')'.
 *
 *   parseProcStat('42 (node) S 1 ...') → { pid: 42, ppid: 1, cpuTicks: utime + stime }
 */
export function parseProcStat(text: string): ProcStat {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('proc stat: no command name');
  const pid = Number(text.slice(0, text.indexOf(' ')));
  // After ") ": field 3 (state) is index 0, so field n is index n - 3.
  const f = text
    .slice(close + 2)
    .trim()
    .split(' ');
  const ppid = Number(f[4 - 3]);
  const utime = Number(f[14 - 3]);
  const stime = Number(f[15 - 3]);
  if (!Number.isFinite(pid) || !Number.isFinite(ppid) || !Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error('proc stat: malformed line');
  }
  return { pid, ppid, cpuTicks: utime + stime };
}

function readStat(pid: number): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** root and every live descendant of it (children of children too). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const st = readStat(pid);
    if (st === null) continue;
    let list = children.get(st.ppid);
    if (list === undefined) children.set(st.ppid, (list = []));
    list.push(pid);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    for (const c of children.get(pid) ?? []) stack.push(c);
  }
  return out;
}

/** CPU seconds used so far by the given processes and their descendants (a process gone counts 0). */
export function cpuSecondsOfTrees(roots: readonly number[]): number {
  let ticks = 0;
  for (const root of roots) {
    for (const pid of processTree(root)) ticks += readStat(pid)?.cpuTicks ?? 0;
  }
  return ticks / CLK_TCK;
}

/**
 * CPU time of one thread in ms from /proc/<pid>/task/<tid>/schedstat (nanoseconds on the CPU, unlike the
 * 10 ms ticks of stat), or NaN when it cannot be read. The main thread's tid is the pid.
 */
export function threadCpuMs(pid: number, tid = pid): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

/**
 * Memory in bytes from /proc/<pid>/status: resident (VmRSS), peak resident (VmHWM), and the resident
 * part split into anonymous (heaps) and file-backed (mapped files such as a bbolt or LMDB database).
 */
export interface MemUse {
  rssBytes: number;
  peakRssBytes: number;
  anonBytes: number;
  fileBytes: number;
}

/** Parses VmRSS, VmHWM, RssAnon and RssFile (kB) out of the text of /proc/<pid>/status. */
export function parseProcStatusMem(text: string): MemUse {
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m === null ? 0 : Number(m[1]) * 1024;
  };
  return { rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM'), anonBytes: kb('RssAnon'), fileBytes: kb('RssFile') };
}

/** Summed memory of the given processes and their descendants. */
export function memOfTrees(roots: readonly number[]): MemUse {
  const sum: MemUse = { rssBytes: 0, peakRssBytes: 0, anonBytes: 0, fileBytes: 0 };
  for (const root of roots) {
    for (const pid of processTree(root)) {
      try {
        const m = parseProcStatusMem(readFileSync(`/proc/${pid}/status`, 'utf8'));
        sum.rssBytes += m.rssBytes;
        sum.peakRssBytes += m.peakRssBytes;
        sum.anonBytes += m.anonBytes;
        sum.fileBytes += m.fileBytes;
      } catch {
        // The process exited between listing and reading.
      }
    }
  }
  return sum;
}

/**
 * CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq; not idle, iowait or
 * steal), from the first line of /proc/stat. Its delta minus the server's and the generator's shows how
 * much else ran during a measurement.
 */
export function machineBusySeconds(): number {
  return parseMachineBusyTicks(readFileSync('/proc/stat', 'utf8')) / CLK_TCK;
}

/** Busy ticks from the text of /proc/stat ("cpu  user nice system idle iowait irq softirq steal ..."). */
export function parseMachineBusyTicks(text: string): number {
  const line = text.split('\n', 1)[0];
  const f = line.trim().split(/\s+/);
  if (f[0] !== 'cpu' || f.length < 8) throw new Error('proc stat: no cpu line');
  const n = (i: number): number => Number(f[i]);
  return n(1) + n(2) + n(3) + n(6) + n(7);
}

/** The command name (thread name for a task) between the parentheses of a stat line. */
export function commOfStat(text: string): string {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  return open >= 0 && close > open ? text.slice(open + 1, close) : '?';
}

/**
 * CPU seconds per thread of the given processes and their descendants, from /proc/<pid>/task/<tid>/stat,
 * keyed "<name> <pid>/<tid>" ("(main)" marks a process's main thread). Shows which thread of a member
 * does the work: the JS main thread, or one of the unnamed helpers (libuv's pool, V8, LMDB's or the
 * WAL's writer — Node names them all "node").
 */
export function threadCpuSeconds(roots: readonly number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const root of roots) {
    for (const pid of processTree(root)) {
      let tids: string[];
      try {
        tids = readdirSync(`/proc/${pid}/task`);
      } catch {
        continue;
      }
      for (const tid of tids) {
        try {
          const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
          const name = `${commOfStat(text)}${Number(tid) === pid ? ' (main)' : ''} ${pid}/${tid}`;
          out.set(name, parseProcStat(text).cpuTicks / CLK_TCK);
        } catch {
          // The thread ended between listing and reading.
        }
      }
    }
  }
  return out;
}

/** after − before per thread, largest first, in CPU seconds. */
export function threadCpuDelta(before: Map<string, number>, after: Map<string, number>): [string, number][] {
  const d: [string, number][] = [];
  for (const [name, s] of after) d.push([name, s - (before.get(name) ?? 0)]);
  return d.filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1]);
}
