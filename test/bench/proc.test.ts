// /proc readers: stat parsing with awkward command names, memory fields, process trees and CPU deltas.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import {
  parseProcStat,
  parseProcStatusMem,
  parseMachineBusyTicks,
  processTree,
  cpuSecondsOfTrees,
  memOfTrees,
  machineBusySeconds,
  commOfStat,
  threadCpuSeconds,
  threadCpuDelta,
} from '../../bench/lib/proc.js';

/** A node -e script that spins until it has used 0.8 s of CPU. */
const BURN_CPU = 'while (process.cpuUsage().user < 0.8e6) {}';

test('parseProcStat counts fields after the last parenthesis', () => {
  const line = '4242 (a (weird) name) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 3 0 123 1000 200 18446744073709551615';
  assert.equal(parseProcStat(line), { pid: 4242, ppid: 17, cpuTicks: 325 });
  assert.throws(() => parseProcStat('no parens here'));
});

test('parseProcStatusMem reads VmRSS and VmHWM in bytes', () => {
  const text = 'Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t   80000 kB\nRssFile:\t   22000 kB\nThreads:\t7\n';
  assert.equal(parseProcStatusMem(text), {
    rssBytes: 102400 * 1024,
    peakRssBytes: 204800 * 1024,
    anonBytes: 80000 * 1024,
    fileBytes: 22000 * 1024,
  });
  assert.equal(parseProcStatusMem('Name:\tx\n'), { rssBytes: 0, peakRssBytes: 0, anonBytes: 0, fileBytes: 0 });
});

test('parseMachineBusyTicks sums user, nice, system, irq and softirq', () => {
  assert.is(parseMachineBusyTicks('cpu  100 5 50 9000 30 2 3 40 0 0\ncpu0 1 2 3 4 5 6 7 8\n'), 160);
  assert.throws(() => parseMachineBusyTicks('intr 1 2 3'));
});

test('a busy child shows up in its parent tree, with CPU and memory', async () => {
  // A shell whose child burns CPU: the tree of the shell must include the child and its CPU.
  // The child burns 0.8 s of its own CPU (not wall time), so a busy machine only stretches the test.
  const sh = spawn('/bin/sh', ['-c', `${process.execPath} -e "${BURN_CPU}" ; sleep 0.2`], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 150));
  const tree = processTree(sh.pid!);
  assert.ok(tree.length >= 2, `tree ${tree}`);
  const busy0 = machineBusySeconds();
  const cpu0 = cpuSecondsOfTrees([sh.pid!]);
  await new Promise((r) => setTimeout(r, 400));
  const cpu1 = cpuSecondsOfTrees([sh.pid!]);
  const busy1 = machineBusySeconds();
  assert.ok(cpu1 - cpu0 >= 0.05, `cpu delta ${cpu1 - cpu0}`);
  assert.ok(busy1 - busy0 >= cpu1 - cpu0 - 0.05, 'the machine was at least as busy as the child');
  assert.ok(memOfTrees([sh.pid!]).rssBytes > 10 * 1024 * 1024);
  await new Promise((r) => sh.once('exit', r));
  assert.is(cpuSecondsOfTrees([sh.pid!]), 0);
});

test('per-thread CPU names the busy main thread of a child', async () => {
  assert.is(commOfStat('12 (a (b) c) S 1'), 'a (b) c');
  const child = spawn(process.execPath, ['-e', BURN_CPU], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 150));
  const before = threadCpuSeconds([child.pid!]);
  assert.ok(before.size >= 2, 'node has helper threads');
  await new Promise((r) => setTimeout(r, 400));
  const delta = threadCpuDelta(before, threadCpuSeconds([child.pid!]));
  assert.is(delta[0][0], `node (main) ${child.pid}/${child.pid}`);
  assert.ok(delta[0][1] >= 0.05, `main thread ${delta[0][1]} s`);
  await new Promise((r) => child.once('exit', r));
});

test.run();
