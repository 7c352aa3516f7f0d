// The linearizability checker's entry point: splits a get/put/cas history by key (linearizability is
// compositional, so each key is checked alone), runs the Wing–Gong–Lowe search on each, adds etcd's
// revision checks, and on failure shrinks to the shortest failing prefix of the smallest failing key.
import { describeOp, showBytes, type Op } from './history.js';
import { RegKind, ABSENT, UNKNOWN, type RegOp } from './model.js';
import { searchRegister, type SearchBudget } from './wgl.js';
import { checkRevisions, type RevisionViolation } from './revisions.js';

/** Bounds of a check. A check that hits one says "unknown", not "ok". */
export interface CheckOptions {
  /** Whole check, including shrinking a failure (default 120 s). */
  timeBudgetMs?: number;
  /** A key with more ops than this is not searched (default 100 000). */
  opsPerKeyMax?: number;
  /** Memo entries per key search (default 2 000 000). */
  cacheEntriesMax?: number;
  /** Memo bytes per key search (default 512 MiB). */
  cacheBytesMax?: number;
  /** Ops shown before the failing op in a report (default 12). */
  excerptOpsBefore?: number;
}

/** The result for one key. */
export interface KeyResult {
  key: Uint8Array;
  verdict: 'ok' | 'violation' | 'unknown';
  /** Ops of this key in the history / ops the search had to consider. */
  ops: number;
  searchedOps: number;
  steps: number;
  reason?: string;
  /** On violation: the history of this key up to the op whose response makes it non-linearizable. */
  minimalPrefix?: Op[];
  /** On violation: the op that completes the shortest failing prefix. */
  culprit?: Op;
}

/** The result of a whole check. */
export interface CheckResult {
  verdict: 'ok' | 'violation' | 'unknown';
  /** One line. */
  summary: string;
  /** Readable explanation: on violation, the smallest failing key and an excerpt around the failing op. */
  report: string;
  keys: KeyResult[];
  revisionViolations: RevisionViolation[];
  elapsedMs: number;
}

const keyId = (k: Uint8Array): string => Buffer.from(k).toString('latin1');

/** Interns values of one key: 0 is "absent", 1.. are distinct byte strings. */
class Interner {
  private readonly ids = new Map<string, number>();
  id(v: Uint8Array | null): number {
    if (v === null) return ABSENT;
    const k = Buffer.from(v).toString('latin1');
    let id = this.ids.get(k);
    if (id === undefined) {
      id = this.ids.size + 1;
      this.ids.set(k, id);
    }
    return id;
  }
}

/**
 * Turns one key's ops into the search's form. Ops that cannot matter are dropped:
 * - fail ops (no effect) and gets without an answer (no observation);
 * - writes with an unknown outcome whose value nobody ever observed: whether they happened or not, no
 *   observation depends on them, so leaving them out changes no verdict. This keeps the number of open
 *   ops small; every open op multiplies the states the search may visit. It is only sound when every
 *   observation names the value it saw, so it is skipped when a failed cas did not report what it saw.
 * Returns an error string when the history cannot be checked soundly.
 */
function toRegOps(ops: readonly Op[]): { regOps: RegOp[] } | { error: string } {
  const values = new Interner();
  let blindFailedCas = false;
  let byModRevision = false;
  const observed = new Set<number>();
  const writesPerValue = new Map<number, number>();
  for (const o of ops) {
    if (o.status === 'fail') continue;
    if (o.kind === 'cas') {
      if (o.expectModRevision !== undefined) {
        byModRevision = true;
        if ((o.expectModRevision === 0) !== (o.expect === null))
          return { error: `op ${o.id}: cas on mod_revision ${o.expectModRevision} with expected value ${showBytes(o.expect)}` };
      }
      observed.add(values.id(o.expect ?? null));
      if (o.status === 'ok' && o.succeeded === false) {
        if (o.found === undefined) blindFailedCas = true;
        else observed.add(values.id(o.found));
      }
    }
    if (o.kind === 'get' && o.status === 'ok') observed.add(values.id(o.found ?? null));
    if (o.kind === 'put' || o.kind === 'cas') {
      const v = values.id(o.value!);
      writesPerValue.set(v, (writesPerValue.get(v) ?? 0) + 1);
    }
  }
  if (byModRevision) {
    for (const [v, n] of writesPerValue) {
      if (n > 1) return { error: `cas by mod_revision needs unique written values, but value id ${v} is written ${n} times` };
    }
  }
  const out: RegOp[] = [];
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i];
    if (o.status === 'fail') continue;
    if (o.kind === 'get') {
      if (o.status !== 'ok') continue;
      out.push({
        historyIndex: i,
        kind: RegKind.Get,
        value: 0,
        expect: 0,
        found: values.id(o.found ?? null),
        succeeded: UNKNOWN,
        callMs: o.callMs,
        returnMs: o.returnMs,
      });
      continue;
    }
    const value = values.id(o.value!);
    if (o.status === 'unknown' && !blindFailedCas && !observed.has(value)) continue;
    const returnMs = o.status === 'ok' ? o.returnMs : Infinity;
    if (o.kind === 'put') {
      out.push({ historyIndex: i, kind: RegKind.Put, value, expect: 0, found: UNKNOWN, succeeded: UNKNOWN, callMs: o.callMs, returnMs });
    } else {
      const ok = o.status === 'ok';
      out.push({
        historyIndex: i,
        kind: RegKind.Cas,
        value,
        expect: values.id(o.expect ?? null),
        found: ok && o.succeeded === false && o.found !== undefined ? values.id(o.found) : UNKNOWN,
        succeeded: ok ? (o.succeeded ? 1 : 0) : UNKNOWN,
        callMs: o.callMs,
        returnMs,
      });
    }
  }
  return { regOps: out };
}

/** The key's history cut at time `cutMs`: later calls removed, answers after the cut forgotten. */
function prefixAt(ops: readonly Op[], cutMs: number): Op[] {
  const out: Op[] = [];
  for (const o of ops) {
    if (o.callMs > cutMs) continue;
    if (o.returnMs <= cutMs) {
      out.push(o);
      continue;
    }
    if (o.status === 'fail') continue;
    // Still in flight at the cut: its outcome is unknown there.
    const open: Op = { id: o.id, client: o.client, kind: o.kind, key: o.key, callMs: o.callMs, returnMs: Infinity, status: 'unknown' };
    if (o.value !== undefined) open.value = o.value;
    if (o.expect !== undefined) open.expect = o.expect;
    if (o.expectModRevision !== undefined) open.expectModRevision = o.expectModRevision;
    out.push(open);
  }
  return out;
}

function checkKeyOps(
  ops: readonly Op[],
  budget: SearchBudget,
): { verdict: 'ok' | 'violation' | 'unknown'; searched: number; steps: number; reason?: string } {
  const conv = toRegOps(ops);
  if ('error' in conv) return { verdict: 'unknown', searched: 0, steps: 0, reason: conv.error };
  const r = searchRegister(conv.regOps, budget);
  if (r.verdict === 'unknown') return { verdict: 'unknown', searched: conv.regOps.length, steps: r.steps, reason: r.reason };
  return { verdict: r.verdict, searched: conv.regOps.length, steps: r.steps };
}

/**
 * The shortest prefix (cut at a response) that is already not linearizable. A prefix of a linearizable
 * history is linearizable, so "fails" is monotone in the cut and a binary search finds the first one.
 */
function shrink(ops: readonly Op[], budgetFor: () => SearchBudget): { prefix: Op[]; culprit: Op } | undefined {
  const returns = ops.filter((o) => o.status !== 'fail' && Number.isFinite(o.returnMs)).sort((a, b) => a.returnMs - b.returnMs);
  let lo = 0;
  let hi = returns.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const b = budgetFor();
    if (Date.now() > b.deadlineMs) break;
    const r = checkKeyOps(prefixAt(ops, returns[mid].returnMs), b);
    if (r.verdict === 'violation') {
      found = mid;
      hi = mid - 1;
    } else lo = mid + 1;
  }
  if (found < 0) return undefined;
  const culprit = returns[found];
  return { prefix: prefixAt(ops, culprit.returnMs), culprit };
}

function excerpt(k: KeyResult, before: number): string {
  const lines: string[] = [];
  const prefix = k.minimalPrefix;
  if (prefix === undefined || k.culprit === undefined) return '';
  const c = k.culprit;
  const sorted = [...prefix].sort((a, b) => a.callMs - b.callMs || a.id - b.id);
  // Everything concurrent with the culprit, plus the last `before` ops that completed before it began.
  const concurrent = sorted.filter((o) => o.returnMs >= c.callMs);
  const earlier = sorted
    .filter((o) => o.returnMs < c.callMs)
    .sort((a, b) => a.returnMs - b.returnMs)
    .slice(-before);
  const shown = [...earlier, ...concurrent].sort((a, b) => a.callMs - b.callMs || a.id - b.id);
  lines.push(
    `key ${showBytes(k.key)}: not linearizable. The shortest failing prefix has ${prefix.length} ops and ends when #${c.id} returns; no order of the`,
  );
  lines.push(`ops below (with all that came before) explains every answer. Ops open at that moment are shown as "?" (outcome unknown).`);
  if (sorted.length > shown.length) lines.push(`  … ${sorted.length - shown.length} earlier ops of this key`);
  for (const o of shown) {
    lines.push(`${o.id === c.id ? '>>' : '  '} ${describeOp(o)}`);
  }
  return lines.join('\n');
}

/**
 * Checks a get/put/cas history for linearizability (plus etcd's revision rules).
 *
 *   const r = checkHistory(recorder.ops, { timeBudgetMs: 30_000 });
 *   if (r.verdict !== 'ok') console.log(r.report);
 */
export function checkHistory(ops: readonly Op[], opts: CheckOptions = {}): CheckResult {
  const started = Date.now();
  const deadlineMs = started + (opts.timeBudgetMs ?? 120_000);
  const opsPerKeyMax = opts.opsPerKeyMax ?? 100_000;
  const budget = (): SearchBudget => ({
    deadlineMs,
    cacheEntriesMax: opts.cacheEntriesMax ?? 2_000_000,
    cacheBytesMax: opts.cacheBytesMax ?? 512 * 1024 * 1024,
  });
  const ids = new Set<number>();
  for (const o of ops) {
    if (ids.has(o.id)) throw new Error(`checkHistory: duplicate op id ${o.id}`);
    ids.add(o.id);
    if (!Number.isFinite(o.callMs)) throw new Error(`checkHistory: op ${o.id} has no call time`);
    if (o.returnMs < o.callMs) throw new Error(`checkHistory: op ${o.id} returns before it is called`);
    if (o.status === 'ok' && !Number.isFinite(o.returnMs)) throw new Error(`checkHistory: op ${o.id} is ok but has no return time`);
  }

  const byKey = new Map<string, Op[]>();
  for (const o of ops) {
    const k = keyId(o.key);
    let list = byKey.get(k);
    if (list === undefined) {
      list = [];
      byKey.set(k, list);
    }
    list.push(o);
  }

  const keys: KeyResult[] = [];
  for (const list of byKey.values()) {
    const kr: KeyResult = { key: list[0].key, verdict: 'ok', ops: list.length, searchedOps: 0, steps: 0 };
    keys.push(kr);
    if (list.length > opsPerKeyMax) {
      kr.verdict = 'unknown';
      kr.reason = `${list.length} ops on this key, more than the limit of ${opsPerKeyMax}`;
      continue;
    }
    if (Date.now() > deadlineMs) {
      kr.verdict = 'unknown';
      kr.reason = 'time budget exhausted before this key was searched';
      continue;
    }
    const r = checkKeyOps(list, budget());
    kr.verdict = r.verdict;
    kr.searchedOps = r.searched;
    kr.steps = r.steps;
    if (r.reason !== undefined) kr.reason = r.reason;
  }

  // Shrink the failing keys, smallest first, then report the smallest failing prefix.
  const failing = keys.filter((k) => k.verdict === 'violation').sort((a, b) => a.ops - b.ops);
  for (const k of failing) {
    const s = shrink(byKey.get(keyId(k.key))!, budget);
    if (s !== undefined) {
      k.minimalPrefix = s.prefix;
      k.culprit = s.culprit;
    }
  }
  const revisionViolations = checkRevisions(ops);

  const unknown = keys.filter((k) => k.verdict === 'unknown');
  const elapsedMs = Date.now() - started;
  const stats = `${ops.length} ops, ${keys.length} keys, ${elapsedMs} ms`;
  let verdict: CheckResult['verdict'];
  let summary: string;
  const report: string[] = [];
  if (failing.length > 0 || revisionViolations.length > 0) {
    verdict = 'violation';
    const parts: string[] = [];
    if (failing.length > 0) parts.push(`${failing.length} key(s) not linearizable`);
    if (revisionViolations.length > 0)
      parts.push(`${revisionViolations.length} revision anomal${revisionViolations.length === 1 ? 'y' : 'ies'}`);
    summary = `violation: ${parts.join(', ')} (${stats})`;
    const shown = failing.filter((k) => k.minimalPrefix !== undefined).sort((a, b) => a.minimalPrefix!.length - b.minimalPrefix!.length);
    if (shown.length > 0) report.push(excerpt(shown[0], opts.excerptOpsBefore ?? 12));
    else if (failing.length > 0)
      report.push(`key ${showBytes(failing[0].key)}: not linearizable (${failing[0].ops} ops; shrinking ran out of time)`);
    if (failing.length > 1)
      report.push(
        `other failing keys: ${failing
          .filter((k) => k !== shown[0])
          .map((k) => showBytes(k.key))
          .join(', ')}`,
      );
    for (const v of revisionViolations) report.push(v.message);
  } else if (unknown.length > 0) {
    verdict = 'unknown';
    summary = `unknown: ${unknown.length} key(s) not decided (${stats})`;
    for (const k of unknown) report.push(`key ${showBytes(k.key)}: ${k.reason ?? 'undecided'}`);
  } else {
    verdict = 'ok';
    summary = `ok: linearizable (${stats})`;
  }
  return { verdict, summary, report: report.join('\n\n'), keys, revisionViolations, elapsedMs };
}
