// Tests of the oracle harness itself: the normalizer rewrites only what it lists, the comparison catches
// real differences, a divergent member is caught live, started processes die with the test process, and a
// missing oracle is a skip (or a failure under TETCD_REQUIRE_ORACLE=1).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runningChildren, tempDir } from '../helpers/cleanup.js';
import { startEtcd, type Member } from '../helpers/member.js';
import { Normalizer } from '../helpers/normalize.js';
import { oracleGate } from '../helpers/oracle.js';
import { compareResults, prepareSide, runStep } from '../helpers/scenario.js';

const helpersDir = new URL('../helpers/', import.meta.url);

test('normalizer: ports, IDs, raft term/index, sizes and timings become placeholders', () => {
  const n = new Normalizer({ clientPort: 23456, peerPort: 23457 });
  n.learnId(0x2c902495a3d372c7n, '<MEMBER_ID>');
  n.learnId(14930912536174976129n, '<CLUSTER_ID>');
  const lease = n.learnLease('072c7a2131209250');
  assert.is(lease, '<LEASE_1>');
  assert.is(
    n.normalize('127.0.0.1:23456, 2c902495a3d372c7, 3.4.23, 20 kB, true, false, 2, 8, 8, \n'),
    '127.0.0.1:<CLIENT_PORT>, <MEMBER_ID>, 3.4.23, <DB_SIZE>, true, false, <RAFT_TERM>, <RAFT_INDEX>, <RAFT_APPLIED_INDEX>, \n',
  );
  assert.is(
    n.normalize('{"header":{"cluster_id":14930912536174976129,"member_id":3211106759432434375,"revision":5,"raft_term":2}}'),
    '{"header":{"cluster_id":<CLUSTER_ID>,"member_id":<MEMBER_ID>,"revision":5,"raft_term":<RAFT_TERM>}}',
  );
  assert.is(
    n.normalize('lease 072c7a2131209250 granted with TTL(60s), remaining(59s)'),
    'lease <LEASE_1> granted with TTL(60s), remaining(<TTL>)',
  );
  assert.is(
    n.normalize('lease 072c7a2131209250 granted with TTL(60s), remaining(59s), attached keys([k3 k2 a])'),
    'lease <LEASE_1> granted with TTL(60s), remaining(<TTL>), attached keys([a k2 k3])',
    'attached keys come in Go map order from etcd: sorted',
  );
  assert.is(n.normalize('"lease":516922340217492048'), '"lease":<LEASE_1>', 'decimal form of the same lease');
  assert.is(n.normalize('http://127.0.0.1:23457 took = 1.5ms'), 'http://127.0.0.1:<PEER_PORT> took = <DURATION>');
  // Unknown IDs get stable ordinals; zero means "no lease" and stays.
  assert.is(n.normalize('"leader":77,"ID":88,"lease":0,"leader":77'), '"leader":<ID_1>,"ID":<ID_2>,"lease":0,"leader":<ID_1>');
});

test('normalizer: revisions, values, versions, counts and errors are left alone', () => {
  const n = new Normalizer({ clientPort: 1111, peerPort: 2222 });
  const text =
    '{"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":7,"version":3,"value":"YmFy"}],"more":true,"count":12}\nError: etcdserver: mvcc: required revision has been compacted\n';
  assert.is(n.normalize(text), text);
});

test('compareResults: equal outputs pass; a revision, exit code or error text difference is reported', () => {
  const base = { code: 0, stdout: '{"revision":5}\n', stderr: '' };
  assert.is(compareResults('x', base, { ...base }), null);
  assert.match(compareResults('x', base, { ...base, stdout: '{"revision":6}\n' }) ?? '', /stdout line 1/);
  assert.match(compareResults('x', base, { ...base, code: 1 }) ?? '', /exit code: etcd 0, target 1/);
  const e1 = { code: 1, stdout: '', stderr: '{"level":"warn","ts":"a"}\nError: etcdserver: key is not provided\n' };
  const e2 = { code: 1, stdout: '', stderr: '{"level":"warn","ts":"b"}\nError: etcdserver: key is not provided\n' };
  assert.is(compareResults('x', e1, e2), null, 'client retry logs are not part of the contract');
  assert.match(compareResults('x', e1, { ...e2, stderr: 'Error: etcdserver: key not found\n' }) ?? '', /stderr line 1/);
});

/** Runs a tiny ESM script in a child node; returns its status and output. */
function runScript(name: string, body: string, env: NodeJS.ProcessEnv): { status: number | null; out: string } {
  const file = join(tempDir('tetcd-harness-'), name);
  writeFileSync(file, body);
  const r = spawnSync(process.execPath, [file], { env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('a missing oracle skips with the apt-get line, or fails under TETCD_REQUIRE_ORACLE=1', () => {
  const script = `import { test } from 'uvu';
import { oracleGate } from ${JSON.stringify(new URL('oracle.js', helpersDir).href)};
const t = oracleGate(test);
t('needs etcd', () => {});
test.run();
`;
  const uvuDir = join(process.cwd(), 'node_modules');
  const env = { PATH: '/nonexistent', NODE_PATH: uvuDir, HOME: process.env.HOME ?? '/tmp' };
  // The script lives in a temp dir, so resolve uvu through a symlinked node_modules next to it.
  const skipped = runScript(
    'gate.mjs',
    script.replace("from 'uvu'", `from ${JSON.stringify(pathToFileURL(join(uvuDir, 'uvu', 'dist', 'index.mjs')).href)}`),
    env,
  );
  assert.is(skipped.status, 0, skipped.out);
  assert.match(skipped.out, /apt-get install -y etcd-server etcd-client/);
  assert.match(skipped.out, /Skipped:\s+1/);
  const required = runScript(
    'gate.mjs',
    script.replace("from 'uvu'", `from ${JSON.stringify(pathToFileURL(join(uvuDir, 'uvu', 'dist', 'index.mjs')).href)}`),
    { ...env, TETCD_REQUIRE_ORACLE: '1' },
  );
  assert.is.not(required.status, 0, required.out);
  assert.match(required.out, /etcd-server etcd-client/);
});

const t = oracleGate(test);

t('a member started by a test dies with the test process, even when the test crashes', async () => {
  const script = `import { startEtcd } from ${JSON.stringify(new URL('member.js', helpersDir).href)};
const m = await startEtcd({ name: 'orphan' });
console.log('PID=' + m.proc.pid);
throw new Error('test crashed on purpose');
`;
  const r = runScript('crash.mjs', script, process.env);
  assert.is.not(r.status, 0);
  const pid = Number(/PID=(\d+)/.exec(r.out)?.[1]);
  assert.ok(pid > 0, r.out);
  // SIGKILL is delivered at once, but the orphan is reaped asynchronously: until then it is a zombie.
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && isLive(pid)) await new Promise((res) => setTimeout(res, 50));
  assert.not.ok(isLive(pid), `etcd ${pid} outlived the crashed test process`);
});

/** Whether `pid` is a running (not zombie) process. */
function isLive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

let a: Member;
let b: Member;

t('live: two etcds with the same history compare equal; a divergent one is caught', async () => {
  [a, b] = (await Promise.all([startEtcd({ name: 'm1' }), startEtcd({ name: 'm1' })])) as [Member, Member];
  const sa = await prepareSide(a);
  const sb = await prepareSide(b);
  for (const step of [{ args: ['put', 'k', 'v'] }, { args: ['get', 'k', '-w', 'json'] }, { args: ['member', 'list', '-w', 'json'] }]) {
    const diff = compareResults(step.args.join(' '), await runStep(sa, step), await runStep(sb, step));
    assert.is(diff, null, diff ?? '');
  }
  await runStep(sb, { args: ['put', 'extra', 'write'] });
  const step = { args: ['get', 'k', '-w', 'json'] };
  const diff = compareResults('get k -w json', await runStep(sa, step), await runStep(sb, step));
  assert.ok(diff !== null, 'a member one revision ahead must not compare equal');
  assert.match(diff, /\\"revision\\":2/);
  assert.match(diff, /\\"revision\\":3/);
  await Promise.all([a.stop(), b.stop()]);
  assert.is(runningChildren(), 0);
});

test.run();
