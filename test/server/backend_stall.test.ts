// A backend commit that never becomes durable (lmdb-js leaves a commit unsettled when LMDB's meta page write
// fails, and only prints the error) is taken for a failed disk after commitStallMs: the member stops writing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemberBackend } from '../../src/server/backend.js';
import { BackendQuota } from '../../src/server/quota.js';
import type { Mvcc } from '../../src/mvcc/index.js';
import { ManualScheduler } from '../helpers/manual_scheduler.js';

/** A store whose commits settle only when the test says so. */
function fakeStore(): { store: Mvcc; settle: () => void } {
  const pending: Array<() => void> = [];
  const store = {
    consistentIndex: () => ({ index: 0, term: 0 }),
    commit: () => {
      let resolve!: () => void;
      const flushed = new Promise<void>((r) => {
        resolve = r;
      });
      pending.push(resolve);
      return { committed: flushed, flushed };
    },
  } as unknown as Mvcc;
  return { store, settle: () => pending.splice(0).forEach((r) => r()) };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function backend(store: Mvcc, sched: ManualScheduler, failures: string[], applied: { index: number }): MemberBackend {
  return new MemberBackend(
    store,
    {
      batchIntervalMs: 100,
      batchLimit: 1,
      quota: new BackendQuota(0, 0),
      sched,
      onFail: (err) => failures.push(err instanceof Error ? err.message : String(err)),
      commitStallMs: 30_000,
    },
    () => ({ appliedIndex: applied.index, appliedTerm: 1 }),
  );
}

test('a commit still not durable after commitStallMs fails the backend, once, and nothing commits after it', async () => {
  const sched = new ManualScheduler();
  const { store } = fakeStore();
  const failures: string[] = [];
  const at = { index: 1 };
  const be = backend(store, sched, failures, at);
  be.applied(1);
  sched.advance(29_999);
  await tick();
  assert.equal(failures, [], 'failed before the stall time');
  sched.advance(1);
  for (let i = 0; i < 5 && failures.length === 0; i++) await tick();
  assert.equal(failures.length, 1);
  assert.match(failures[0]!, /backend: a commit \(applied index 1\) was not durable after 30000 ms; the disk may have failed/);
  at.index = 2;
  const r = be.commit();
  assert.is(
    await r.committed.then(
      () => 'ok',
      () => 'refused',
    ),
    'refused',
    'a commit after the failure',
  );
  sched.advance(60_000);
  await tick();
  assert.is(failures.length, 1, 'reported once');
});

test('commits that become durable in time never trip it', async () => {
  const sched = new ManualScheduler();
  const { store, settle } = fakeStore();
  const failures: string[] = [];
  const at = { index: 0 };
  const be = backend(store, sched, failures, at);
  for (let i = 1; i <= 5; i++) {
    at.index = i;
    be.applied(1);
    sched.advance(20_000);
    settle();
    await tick();
  }
  sched.advance(120_000);
  await tick();
  assert.equal(failures, []);
});

test.run();
