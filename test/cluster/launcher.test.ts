// The local cluster launcher (tools/cluster.ts) as a developer runs it: it starts N members, prints their
// endpoints and an etcdctl line that works, and stops them all on SIGTERM/SIGINT (removing a temp data dir,
// keeping a given one). Also with --etcd, and its argument parsing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseClusterArgs, shebangNodeFlags, tetcdNodeFlags } from '../../tools/cluster.js';
import { awaitWithTimer, processAlive, tempDir, track } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { modeArgs, repoRoot } from '../helpers/member.js';

const launcher = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tools', 'cluster.js');

interface Launched {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  pids: number[];
}

const launched: Launched[] = [];

/** Starts the launcher and waits for its "Ctrl-C stops" line. */
async function launch(args: string[], readyTimeoutMs = 45_000): Promise<Launched> {
  const child = track(spawn(process.execPath, [launcher, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const l: Launched = { child, output: () => out, exited, pids: [] };
  launched.push(l);
  const deadline = Date.now() + readyTimeoutMs;
  while (!out.includes('Ctrl-C stops the cluster.')) {
    if (child.exitCode !== null) throw new Error(`launcher exited (${child.exitCode}):\n${out}`);
    if (Date.now() > deadline) throw new Error(`launcher not ready after ${readyTimeoutMs} ms:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  l.pids = [...out.matchAll(/ pid (\d+) /g)].map((m) => Number(m[1]));
  return l;
}

async function waitExit(l: Launched, timeoutMs: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`launcher still running after ${timeoutMs} ms:\n${l.output()}`)), timeoutMs);
  });
  try {
    return await Promise.race([l.exited, t]);
  } finally {
    clearTimeout(timer);
  }
}

test.after(async () => {
  // A failed test must not leave members behind: stop the launcher, then its members by pid.
  for (const l of launched) {
    if (l.child.exitCode === null) {
      l.child.kill('SIGTERM');
      await waitExit(l, 20_000).catch(() => l.child.kill('SIGKILL'));
    }
    for (const pid of l.pids) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  }
});

test('argument parsing', () => {
  assert.equal(parseClusterArgs([]), { size: 3 });
  assert.equal(parseClusterArgs(['--size', '5', '--base-port=30000', '--keep', '--etcd', '--data-dir', '/x']), {
    size: 5,
    basePort: 30000,
    keepDataDir: true,
    kind: 'etcd',
    dataDir: '/x',
  });
  assert.equal(parseClusterArgs(['--size', '1', '--', '--election-timeout', '500']), { size: 1, extraArgs: ['--election-timeout', '500'] });
  const bad = parseClusterArgs(['--size', '0']);
  assert.ok('usage' in bad && bad.exitCode === 2);
  const unknown = parseClusterArgs(['--sise', '3']);
  assert.ok('usage' in unknown && /unknown argument --sise/.test(unknown.usage));
  const help = parseClusterArgs(['--help']);
  assert.ok('usage' in help && help.exitCode === 0 && /--base-port/.test(help.usage));
});

test("node flags come from a script's shebang; bin/tetcd runs through its own", () => {
  const dir = tempDir('shebang-');
  const cases: Array<[string, string[] | null]> = [
    ['#!/usr/bin/env node', []],
    ['#!/usr/bin/env -S node --a=1  --b', ['--a=1', '--b']],
    ['#!/usr/local/bin/node --x', ['--x']],
    ['#!/bin/sh', null],
    ['// not a script', null],
  ];
  for (const [line, want] of cases) {
    const f = join(dir, 's');
    writeFileSync(f, `${line}\nconsole.log(1);\n`);
    if (want === null) assert.throws(() => shebangNodeFlags(f), /not a node script/, line);
    else assert.equal(shebangNodeFlags(f), want, line);
  }
  const flags = tetcdNodeFlags();
  assert.ok(flags.includes('--max-semi-space-size=32') && flags.includes('--min-semi-space-size=32'), flags.join(' '));
  const r = spawnSync(join(repoRoot(), 'bin', 'tetcd'), ['--version'], { encoding: 'utf8', timeout: 20_000 });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /etcd Version: 3\.4/);
});

test('`cluster --size 3`: prints endpoints and a working etcdctl line; SIGTERM stops every member and removes the temp data', async () => {
  // Arguments after `--` go to every member: the client-process pass of npm test runs the launcher in that mode.
  const memberArgs = modeArgs();
  const l = await launch(['--size', '3', ...(memberArgs.length > 0 ? ['--', ...memberArgs] : [])]);
  const out = l.output();
  assert.is(l.pids.length, 3, out);
  // Members run with bin/tetcd's node flags, as `bin/tetcd` itself would start them.
  for (const pid of l.pids) {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    for (const f of tetcdNodeFlags())
      assert.ok(
        argv.indexOf(f) > 0 && argv.indexOf(f) < argv.findIndex((a) => a.endsWith('main.js')),
        `${f} before main.js in ${argv.join(' ')}`,
      );
  }
  const line = /^\s+(etcdctl --endpoints=(\S+) endpoint status -w table)$/m.exec(out);
  assert.ok(line, `no etcdctl line in:\n${out}`);
  const endpoints = line![2]!;
  assert.is(endpoints.split(',').length, 3);
  const dataDir = /data in (\S+)/.exec(out)![1]!;
  assert.ok(existsSync(join(dataDir, 'm1', 'member')), 'members keep their data under the printed dir');

  // The printed line, as a user would paste it.
  const st = await etcdctl(endpoints, ['endpoint', 'status', '-w', 'table']);
  assert.is(st.code, 0, st.stderr);
  const rows = st.stdout.split('\n').filter((r) => /^\| 127\.0\.0\.1:/.test(r));
  assert.is(rows.length, 3, st.stdout);
  assert.is(rows.filter((r) => r.split('|')[5]!.trim() === 'true').length, 1, `exactly one leader:\n${st.stdout}`);
  const put = await etcdctl(endpoints, ['put', 'launcher', 'works']);
  assert.is(put.code, 0, put.stderr);
  const get = await etcdctl(endpoints.split(',')[2]!, ['get', 'launcher', '--print-value-only']);
  assert.is(get.stdout, 'works\n');

  l.child.kill('SIGTERM');
  assert.is(await waitExit(l, 20_000), 0);
  assert.match(l.output(), /stopped; temp data removed/);
  for (const pid of l.pids) assert.not.ok(processAlive(pid), `member pid ${pid} still running`);
  assert.not.ok(existsSync(dataDir), 'temp data dir removed');
});

test('`cluster --etcd --size 1 --data-dir D`: real etcd with the same layout; SIGINT stops it and keeps D', async () => {
  const d = join(tempDir('tetcd-launcher-'), 'c');
  const l = await launch(['--etcd', '--size', '1', '--data-dir', d]);
  assert.is(l.pids.length, 1);
  assert.match(l.output(), /1-member etcd cluster/);
  const ep = /endpoints: (\S+)/.exec(l.output())![1]!;
  const v = await etcdctl(ep, ['endpoint', 'status', '-w', 'json']);
  assert.is(v.code, 0, v.stderr);
  assert.match(v.stdout, /"version":"3\.4\./);
  l.child.kill('SIGINT');
  assert.is(await waitExit(l, 20_000), 0);
  assert.match(l.output(), /data kept in/);
  assert.not.ok(processAlive(l.pids[0]!));
  assert.ok(existsSync(join(d, 'm1', 'member')), 'the given data dir is kept');
  assert.ok(existsSync(join(d, 'm1.log')), 'with the member log');
});

test('`cluster --size 1` grows by a learner and shrinks back through commands on stdin', async () => {
  const child = track(
    spawn(process.execPath, [launcher, '--size', '1', '--', '--heartbeat-interval', '50', '--election-timeout', '500', ...modeArgs()], {
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const waitFor = async (re: RegExp, from: number) => {
    const deadline = Date.now() + 45_000;
    while (!re.test(out.slice(from))) {
      assert.ok(Date.now() < deadline, `no ${re} in:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await waitFor(/Ctrl-C stops the cluster\./, 0);
  let at = out.length;
  child.stdin!.write('add learner\n');
  await waitFor(/ m2 +client http:\S+ +peer http:\S+ .*\(learner\)/, at);
  at = out.length;
  child.stdin!.write('list\n');
  await waitFor(/ m2 .* learner\n/, at);
  at = out.length;
  child.stdin!.write('remove m2\n');
  await waitFor(/removed m2; endpoints: 127\.0\.0\.1:\d+\n/, at);
  at = out.length;
  child.stdin!.write('list\n');
  await waitFor(/ m1 /, at);
  assert.not.match(out.slice(at), / m2 /);
  child.kill('SIGTERM');
  assert.is(await awaitWithTimer(exited, 30_000, 'launcher exit'), 0);
});

test('a bad argument exits 2 with usage', async () => {
  const child = track(spawn(process.execPath, [launcher, '--size', 'x'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const code = await awaitWithTimer(
    new Promise<number | null>((r) => child.once('exit', (c) => r(c))),
    20_000,
    'launcher with a bad argument',
  );
  assert.is(code, 2);
  assert.match(err, /usage: cluster/);
});

test.run();
