// etcd_server_slow_apply_total and etcd's warning "apply request took too long": a batch of committed
// entries whose apply takes longer than SLOW_APPLY_MS (etcd's --experimental-warning-apply-duration, 100 ms)
// is counted and logged with etcd's fields; quicker ones are not. The applier is the test's, slowed by a
// delay the test sets (no member needed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EntryApplier, SLOW_APPLY_MS, type EntryApplierDeps } from '../../src/server/apply_entries.js';
import { EntryType, type Entry } from '../../src/raft/index.js';
import { encodeInternalRequest } from '../../src/proto/internal.js';
import type { LogFields, Logger } from '../../src/log.js';

interface Logged {
  level: string;
  msg: string;
  fields: LogFields | undefined;
}

function recordingLogger(into: Logged[]): Logger {
  const at =
    (level: string) =>
    (msg: string, fields?: LogFields): void => {
      into.push({ level, msg, fields });
    };
  const l: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), with: () => l };
  return l;
}

/** An EntryApplier whose every write takes `delay.ms` (a busy wait: applying is synchronous). */
function setup() {
  const delay = { ms: 0 };
  const logged: Logged[] = [];
  const applied: bigint[] = [];
  const deps = {
    memberId: 1n,
    backend: { backendIndex: 0, applied: () => {} },
    applier: {
      applyWrite: (req: { ID: bigint }) => {
        const until = performance.now() + delay.ms;
        while (performance.now() < until) {}
        applied.push(req.ID);
        return { response: {} };
      },
    },
    events: { wantsPrevKv: false, wantsKvChanges: false, hasSubscribers: false },
    trigger: () => {},
    logger: recordingLogger(logged),
  } as unknown as EntryApplierDeps;
  const applier = new EntryApplier(deps, { index: 0, term: 1 }, { voters: [1n], learners: [] } as never);
  let index = 0;
  const entries = (n: number): Entry[] =>
    Array.from({ length: n }, () => {
      index++;
      const data = encodeInternalRequest({ ID: BigInt(index), put: { key: Buffer.from(`k${index}`), value: Buffer.from('v') } });
      return { index, term: 1, type: EntryType.Normal, data };
    });
  return { delay, logged, applied, applier, entries };
}

test('an apply slower than 100 ms is counted in slowApplies and logged as etcd logs it', () => {
  const s = setup();
  s.applier.apply(s.entries(3));
  assert.is(s.applier.slowApplies, 0, 'quick applies are not counted');
  assert.equal(
    s.logged.filter((l) => l.msg === 'apply request took too long'),
    [],
  );
  s.delay.ms = SLOW_APPLY_MS + 20;
  s.applier.apply(s.entries(1));
  assert.is(s.applier.slowApplies, 1);
  const warn = s.logged.filter((l) => l.msg === 'apply request took too long');
  assert.is(warn.length, 1);
  assert.is(warn[0].level, 'warn');
  assert.is(warn[0].fields?.['expected-duration'], '100ms');
  const took = /^([\d.]+)(ms|s)$/.exec(String(warn[0].fields?.took));
  assert.ok(took !== null, `took is a duration: ${String(warn[0].fields?.took)}`);
  assert.ok(Number(took[1]) * (took[2] === 's' ? 1000 : 1) >= SLOW_APPLY_MS + 20, 'took is at least the delay');
  s.delay.ms = 0;
  s.applier.apply(s.entries(2));
  assert.is(s.applier.slowApplies, 1, 'a quick apply after a slow one is not counted');
  assert.equal(s.applied, [1n, 2n, 3n, 4n, 5n, 6n]);
});

test('a batch whose entries together take longer than 100 ms counts once (tetcd times the batch it applies at once)', () => {
  const s = setup();
  s.delay.ms = 30;
  s.applier.apply(s.entries(5));
  assert.is(s.applier.slowApplies, 1);
  assert.is(s.logged.filter((l) => l.msg === 'apply request took too long')[0].fields?.entries, 5);
});

test.run();
