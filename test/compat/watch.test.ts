// The oracle test for Watch: the same watchers (real `etcdctl watch` processes: one key, a prefix with
// prev kv, a range, JSON output, interactive with progress, history from a past revision, a compacted
// start revision) see the same writes against a fresh etcd 3.4 and a fresh tetcd; their outputs must match.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { awaitWithTimer, runningChildren, track } from '../helpers/cleanup.js';
import { startMember, type Member } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { etcdctl } from '../helpers/etcdctl.js';

interface Watching {
  label: string;
  child: ChildProcess;
  out: string;
  exited: Promise<number | null>;
}

/** A background `etcdctl watch ...`; stdin lines (for -i) are written and kept open. */
function watch(endpoint: string, label: string, args: string[], stdin?: string): Watching {
  const child = track(
    spawn('etcdctl', [`--endpoints=${endpoint}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3' } }),
  );
  const w: Watching = { label, child, out: '', exited: new Promise((resolve) => child.once('close', (code) => resolve(code))) };
  child.stdout!.on('data', (c: Buffer) => {
    w.out += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    w.out += c.toString();
  });
  child.stdin!.on('error', () => {});
  if (stdin !== undefined) child.stdin!.write(stdin);
  return w;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** IDs, terms and raft indexes differ between two fresh clusters; everything else must not. */
function normalize(s: string): string {
  return s
    .replace(/"cluster_id":\d+/g, '"cluster_id":X')
    .replace(/"member_id":\d+/g, '"member_id":X')
    .replace(/"raft_term":\d+/g, '"raft_term":X');
}

const txnInput = 'put foo a\nput foob b\n';

/** Runs the whole scenario against one member; returns each watcher's output by label. */
async function scenario(m: Member): Promise<Map<string, string>> {
  const e = m.endpoint;
  const live = [
    watch(e, 'one key', ['watch', 'foo']),
    watch(e, 'prefix with prev kv', ['watch', '--prefix', 'foo', '--prev-kv']),
    watch(e, 'range [foo, fop)', ['watch', 'foo', 'fop']),
    watch(e, 'json', ['watch', 'foo', '-w', 'json']),
    watch(e, 'interactive with progress', ['watch', '-i'], 'watch t1\nprogress\n'),
  ];
  const started: Watching[] = [...live];
  try {
    return await writesAndHistory(e, live, started);
  } finally {
    for (const w of started) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  }
}

async function writesAndHistory(e: string, live: Watching[], started: Watching[]): Promise<Map<string, string>> {
  await sleep(700);
  const ctl = async (args: string[], stdin?: string): Promise<void> => {
    const r = await etcdctl(e, args, { stdin });
    assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  };
  await ctl(['put', 'foo', '1']); // rev 2
  await ctl(['put', 'foo2', '2']); // rev 3
  await ctl(['put', 'fop', '3']); // rev 4
  await ctl(['txn', '-i'], `\n${txnInput}\n\n`); // rev 5: two puts, one response
  await ctl(['del', 'foo', '--prefix']); // rev 6: three deletes, one response
  await ctl(['put', 't1', 'x']); // rev 7
  await ctl(['put', 'foo', 'again']); // rev 8
  const history = [
    watch(e, 'history of one key from rev 2', ['watch', 'foo', '--rev', '2']),
    watch(e, 'history of a prefix from rev 3 with prev kv', ['watch', '--prefix', 'foo', '--rev', '3', '--prev-kv']),
    watch(e, 'history from a future revision', ['watch', 'foo', '--rev', '10']),
  ];
  started.push(...history);
  await sleep(700);
  await ctl(['compaction', '4']);
  const compacted = watch(e, 'a compacted start revision', ['watch', 'foo', '--rev', '2']);
  started.push(compacted);
  await ctl(['put', 'foo', 'last']); // rev 9
  await ctl(['put', 'foo', 'future']); // rev 10
  await sleep(1000);
  const all = [...live, ...history, compacted];
  for (const w of all) if (w.child.exitCode === null) w.child.kill('SIGTERM');
  await awaitWithTimer(Promise.all(all.map((w) => w.exited)), 10_000, 'watchers exiting');
  return new Map(all.map((w) => [w.label, normalize(w.out)]));
}

const target = compatTarget();
const t = oracleGate(test);
const members: Member[] = [];
let oracleOut: Map<string, string>;
let targetOut: Map<string, string>;

t('the same watchers see the same writes on etcd and ' + target, async () => {
  const [a, b] = await Promise.all([startMember('etcd', { name: 'm1' }), startMember(target, { name: 'm1' })]);
  members.push(a, b);
  [oracleOut, targetOut] = await Promise.all([scenario(a), scenario(b)]);
});

for (const label of [
  'one key',
  'prefix with prev kv',
  'range [foo, fop)',
  'json',
  'interactive with progress',
  'history of one key from rev 2',
  'history of a prefix from rev 3 with prev kv',
  'history from a future revision',
  'a compacted start revision',
]) {
  t(`watch: ${label}`, () => {
    assert.ok(oracleOut && targetOut, 'the scenario did not run');
    const want = oracleOut.get(label)!;
    assert.ok(want.length > 0, 'etcd printed something');
    if (process.env.TETCD_COMPAT_VERBOSE === '1') process.stdout.write(`\n# ${label}\n${want}`);
    assert.fixture(targetOut.get(label)!, want);
  });
}

t('stop both members', async () => {
  await Promise.all(members.map((m) => m.stop()));
  assert.is(runningChildren(), 0);
});

test.run();
