// Self-time ranking of V8 CPU profiles, on a hand-made profile and on a real one from node --cpu-prof.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { summarize, readCpuProfile, shortUrl, monotonicNowUs, type CpuProfile } from '../../bench/lib/cpuprofile.js';

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber, columnNumber: 0 });

test('self time is charged per sample interval and ranked; idle is left out of the shares', () => {
  const p: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)') },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('hot', 'file:///repo/src/a.js', 9) },
      { id: 4, callFrame: frame('warm', 'file:///repo/src/b.js', 19) },
      { id: 5, callFrame: frame('', 'file:///repo/src/a.js', 29) },
    ],
    startTime: 0,
    endTime: 1000,
    // Sample i lasts timeDeltas[i + 1].
    samples: [3, 3, 4, 2, 5, 3],
    timeDeltas: [0, 100, 100, 200, 300, 100],
  };
  const s = summarize(p, 10, '/repo');
  assert.is(s.idleMs, 0.3);
  assert.equal(
    s.functions.map((f) => f.name),
    ['hot', 'warm', '(anonymous)'],
  );
  assert.is(s.functions[0].where, 'src/a.js:10');
  assert.is(s.functions[0].selfMs, 0.2);
  assert.is(s.functions[1].selfMs, 0.2);
  assert.is(Math.round(s.functions[0].share * 100), 40);
  assert.equal(
    s.files.map((f) => f.name),
    ['src/a.js', 'src/b.js'],
  );
  assert.is(summarize(p, 1).functions.length, 1);
  assert.is(shortUrl('file:///repo/x/y.js', '/repo'), 'x/y.js');
  assert.is(shortUrl('node:internal/http2/core', '/repo'), 'node:internal/http2/core');
});

test('a time window keeps only the samples taken inside it', () => {
  const p: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(idle)') },
      { id: 2, callFrame: frame('startup') },
      { id: 3, callFrame: frame('load') },
    ],
    startTime: 0,
    endTime: 0,
    // 1 ms samples, sample i taken at (i + 1) ms: 3 of start-up, 5 idle, 6 of load (9-14 ms), 4 idle.
    samples: [2, 2, 2, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1],
    timeDeltas: new Array(19).fill(1000),
  };
  const s = summarize(p, 5, '', { fromUs: 9000, toUs: 15_000 });
  assert.equal(
    s.functions.map((f) => f.name),
    ['load'],
  );
  assert.is(s.functions[0].selfMs, 6);
  assert.is(s.wallMs, 6);
  assert.is(summarize(p, 5).functions.length, 2);
  assert.equal(
    summarize(p, 5, '', { fromUs: 0, toUs: 2500 }).functions.map((f) => [f.name, f.selfMs]),
    [['startup', 2]],
  );
});

test('profile timestamps are on the clock of process.hrtime, so another process can cut a window', () => {
  const dir = mkdtempSync('/tmp/bench-cpuprof-');
  try {
    const before = monotonicNowUs();
    execFileSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, '-e', 'let s=0; for (let i=0;i<1e7;i++) s+=i;']);
    const after = monotonicNowUs();
    const p = readCpuProfile(join(dir, readdirSync(dir)[0]));
    assert.ok(p.startTime >= before && p.endTime <= after, `${before} <= ${p.startTime}..${p.endTime} <= ${after}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a real node --cpu-prof profile names the function that burns the CPU', () => {
  const dir = mkdtempSync('/tmp/bench-cpuprof-');
  try {
    const script = 'function burnTheCpu(){let s=0;for(let i=0;i<3e8;i++)s+=i%7;return s} burnTheCpu();';
    execFileSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, '-e', script]);
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))!;
    const s = summarize(readCpuProfile(join(dir, file)), 5);
    assert.is(s.functions[0].name, 'burnTheCpu');
    assert.ok(s.functions[0].share > 0.5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
