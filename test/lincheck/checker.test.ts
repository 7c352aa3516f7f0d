// The linearizability checker against hand-made histories: linearizable ones (overlapping ops, unknown
// outcomes that did and did not happen) are accepted; a stale read, a lost write, a read of a value never
// written, a cas that succeeded twice and revision anomalies are rejected; budgets give "unknown".
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkHistory } from '../../tools/lincheck/check.js';
import { historyFromJson, historyToJson, HistoryRecorder, type Op } from '../../tools/lincheck/history.js';
import { searchRegister } from '../../tools/lincheck/wgl.js';
import { RegKind, UNKNOWN, type RegOp } from '../../tools/lincheck/model.js';

const b = (s: string): Uint8Array => Buffer.from(s);

/** Builds histories tersely: times in ms, `null` return = outcome unknown. */
class H {
  readonly ops: Op[] = [];
  private add(o: Omit<Op, 'id'>): this {
    this.ops.push({ id: this.ops.length, ...o });
    return this;
  }
  put(client: number, key: string, value: string, callMs: number, returnMs: number | null, revision?: number): this {
    return this.add({
      client,
      kind: 'put',
      key: b(key),
      value: b(value),
      callMs,
      returnMs: returnMs ?? Infinity,
      status: returnMs === null ? 'unknown' : 'ok',
      ...(revision !== undefined ? { revision } : {}),
    });
  }
  get(
    client: number,
    key: string,
    found: string | null,
    callMs: number,
    returnMs: number | null,
    extra: { mod?: number; revision?: number } = {},
  ): this {
    if (returnMs === null) return this.add({ client, kind: 'get', key: b(key), callMs, returnMs: Infinity, status: 'unknown' });
    const o: Omit<Op, 'id'> = { client, kind: 'get', key: b(key), found: found === null ? null : b(found), callMs, returnMs, status: 'ok' };
    if (extra.mod !== undefined) o.modRevision = extra.mod;
    if (extra.revision !== undefined) o.revision = extra.revision;
    return this.add(o);
  }
  cas(
    client: number,
    key: string,
    expect: string | null,
    value: string,
    callMs: number,
    returnMs: number | null,
    succeeded?: boolean,
    extra: { found?: string | null; expectMod?: number; revision?: number } = {},
  ): this {
    const o: Omit<Op, 'id'> = {
      client,
      kind: 'cas',
      key: b(key),
      expect: expect === null ? null : b(expect),
      value: b(value),
      callMs,
      returnMs: returnMs ?? Infinity,
      status: returnMs === null ? 'unknown' : 'ok',
    };
    if (returnMs !== null) o.succeeded = succeeded ?? false;
    if (extra.found !== undefined) o.found = extra.found === null ? null : b(extra.found);
    if (extra.expectMod !== undefined) o.expectModRevision = extra.expectMod;
    if (extra.revision !== undefined) o.revision = extra.revision;
    return this.add(o);
  }
  fail(client: number, key: string, value: string, callMs: number, returnMs: number): this {
    return this.add({ client, kind: 'put', key: b(key), value: b(value), callMs, returnMs, status: 'fail' });
  }
}

const verdict = (h: H) => checkHistory(h.ops, { timeBudgetMs: 10_000 });

// ---- accepted ----

test('a sequential history is linearizable', () => {
  const h = new H()
    .get(1, 'k', null, 0, 1)
    .put(1, 'k', 'a', 2, 3)
    .get(2, 'k', 'a', 4, 5)
    .cas(1, 'k', 'a', 'b', 6, 7, true)
    .get(2, 'k', 'b', 8, 9)
    .cas(2, 'k', 'a', 'c', 10, 11, false, { found: 'b' });
  const r = verdict(h);
  assert.is(r.verdict, 'ok', r.report);
  assert.is(r.keys.length, 1);
});

test('overlapping ops may take effect in either order', () => {
  // put a [0,10] and put b [1,5] overlap; reads during and after them may see a then b, or b then a.
  const h = new H().put(1, 'k', 'a', 0, 10).put(2, 'k', 'b', 1, 5).get(3, 'k', 'b', 2, 3).get(3, 'k', 'a', 4, 12).get(2, 'k', 'a', 11, 13);
  assert.is(verdict(h).verdict, 'ok', verdict(h).report);
  // The other order: b wins.
  const h2 = new H().put(1, 'k', 'a', 0, 10).put(2, 'k', 'b', 1, 5).get(3, 'k', 'a', 2, 3).get(2, 'k', 'b', 11, 13);
  assert.is(verdict(h2).verdict, 'ok');
  // Two concurrent cas on the same expected value: exactly one wins.
  const h3 = new H()
    .put(1, 'k', 'a', 0, 1)
    .cas(1, 'k', 'a', 'b', 2, 6, true)
    .cas(2, 'k', 'a', 'c', 3, 7, false, { found: 'b' })
    .get(3, 'k', 'b', 8, 9);
  assert.is(verdict(h3).verdict, 'ok');
});

test('an unknown write may have happened (seen later) …', () => {
  const h = new H().put(1, 'k', 'a', 0, 1).put(2, 'k', 'b', 2, null).get(1, 'k', 'b', 10, 11).get(1, 'k', 'b', 12, 13);
  assert.is(verdict(h).verdict, 'ok');
  // … even long after its client gave up, and after other writes.
  const h2 = new H()
    .put(1, 'k', 'a', 0, 1)
    .put(2, 'k', 'b', 2, null)
    .get(1, 'k', 'a', 10, 11)
    .put(1, 'k', 'c', 12, 13)
    .get(3, 'k', 'b', 20, 21);
  assert.is(verdict(h2).verdict, 'ok', 'an unknown write stays open to the end');
});

test('… or not have happened at all', () => {
  const h = new H().put(1, 'k', 'a', 0, 1).put(2, 'k', 'b', 2, null).get(1, 'k', 'a', 10, 11).get(3, 'k', 'a', 30, 31);
  assert.is(verdict(h).verdict, 'ok');
  const h2 = new H().put(1, 'k', 'a', 0, 1).cas(2, 'k', 'a', 'z', 2, null).get(1, 'k', 'a', 10, 11).cas(1, 'k', 'a', 'y', 12, 13, true);
  assert.is(verdict(h2).verdict, 'ok', 'an unknown cas that never ran');
  // An unknown cas that did run: its value shows up.
  const h3 = new H().put(1, 'k', 'a', 0, 1).cas(2, 'k', 'a', 'z', 2, null).get(1, 'k', 'z', 10, 11);
  assert.is(verdict(h3).verdict, 'ok');
  // A put that definitely failed is ignored.
  const h4 = new H().put(1, 'k', 'a', 0, 1).fail(2, 'k', 'q', 2, 3).get(1, 'k', 'a', 10, 11);
  assert.is(verdict(h4).verdict, 'ok');
});

test('cas by mod_revision is checked as a compare on the value read with it', () => {
  const h = new H()
    .put(1, 'k', 'a', 0, 1, 5)
    .get(2, 'k', 'a', 2, 3, { mod: 5, revision: 5 })
    .cas(2, 'k', 'a', 'b', 4, 5, true, { expectMod: 5, revision: 6 })
    .cas(1, 'k', 'a', 'c', 6, 7, false, { expectMod: 5, found: 'b', revision: 6 });
  assert.is(verdict(h).verdict, 'ok', verdict(h).report);
  // With duplicate written values a revision compare cannot be turned into a value compare: unknown, not ok.
  const dup = new H().put(1, 'k', 'a', 0, 1).put(1, 'k', 'a', 2, 3).cas(2, 'k', 'a', 'b', 4, 5, true, { expectMod: 3 });
  const r = verdict(dup);
  assert.is(r.verdict, 'unknown');
  assert.match(r.report, /unique/);
});

// ---- rejected ----

test('a stale read is rejected, and the report shows the failing op', () => {
  const h = new H().put(1, 'k', 'a', 0, 1).put(1, 'k', 'b', 2, 3).get(2, 'k', 'a', 4, 5);
  const r = verdict(h);
  assert.is(r.verdict, 'violation');
  assert.match(r.report, />> #2 c2 .*get → "a"/);
  assert.is(r.keys[0].culprit?.id, 2);
});

test('a lost write (an acknowledged put never visible to a later read) is rejected', () => {
  const h = new H().put(1, 'k', 'a', 0, 1).put(2, 'k', 'b', 2, 3).get(3, 'k', 'a', 10, 11);
  assert.is(verdict(h).verdict, 'violation');
  const h2 = new H().put(1, 'k', 'a', 0, 1).get(2, 'k', null, 5, 6);
  assert.is(verdict(h2).verdict, 'violation', 'the key vanished after an acknowledged put');
});

test('a read of a value never written is rejected', () => {
  const h = new H().put(1, 'k', 'a', 0, 1).get(2, 'k', 'x', 2, 3);
  assert.is(verdict(h).verdict, 'violation');
  // A value only a definitely-failed put carried counts as never written.
  const h2 = new H().fail(1, 'k', 'x', 0, 1).get(2, 'k', 'x', 2, 3);
  assert.is(verdict(h2).verdict, 'violation');
});

test('a cas that succeeded twice is rejected', () => {
  const seq = new H().put(1, 'k', 'a', 0, 1).cas(1, 'k', 'a', 'b', 2, 3, true).cas(2, 'k', 'a', 'c', 4, 5, true);
  assert.is(verdict(seq).verdict, 'violation');
  const conc = new H().put(1, 'k', 'a', 0, 1).cas(1, 'k', 'a', 'b', 2, 6, true).cas(2, 'k', 'a', 'c', 3, 7, true);
  assert.is(verdict(conc).verdict, 'violation', 'concurrent: both cannot have seen "a"');
  // And a failed cas whose compare must have held.
  const wrongFail = new H().put(1, 'k', 'a', 0, 1).cas(2, 'k', 'a', 'b', 2, 3, false);
  assert.is(verdict(wrongFail).verdict, 'violation');
});

test('an unknown write seen and then unseen is rejected (it cannot take effect twice)', () => {
  const h = new H().put(1, 'k', 'a', 0, 1).put(2, 'k', 'b', 2, null).get(1, 'k', 'b', 10, 11).get(1, 'k', 'a', 12, 13);
  assert.is(verdict(h).verdict, 'violation');
});

test('keys are checked apart; the report names the failing key and its shortest failing prefix', () => {
  const h = new H();
  h.put(1, 'good', 'g1', 0, 1).put(2, 'bad', 'x1', 0, 1);
  h.put(1, 'good', 'g2', 2, 3).put(2, 'bad', 'x2', 2, 3);
  h.get(3, 'good', 'g2', 4, 5).get(3, 'bad', 'x2', 4, 5);
  h.get(3, 'bad', 'x1', 6, 7); // stale: the violation
  h.put(1, 'bad', 'x3', 8, 9).get(1, 'bad', 'x3', 10, 11).put(1, 'good', 'g3', 8, 9);
  const r = verdict(h);
  assert.is(r.verdict, 'violation');
  const bad = r.keys.find((k) => Buffer.from(k.key).toString() === 'bad')!;
  const good = r.keys.find((k) => Buffer.from(k.key).toString() === 'good')!;
  assert.is(good.verdict, 'ok');
  assert.is(bad.verdict, 'violation');
  assert.is(bad.culprit?.id, 6);
  assert.is(bad.minimalPrefix?.length, 4, 'the prefix ends at the stale read');
  assert.match(r.report, /key "bad"/);
  assert.not.match(r.report, /#9 /, 'ops after the failing one are not shown');
});

// ---- revision rules ----

test('revision anomalies are violations even when the values are fine', () => {
  // A read after an acknowledged write at revision 10 answers with header revision 8.
  const back = new H().put(1, 'k', 'a', 0, 1, 10).get(2, 'k', 'a', 2, 3, { mod: 10, revision: 8 });
  const r1 = verdict(back);
  assert.is(r1.verdict, 'violation');
  assert.ok(r1.revisionViolations.some((v) => v.rule === 'read-from-future' || v.rule === 'revision-went-back'));
  const back2 = new H().put(1, 'k', 'a', 0, 1, 10).get(2, 'j', null, 2, 3, { mod: 0, revision: 9 });
  assert.equal(
    verdict(back2).revisionViolations.map((v) => v.rule),
    ['revision-went-back'],
    'across keys too',
  );
  // Two writes at one revision.
  const shared = new H().put(1, 'k', 'a', 0, 1, 7).put(2, 'j', 'b', 0, 1, 7);
  assert.equal(
    verdict(shared).revisionViolations.map((v) => v.rule),
    ['shared-write-revision'],
  );
  // A value seen with a revision other than the one its write got.
  const mism = new H().put(1, 'k', 'a', 0, 1, 7).get(2, 'k', 'a', 2, 3, { mod: 6, revision: 7 });
  assert.ok(verdict(mism).revisionViolations.some((v) => v.rule === 'value-revision-mismatch'));
  // And a clean one has none.
  const clean = new H().put(1, 'k', 'a', 0, 1, 7).get(2, 'k', 'a', 2, 3, { mod: 7, revision: 7 }).put(1, 'k', 'b', 4, 5, 8);
  assert.is(verdict(clean).verdict, 'ok');
});

test('ranges and multi-key txns: a range answer is one snapshot; the parts of one txn share its revision', () => {
  // A txn puts a and b at revision 5; a later range over both at revision 5 sees both.
  const rec = new HistoryRecorder(100);
  const txn = rec.invokeGroup(1, 'put', [b('a'), b('b')], [b('a1'), b('b1')]);
  rec.okGroup(txn, [{ revision: 5 }, { revision: 5 }]);
  const good = rec.invokeGroup(2, 'get', [b('a'), b('b')]);
  rec.okGroup(good, [
    { found: b('a1'), modRevision: 5, revision: 5 },
    { found: b('b1'), modRevision: 5, revision: 5 },
  ]);
  const ok = checkHistory(rec.ops);
  assert.is(ok.verdict, 'ok', ok.report);
  assert.equal(historyFromJson(historyToJson(rec.ops)), rec.ops, 'groups survive the JSON form');
  assert.ok(rec.ops.every((o) => o.group === o.id || o.group === txn[0]!.id || o.group === good[0]!.id));

  // A range overlapping the txn in time, at revision 5, that saw a's new value but not b's: each key on its
  // own is linearizable (the txn overlaps the range), the snapshot is not.
  const torn = new HistoryRecorder(100);
  const t2 = torn.invokeGroup(1, 'put', [b('a'), b('b')], [b('a1'), b('b1')]);
  const r2 = torn.invokeGroup(2, 'get', [b('a'), b('b')]);
  torn.okGroup(r2, [
    { found: b('a1'), modRevision: 5, revision: 5 },
    { found: null, modRevision: 0, revision: 5 },
  ]);
  torn.okGroup(t2, [{ revision: 5 }, { revision: 5 }]);
  const v = checkHistory(torn.ops);
  assert.is(v.verdict, 'violation');
  assert.equal(
    v.revisionViolations.map((x) => x.rule),
    ['read-missed-write'],
    v.report,
  );
  assert.ok(
    v.keys.every((k) => k.verdict === 'ok'),
    'the per-key check alone accepts it',
  );

  // Two separate writes still may not share a revision; the parts of one txn may.
  const two = new H().put(1, 'a', 'x', 0, 1, 7).put(2, 'b', 'y', 0, 1, 7);
  assert.equal(
    verdict(two).revisionViolations.map((x) => x.rule),
    ['shared-write-revision'],
  );
});

// ---- bounds ----

test('a history over the op limit or the time budget is "unknown", with the reason', () => {
  const h = new H();
  for (let i = 0; i < 50; i++) h.put(1, 'k', `v${i}`, i * 2, i * 2 + 1);
  const r = checkHistory(h.ops, { opsPerKeyMax: 20 });
  assert.is(r.verdict, 'unknown');
  assert.match(r.report, /more than the limit of 20/);
  // Many overlapping open writes that are all observed make the search space explode; 1 ms is not enough.
  const wide = new H();
  for (let i = 0; i < 24; i++) wide.put(i, 'k', `w${i}`, 0, null);
  for (let i = 0; i < 24; i++) wide.get(100, 'k', `w${(i * 7) % 24}`, 10 + 2 * i, 11 + 2 * i);
  const r2 = checkHistory(wide.ops, { timeBudgetMs: 1, cacheEntriesMax: 500 });
  assert.is(r2.verdict, 'unknown', r2.summary);
  assert.match(r2.report, /budget|cache/);
});

test('the search itself: memoization makes exhausting a wide history feasible', () => {
  // 12 fully concurrent puts, then a read of a value nobody wrote: proving "no order works" means trying
  // every order of the puts — 12! ≈ 5e8 without memoization, 2^12 × 12 states with it.
  const ops: RegOp[] = [];
  for (let c = 0; c < 12; c++)
    ops.push({ historyIndex: c, kind: RegKind.Put, value: c + 1, expect: 0, found: UNKNOWN, succeeded: UNKNOWN, callMs: c, returnMs: 100 });
  ops.push({ historyIndex: 12, kind: RegKind.Get, value: 0, expect: 0, found: 99, succeeded: UNKNOWN, callMs: 200, returnMs: 201 });
  const started = Date.now();
  const r = searchRegister(ops, { deadlineMs: Date.now() + 20_000, cacheEntriesMax: 1e6, cacheBytesMax: 64 << 20 });
  assert.is(r.verdict, 'violation');
  assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
  // A register history with 40 rounds of 12 concurrent puts and a read of the round's last value is fine.
  const wide: RegOp[] = [];
  let v = 1;
  for (let round = 0; round < 40; round++) {
    const base = round * 10;
    for (let c = 0; c < 12; c++)
      wide.push({
        historyIndex: wide.length,
        kind: RegKind.Put,
        value: v + c,
        expect: 0,
        found: UNKNOWN,
        succeeded: UNKNOWN,
        callMs: base,
        returnMs: base + 5,
      });
    wide.push({
      historyIndex: wide.length,
      kind: RegKind.Get,
      value: 0,
      expect: 0,
      found: v + 11,
      succeeded: UNKNOWN,
      callMs: base + 6,
      returnMs: base + 7,
    });
    v += 12;
  }
  assert.is(searchRegister(wide, { deadlineMs: Date.now() + 10_000, cacheEntriesMax: 1e6, cacheBytesMax: 64 << 20 }).verdict, 'ok');
});

// ---- randomized: histories produced by a real register are always accepted ----

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** Simulates clients on one atomic register: each op takes effect at a random point inside its interval. */
function simulate(seed: number, clients: number, opsPerClient: number): { ops: Op[]; lastValue: string | null; endMs: number } {
  const rand = rng(seed);
  interface Planned {
    client: number;
    kind: 'get' | 'put' | 'cas';
    callMs: number;
    returnMs: number;
    pointMs: number;
    value: string;
    expect: string | null;
    lost: boolean;
  }
  const planned: Planned[] = [];
  const keyValues: string[] = [];
  let n = 0;
  for (let c = 0; c < clients; c++) {
    let t = rand() * 5;
    for (let i = 0; i < opsPerClient; i++) {
      const dur = 0.5 + rand() * 10;
      const r = rand();
      const kind = r < 0.4 ? 'get' : r < 0.7 ? 'put' : 'cas';
      const value = `c${c}-${n++}`;
      keyValues.push(value);
      const expect = keyValues.length > 1 && rand() < 0.8 ? keyValues[Math.floor(rand() * keyValues.length)] : null;
      // Some writes lose their answer; some of those never reach the register at all.
      const lost = kind !== 'get' && rand() < 0.1;
      planned.push({
        client: c,
        kind,
        callMs: t,
        returnMs: t + dur,
        pointMs: lost && rand() < 0.5 ? Infinity : t + rand() * dur,
        value,
        expect,
        lost,
      });
      t += dur + rand() * 2;
      if (lost) break; // a client that lost an answer stops, as the fault tests' clients move on
    }
  }
  const order = planned
    .map((p, i) => ({ p, i }))
    .filter((x) => Number.isFinite(x.p.pointMs))
    .sort((a, b) => a.p.pointMs - b.p.pointMs);
  let state: string | null = null;
  const ops: Op[] = [];
  const outcome = new Map<number, { found: string | null; succeeded: boolean }>();
  for (const { p, i } of order) {
    if (p.kind === 'get') outcome.set(i, { found: state, succeeded: false });
    else if (p.kind === 'put') {
      state = p.value;
      outcome.set(i, { found: null, succeeded: true });
    } else {
      const ok = state === p.expect;
      outcome.set(i, { found: state, succeeded: ok });
      if (ok) state = p.value;
    }
  }
  let endMs = 0;
  planned.forEach((p, i) => {
    endMs = Math.max(endMs, p.returnMs);
    const base = { id: i, client: p.client, key: b('k'), callMs: p.callMs };
    if (p.lost) {
      const o: Op = { ...base, kind: p.kind, returnMs: Infinity, status: 'unknown', value: b(p.value) };
      if (p.kind === 'cas') o.expect = p.expect === null ? null : b(p.expect);
      ops.push(o);
      return;
    }
    const out = outcome.get(i)!;
    if (p.kind === 'get')
      ops.push({ ...base, kind: 'get', returnMs: p.returnMs, status: 'ok', found: out.found === null ? null : b(out.found) });
    else if (p.kind === 'put') ops.push({ ...base, kind: 'put', returnMs: p.returnMs, status: 'ok', value: b(p.value) });
    else {
      const o: Op = {
        ...base,
        kind: 'cas',
        returnMs: p.returnMs,
        status: 'ok',
        value: b(p.value),
        expect: p.expect === null ? null : b(p.expect),
        succeeded: out.succeeded,
      };
      if (!out.succeeded) o.found = out.found === null ? null : b(out.found);
      ops.push(o);
    }
  });
  return { ops, lastValue: state, endMs };
}

test('randomized: 300 simulated concurrent histories (with unknown outcomes) are all accepted', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const { ops } = simulate(seed, 2 + (seed % 6), 30);
    const r = checkHistory(ops, { timeBudgetMs: 10_000 });
    assert.is(r.verdict, 'ok', `seed ${seed}: ${r.summary}\n${r.report}`);
  }
});

test('randomized: the same histories plus a read of an overwritten value are all rejected', () => {
  for (let seed = 1; seed <= 100; seed++) {
    const { ops, endMs } = simulate(seed, 2 + (seed % 6), 30);
    // A barrier write after everything (open writes resolved by then), then a read of a value that an
    // acknowledged put wrote before the barrier: stale whatever the order of the rest was.
    const old = ops.find((o) => o.kind === 'put' && o.status === 'ok');
    if (old === undefined) continue;
    const t = endMs + 10;
    const last = ops.length;
    ops.push({ id: last, client: 99, kind: 'put', key: b('k'), callMs: t, returnMs: t + 1, status: 'ok', value: b('barrier') });
    ops.push({ id: last + 1, client: 99, kind: 'get', key: b('k'), callMs: t + 2, returnMs: t + 3, status: 'ok', found: old.value! });
    const r = checkHistory(ops, { timeBudgetMs: 10_000 });
    assert.is(r.verdict, 'violation', `seed ${seed}: ${r.summary}`);
    assert.is(r.keys[0].culprit?.id, last + 1, `seed ${seed}: the stale read is the culprit`);
  }
});

// ---- plumbing ----

test('the recorder and the JSON form round-trip a history', () => {
  const rec = new HistoryRecorder(10);
  const p = rec.invoke(1, 'put', b('k'), { value: b('a') });
  rec.ok(p, { revision: 2 });
  const g = rec.invoke(2, 'get', b('k'));
  rec.ok(g, { found: b('a'), modRevision: 2, revision: 2 });
  const c = rec.invoke(3, 'cas', b('k'), { expect: null, value: b('\x00\xff') });
  rec.unknown(c);
  const back = historyFromJson(historyToJson(rec.ops));
  assert.equal(back, rec.ops);
  assert.is(back[2].returnMs, Infinity);
  assert.is(checkHistory(back).verdict, 'ok');
  assert.throws(() => rec.ok(p, { revision: 3 }), /twice/);
});

test('the CLI checks a saved history: exit 0 when linearizable, 1 with the report when not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tetcd-lincheck-'));
  try {
    const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tools', 'lincheck', 'main.js');
    const good = join(dir, 'good.json');
    const bad = join(dir, 'bad.json');
    writeFileSync(good, historyToJson(new H().put(1, 'k', 'a', 0, 1).get(2, 'k', 'a', 2, 3).ops));
    writeFileSync(bad, historyToJson(new H().put(1, 'k', 'a', 0, 1).put(1, 'k', 'b', 2, 3).get(2, 'k', 'a', 4, 5).ops));
    const ok = spawnSync(process.execPath, [main, good], { encoding: 'utf8' });
    assert.is(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^ok: linearizable/);
    const no = spawnSync(process.execPath, [main, bad], { encoding: 'utf8' });
    assert.is(no.status, 1, no.stderr);
    assert.match(no.stdout, />> #2 c2/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
