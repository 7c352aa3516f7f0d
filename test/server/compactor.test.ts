import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PeriodicCompactor, RevisionCompactor, type CompactorHost } from '../../src/server/compactor.js';
import { Errors } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';

function host(): CompactorHost & { rev: number; leader: boolean; compacted: number[]; fail?: Error } {
  const h = {
    rev: 1,
    leader: true,
    compacted: [] as number[],
    fail: undefined as Error | undefined,
    log: silentLogger,
    currentRevision: () => h.rev,
    isLeader: () => h.leader,
    compact: (r: number) => {
      h.compacted.push(r);
      return h.fail ? Promise.reject(h.fail) : Promise.resolve();
    },
  };
  return h;
}
const flush = () => new Promise((r) => setImmediate(r));

test('periodic: waits one period, then compacts to the revision seen one period ago, every period', async () => {
  const h = host();
  const c = new PeriodicCompactor(10_000, h, 0);
  assert.is(c.tickIntervalMs, 1000);
  for (let t = 1000; t <= 9000; t += 1000) {
    h.rev = t / 100;
    c.tick(t);
    await flush();
  }
  assert.equal(h.compacted, [], 'nothing before a whole period');
  h.rev = 100;
  c.tick(10_000);
  await flush();
  assert.equal(h.compacted, [10], 'the revision sampled at t=1s, ten samples ago');
  for (let t = 11_000; t < 20_000; t += 1000) {
    h.rev = t / 100;
    c.tick(t);
    await flush();
  }
  assert.is(h.compacted.length, 1);
  h.rev = 200;
  c.tick(20_000);
  await flush();
  assert.equal(h.compacted, [10, 100]);
});

test('periodic: periods over an hour compact hourly; samples every 6 minutes', () => {
  const c = new PeriodicCompactor(24 * 3_600_000, host(), 0);
  assert.is(c.tickIntervalMs, 360_000);
});

test('periodic: only the leader compacts; a failure is retried at the next tick; compacted counts as done', async () => {
  const h = host();
  const c = new PeriodicCompactor(5000, h, 0);
  h.leader = false;
  for (let t = 500; t <= 6000; t += 500) {
    h.rev++;
    c.tick(t);
    await flush();
  }
  assert.equal(h.compacted, []);
  h.leader = true;
  h.fail = Errors.Timeout();
  c.tick(6500);
  await flush();
  assert.is(h.compacted.length, 1);
  h.fail = Errors.Compacted();
  c.tick(7000);
  await flush();
  assert.is(h.compacted.length, 2);
  h.fail = undefined;
  c.tick(7500);
  await flush();
  assert.is(h.compacted.length, 2, 'after a success (ErrCompacted counts) it waits another interval');
});

test('revision: compacts to current - retention, once per distinct revision, leader only', async () => {
  const h = host();
  const c = new RevisionCompactor(5, h, 1000);
  h.rev = 3;
  c.tick(0);
  await flush();
  assert.equal(h.compacted, [], 'nothing below revision 1');
  h.rev = 100;
  c.tick(1);
  await flush();
  c.tick(2);
  await flush();
  assert.equal(h.compacted, [95]);
  h.leader = false;
  h.rev = 200;
  c.tick(3);
  await flush();
  assert.equal(h.compacted, [95]);
  h.leader = true;
  c.tick(4);
  await flush();
  assert.equal(h.compacted, [95, 195]);
});

test.run();
