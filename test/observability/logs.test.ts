// Logs as etcd writes them with --logger zap: JSON lines {"level","ts","msg",...} with etcd's messages for
// start, election, publishing and shutdown (checked against etcd 3.4's own log of the same run), written to
// every --log-outputs target, filtered by --log-level; no secret from a request reaches them; and a stalled
// output never blocks the event loop (its buffer is bounded: lines past it are dropped and counted).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startMember, type Member } from '../helpers/member.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { oracleGate } from '../helpers/oracle.js';
import { tempDir, track } from '../helpers/cleanup.js';
import { connectRaw, frame, rawRequest } from '../api/helpers.js';
import { encodePutRequest } from '../../src/proto/rpc.js';

interface Line {
  level: string;
  ts: string;
  msg: string;
  [field: string]: unknown;
}

const LEVELS = new Set(['debug', 'info', 'warn', 'error', 'dpanic', 'panic', 'fatal']);

/** Every line of a log file, each checked to be one zap-shaped JSON object. */
function readLog(path: string): Line[] {
  const text = readFileSync(path, 'utf8');
  assert.ok(text.endsWith('\n'), `${path} ends with a whole line`);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      // zap's key order: level, ts, (caller,) msg, then the fields.
      assert.match(l, /^\{"level":"[a-z]+","ts":"[^"]+",("caller":"[^"]+",)?"msg":/, `zap's key order: ${l}`);
      const o = JSON.parse(l) as Line;
      assert.ok(LEVELS.has(o.level), `level of ${l}`);
      assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, `ts of ${l}`);
      assert.type(o.msg, 'string');
      return o;
    });
}

/** etcd's lifecycle messages runbooks look for (regular expressions over msg). */
const LIFECYCLE: readonly RegExp[] = [
  /^starting an etcd server$/,
  /^starting local member$/,
  /^[0-9a-f]+ became leader at term \d+$/,
  /^raft\.node: [0-9a-f]+ elected leader [0-9a-f]+ at term \d+$/,
  /^published local member to cluster through raft$/,
  /^set initial cluster version$/,
  /^enabled capabilities for version$/,
  /^serving client traffic insecurely; this is strongly discouraged!$/,
  /^finished scheduled compaction$/,
  /^received signal; shutting down$/,
  /^closing etcd server$/,
  /^closed etcd server$/,
];

function find(lines: Line[], re: RegExp): Line | undefined {
  return lines.find((l) => re.test(l.msg));
}

const oracle = oracleGate(test);

oracle("start, election, publishing and shutdown log etcd's messages, in the file and on stderr", async () => {
  const dir = tempDir('tetcd-logs-');
  const file = (kind: string) => join(dir, kind, 'member.log');
  const run = async (kind: 'etcd' | 'tetcd'): Promise<[Line[], Member]> => {
    const outputs = kind === 'etcd' ? [file(kind)] : ['stderr', file(kind)];
    const args = ['--logger', 'zap', '--log-outputs', outputs.join(',')];
    if (kind === 'etcd') await import('node:fs').then((fs) => fs.mkdirSync(join(dir, kind), { recursive: true }));
    const m = await startMember(kind, { extraArgs: args });
    assert.match((await etcdctl(m.endpoint, ['put', 'k', 'v'])).stdout, /OK/);
    assert.match((await etcdctl(m.endpoint, ['compact', '2'])).stdout, /compacted revision 2/);
    // The compaction's physical part finishes in the background.
    for (let i = 0; i < 50 && !readFileSync(file(kind), 'utf8').includes('finished scheduled compaction'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await m.stop();
    return [readLog(file(kind)), m];
  };
  const [[etcdLines], [tetcdLines, t]] = await Promise.all([run('etcd'), run('tetcd')]);
  for (const re of LIFECYCLE) {
    assert.ok(find(etcdLines, re), `etcd 3.4 logs ${re} (the list is etcd's)`);
    assert.ok(find(tetcdLines, re), `tetcd logs ${re}`);
  }
  // The fields runbooks read, as etcd names them.
  const serving = find(tetcdLines, /^serving client traffic insecurely/)!;
  assert.is(serving.address, t.endpoint);
  const published = find(tetcdLines, /^published local member/)!;
  assert.match(String(published['local-member-id']), /^[0-9a-f]+$/);
  assert.match(String(published['cluster-id']), /^[0-9a-f]+$/);
  assert.is(find(tetcdLines, /^set initial cluster version$/)!['cluster-version'], '3.4');
  assert.ok(find(tetcdLines, /^ready to serve client requests$/), 'ready to serve client requests');
  // stderr got the same lines as the file.
  assert.ok(t.logs().includes('"msg":"closed etcd server"'), 'stderr carries the lines too');
  assert.is(find(tetcdLines, /^finished scheduled compaction$/)!['compact-revision'], 2);
  const at = (re: RegExp) => tetcdLines.findIndex((l) => re.test(l.msg));
  assert.ok(at(/^closed etcd server$/) > at(/^starting an etcd server$/), 'closed after starting');
});

oracle('an alarm raised and disarmed is logged as etcd logs it', async () => {
  const run = async (kind: 'etcd' | 'tetcd'): Promise<Line[]> => {
    const m = await startMember(kind, { extraArgs: ['--logger', 'zap', '--quota-backend-bytes', '120000'] });
    try {
      const big = 'x'.repeat(30_000);
      for (let i = 0; i < 10; i++) if ((await etcdctl(m.endpoint, ['put', `big${i}`, big])).code !== 0) break;
      let list = '';
      for (let i = 0; i < 50 && !list.includes('NOSPACE'); i++) {
        list = (await etcdctl(m.endpoint, ['alarm', 'list'])).stdout;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.match(list, /NOSPACE/, `${kind} raised NOSPACE`);
      await etcdctl(m.endpoint, ['alarm', 'disarm']);
    } finally {
      await m.stop();
    }
    return m
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
  };
  const [e, t] = await Promise.all([run('etcd'), run('tetcd')]);
  for (const [kind, lines] of [
    ['etcd', e],
    ['tetcd', t],
  ] as const) {
    const raised = find(lines, /^alarm raised$/);
    assert.ok(raised, `${kind} logs "alarm raised"`);
    assert.is(raised.level, 'warn');
    assert.is(raised.alarm, 'NOSPACE');
    assert.match(String(raised.from), /^[0-9a-f]+$/);
    assert.ok(find(lines, /^alarm disarmed$/), `${kind} logs "alarm disarmed"`);
  }
});

test('--log-level warn leaves info lines out', async () => {
  const path = join(tempDir('tetcd-logs-'), 'warn.log');
  // --max-wals is parsed but not implemented: the member warns about it.
  const m = await startMember('tetcd', { extraArgs: ['--logger', 'zap', '--log-level', 'warn', '--log-outputs', path, '--max-wals', '3'] });
  await etcdctl(m.endpoint, ['put', 'k', 'v']);
  await m.stop();
  const lines = readLog(path);
  assert.ok(
    lines.some((l) => l.level === 'warn' && l.flag === 'max-wals'),
    'the warning is there',
  );
  assert.equal(
    lines.filter((l) => l.level === 'info' || l.level === 'debug').map((l) => l.msg),
    [],
  );
  assert.not.ok(m.logs().includes('"level":"info"'), 'nothing at info on stderr either');
});

test('no secret of a request reaches the logs, even at debug level', async () => {
  const path = join(tempDir('tetcd-logs-'), 'debug.log');
  const m = await startMember('tetcd', { extraArgs: ['--logger', 'zap', '--log-level', 'debug', '--log-outputs', path] });
  const secret = 'S3cr3t-Marker';
  // A password (etcdctl authenticates first), a token in the request metadata, a key and a value.
  await etcdctl(m.endpoint, ['--user', `root:${secret}-password`, 'put', 'k', 'v']);
  const session = await connectRaw(m.clientPort);
  try {
    const body = encodePutRequest({ key: Buffer.from(`${secret}-key`), value: Buffer.from(`${secret}-value`) });
    const put = await rawRequest(session, { path: '/etcdserverpb.KV/Put', chunks: [frame(body)] });
    assert.is(put.grpcStatus, 0);
    // Tokens that are not valid: refused (UNAUTHENTICATED, as etcd refuses an unknown token even with auth off).
    const r = await rawRequest(session, {
      path: '/etcdserverpb.KV/Put',
      headers: { token: `${secret}-token`, authorization: `${secret}-authorization` },
      chunks: [frame(body)],
    });
    assert.is(r.grpcStatus, 16);
    // A malformed request too: what is logged about it must not carry its bytes.
    await rawRequest(session, {
      path: '/etcdserverpb.KV/Put',
      headers: { token: `${secret}-token2` },
      chunks: [frame(Buffer.from(`\xff${secret}`))],
    });
  } finally {
    session.close();
  }
  await m.stop();
  const text = readFileSync(path, 'utf8');
  assert.ok(text.includes('"level":"debug"'), 'debug lines were written');
  assert.not.ok(text.includes(secret), 'no marker in the log file');
  assert.not.ok(m.logs().includes(secret), 'no marker on stderr');
});

/** The child side of the stalled-output test: logs into a pipe nobody reads, then reports on stderr. */
async function stalledChild(): Promise<void> {
  const { newLogger, logDrops } = await import('../../src/log.js');
  const log = newLogger('info', { outputs: ['stdout'], bufferBytesMax: 64 * 1024 });
  const line = 'x'.repeat(200);
  const t0 = performance.now();
  for (let i = 0; i < 20_000; i++) log.info('apply request took too long', { i, line });
  const loopMs = performance.now() - t0;
  // The event loop turns while the output is stalled.
  const tick = performance.now();
  await new Promise((r) => setTimeout(r, 10));
  const tickMs = performance.now() - tick;
  process.stderr.write(`${JSON.stringify({ loopMs, tickMs, drops: logDrops.lines, rss: process.memoryUsage().rss })}\n`);
}

if (process.env.TETCD_LOG_STALL_CHILD === '1') {
  await stalledChild();
  // The parent kills this process: exiting would try to flush into the stalled pipe.
  await new Promise(() => {});
} else {
  test('a stalled output neither blocks logging nor grows without bound: lines past the buffer are dropped', async () => {
    const child = track(
      spawn(process.execPath, [fileURLToPath(import.meta.url)], {
        env: { ...process.env, TETCD_LOG_STALL_CHILD: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    // Nobody reads stdout: the pipe fills (64 KiB) and stays full.
    child.stdout!.pause();
    const report = await new Promise<string>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`no report within 20 s (logging blocked?): ${err}`)), 20_000);
      child.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        if (err.includes('\n')) {
          clearTimeout(timer);
          resolve(err);
        }
      });
    });
    child.kill('SIGKILL');
    const r = JSON.parse(report.split('\n')[0]) as { loopMs: number; tickMs: number; drops: number; rss: number };
    // 20,000 lines of ~260 bytes are 5 MB: far past the 64 KiB pipe and the 64 KiB buffer.
    assert.ok(r.drops > 10_000, `lines were dropped (${r.drops})`);
    assert.ok(r.tickMs < 5_000, `the event loop kept turning (${r.tickMs} ms for a 10 ms timer)`);
  });
}

test.run();
