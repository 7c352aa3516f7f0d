// --v8-workers-sched: V8's platform worker threads (compiler, collector helpers) are lowered in every process
// that serves clients: nice 10 by default ('low'), SCHED_IDLE with 'idle', untouched with 'normal'.
// Checked from the outside, in /proc, as an operator would.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { startTetcd } from '../helpers/member.js';
import { nativeAddonPath } from '../../src/native/addon.js';
import { V8_WORKERS_LOW_NICE } from '../../src/v8_workers.js';

const SCHED_IDLE = 5;

interface ThreadSched {
  tid: number;
  policy: number;
  nice: number;
}

/** Policy ('policy' line of /proc/<pid>/task/<tid>/sched) and nice value (field 19 of .../stat) per thread. */
function threads(pid: number): ThreadSched[] {
  const out: ThreadSched[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const policy = Number(/^policy\s*:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/sched`, 'utf8'))![1]);
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      out.push({ tid: Number(tid), policy, nice });
    } catch {
      // the thread ended while we looked
    }
  }
  return out;
}

const idleCount = (pid: number): number => threads(pid).filter((t) => t.policy === SCHED_IDLE).length;
const niceCount = (pid: number, nice: number): number => threads(pid).filter((t) => t.nice === nice).length;

function childPids(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);
}

/** Runs the addon in a fresh node with `pool` V8 worker threads; returns its calls' results and its threads. */
function lowerInChild(
  pool: number,
  calls: string,
  startNice = 0,
): { results: Array<{ switched: number; errno: number }>; threads: ThreadSched[]; main: number } {
  const script = `
    const fs = require('fs');
    const a = require(${JSON.stringify(nativeAddonPath())});
    const results = [${calls}];
    const threads = fs.readdirSync('/proc/self/task').map((t) => {
      const stat = fs.readFileSync('/proc/self/task/' + t + '/stat', 'utf8');
      return { tid: Number(t), policy: Number(/policy\\s*:\\s*(\\d+)/.exec(fs.readFileSync('/proc/self/task/' + t + '/sched', 'utf8'))[1]),
               nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
    });
    console.log(JSON.stringify({ results, threads, main: process.pid }));`;
  const argv = [process.execPath, `--v8-pool-size=${pool}`, '-e', script];
  const r =
    startNice === 0
      ? spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 })
      : spawnSync('nice', ['-n', String(startNice), ...argv], { encoding: 'utf8', timeout: 20_000 });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ReturnType<typeof lowerInChild>;
}

test('v8WorkersLower: exactly the V8 pool threads are lowered, once; the main thread stays', () => {
  for (const pool of [1, 3]) {
    const idle = lowerInChild(pool, "a.v8WorkersLower('idle', 0, 2000), a.v8WorkersLower('idle', 0, 2000)");
    assert.is(idle.results[0]!.errno, 0);
    assert.is(idle.results[0]!.switched, pool, JSON.stringify(idle));
    assert.is(idle.threads.filter((t) => t.policy === SCHED_IDLE).length, pool);
    assert.is(idle.threads.find((t) => t.tid === idle.main)!.policy, 0, 'the main thread stays normal');
    assert.is(idle.results[1]!.switched, 0, 'a thread is lowered once');

    const nice = lowerInChild(pool, "a.v8WorkersLower('nice', 7, 2000)");
    assert.is(nice.results[0]!.switched, pool, JSON.stringify(nice));
    assert.is(nice.threads.filter((t) => t.nice === 7).length, pool);
    assert.is(nice.threads.filter((t) => t.policy === SCHED_IDLE).length, 0);
    assert.is(nice.threads.find((t) => t.tid === nice.main)!.nice, 0);
  }
});

test('v8WorkersLower never raises a thread: under nice 15, asking for nice 7 leaves every thread at 15', () => {
  const r = lowerInChild(2, "a.v8WorkersLower('nice', 7, 2000)", 15);
  assert.is(r.results[0]!.errno, 0);
  assert.is(r.results[0]!.switched, 2, JSON.stringify(r));
  assert.ok(
    r.threads.every((t) => t.nice === 15),
    JSON.stringify(r.threads),
  );
});

test('v8WorkersLower refuses bad arguments', () => {
  const script = `const a = require(${JSON.stringify(nativeAddonPath())});
    for (const args of [['idle', 0, 0], ['idle', 0, -1], ['idle', 0, 1e9], ['nice', 0, 100], ['nice', 20, 100], ['fast', 5, 100], ['idle', 0, 'x'], [1, 2, 3]]) {
      try { a.v8WorkersLower(...args); console.log('accepted'); } catch (e) { console.log(e.constructor.name); }
    }`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.is(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n'), [
    'RangeError',
    'RangeError',
    'RangeError',
    'RangeError',
    'RangeError',
    'RangeError',
    'TypeError',
    'TypeError',
  ]);
});

test('a member lowers its V8 worker threads: nice 10 by default, SCHED_IDLE with idle, none with normal', async () => {
  const cases: Array<[string[], (pid: number) => void]> = [
    [
      [],
      (pid) => {
        // Node's default pool is 4 threads; the main thread, the WAL writer and LMDB's threads stay as they were.
        assert.is(niceCount(pid, V8_WORKERS_LOW_NICE), 4, JSON.stringify(threads(pid)));
        assert.is(idleCount(pid), 0);
        assert.is(threads(pid).find((t) => t.tid === pid)!.nice, 0);
      },
    ],
    [
      ['--v8-workers-sched', 'idle'],
      (pid) => {
        assert.is(idleCount(pid), 4, JSON.stringify(threads(pid)));
        assert.is(threads(pid).find((t) => t.tid === pid)!.policy, 0);
      },
    ],
    [
      ['--v8-workers-sched', 'normal'],
      (pid) => {
        assert.is(idleCount(pid), 0);
        assert.is(niceCount(pid, 0), threads(pid).length);
      },
    ],
  ];
  for (const [args, check] of cases) {
    const m = await startTetcd({ extraArgs: args });
    try {
      check(m.proc!.pid!);
    } finally {
      await m.stop();
    }
  }
});

test('client processes (--client-workers 2) lower theirs too', async () => {
  const m = await startTetcd({ extraArgs: ['--client-workers', '2', '--v8-workers-sched', 'idle'] });
  try {
    // A client process lowers its threads as it starts, which can finish just after the member answers /health.
    const deadline = Date.now() + 5_000;
    let kids = childPids(m.proc!.pid!);
    while (Date.now() < deadline && (kids.length < 2 || kids.some((pid) => idleCount(pid) !== 4))) {
      await new Promise((r) => setTimeout(r, 50));
      kids = childPids(m.proc!.pid!);
    }
    assert.is(kids.length, 2);
    for (const pid of kids) assert.is(idleCount(pid), 4, `client process ${pid}`);
    assert.is(idleCount(m.proc!.pid!), 4);
  } finally {
    await m.stop();
  }
});

test.run();
