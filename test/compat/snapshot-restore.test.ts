// Migration from etcd: data written to real etcd 3.4 (keys, overwrites, deletes, history, a compaction, a
// lease with keys, users and roles with auth enabled), saved with `etcdctl snapshot save`, then restored twice:
// by real `etcdctl snapshot restore` into an etcd member (the oracle) and by `tetcd snapshot restore` into a
// tetcd member. Both serve the same keys at every revision since the compaction, the same leases (TTL reset,
// as etcd re-grants them on start), the same users and roles. Then a 3-member tetcd restore forms a cluster.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { oracleGate } from '../helpers/oracle.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { startMember, tetcdEntry, type Member, type MemberKind } from '../helpers/member.js';
import { awaitWithTimer, tempDir, track } from '../helpers/cleanup.js';
import { Normalizer } from '../helpers/normalize.js';
import { freePort } from '../../tools/lib/ports.js';

const ROOT = ['--user', 'root:rootpw'];

/** A command's exit code and output. */
function run(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3' } }));
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
  return awaitWithTimer(done, 60_000, `${cmd} ${args.join(' ')}`);
}

function tetcdSnapshot(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [tetcdEntry(), 'snapshot', ...args]);
}

async function ctl(m: Member, args: readonly string[]): Promise<string> {
  const r = await etcdctl(m.endpoint, [...ROOT, ...args]);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} on ${m.kind}: ${r.stderr}`);
  return r.stdout;
}

interface Written {
  snapshot: string;
  compactRev: number;
  lastRev: number;
  leaseHex: string;
}

/** The workload on a fresh member of `source`, then `etcdctl snapshot save` from it. */
async function writeTo(source: MemberKind, dir: string): Promise<Written> {
  const etcd = await startMember(source);
  try {
    const c = (args: string[]) => ctl(etcd, args);
    for (let i = 0; i < 8; i++) await etcdctl(etcd.endpoint, ['put', `k${i}`, `v${i}`]);
    await etcdctl(etcd.endpoint, ['put', 'k1', 'v1-second']);
    await etcdctl(etcd.endpoint, ['del', 'k2']);
    const grant = await etcdctl(etcd.endpoint, ['lease', 'grant', '600']);
    const leaseHex = /lease ([0-9a-f]+) granted/.exec(grant.stdout)![1]!;
    await etcdctl(etcd.endpoint, ['put', '--lease', leaseHex, 'leased-a', 'x']);
    await etcdctl(etcd.endpoint, ['put', '--lease', leaseHex, 'leased-b', 'y']);
    await etcdctl(etcd.endpoint, ['compact', '6']);
    await etcdctl(etcd.endpoint, ['put', 'k3', 'v3-after-compaction']);
    await etcdctl(etcd.endpoint, ['del', 'k4']);
    await etcdctl(etcd.endpoint, ['put', 'k9', 'x'.repeat(6000)]);
    for (const args of [
      ['user', 'add', 'root:rootpw'],
      ['role', 'add', 'reader'],
      ['role', 'grant-permission', 'reader', 'read', 'k', 'l'],
      ['user', 'add', 'alice:apw'],
      ['user', 'grant-role', 'alice', 'reader'],
      ['auth', 'enable'],
    ]) {
      const r = await etcdctl(etcd.endpoint, args);
      assert.is(r.code, 0, r.stderr);
    }
    const lastRev = JSON.parse(await c(['get', 'k9', '-w', 'json'])).header.revision as number;
    const snapshot = path.join(dir, `${source}.snap`);
    const saved = await etcdctl(etcd.endpoint, [...ROOT, 'snapshot', 'save', snapshot]);
    assert.is(saved.code, 0, saved.stderr);
    return { snapshot, compactRev: 6, lastRev, leaseHex };
  } finally {
    await etcd.stop();
  }
}

/** Restores `snapshot` for one member (etcd's or tetcd's tool) and starts it on the restored data dir. */
async function restoreAndStart(kind: MemberKind, w: Written, dir: string): Promise<Member> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const peer = `http://127.0.0.1:${peerPort}`;
  const dataDir = path.join(dir, `${kind}.etcd`);
  const args = ['restore', w.snapshot, '--name', 'r1', '--data-dir', dataDir, '--initial-cluster', `r1=${peer}`];
  args.push('--initial-advertise-peer-urls', peer, '--initial-cluster-token', 'restored');
  const r = kind === 'etcd' ? await run('etcdctl', ['snapshot', ...args]) : await tetcdSnapshot(args);
  assert.is(r.code, 0, r.stderr);
  return startMember(kind, { name: 'r1', dataDir, clientPort, peerPort, initialCluster: `r1=${peer}`, initialClusterToken: 'restored' });
}

/** Everything a client sees of the restored data, normalized for comparison. */
async function observe(m: Member, w: Written): Promise<string[]> {
  const n = new Normalizer({ clientPort: m.clientPort, peerPort: m.peerPort });
  const out: string[] = [];
  const see = async (args: string[]) => {
    const r = await etcdctl(m.endpoint, [...ROOT, ...args]);
    out.push(`$ ${args.join(' ')}\n${n.normalize(r.stdout + r.stderr.replace(/^\{"level".*\n/gm, ''))}exit ${r.code}`);
  };
  await see(['get', '', '--prefix', '-w', 'json']);
  for (let rev = w.compactRev - 1; rev <= w.lastRev + 1; rev++) await see(['get', '', '--prefix', `--rev=${rev}`, '-w', 'json']);
  await see(['lease', 'list']);
  await see(['lease', 'timetolive', w.leaseHex, '--keys']);
  await see(['user', 'list']);
  await see(['user', 'get', 'alice']);
  await see(['role', 'get', 'reader']);
  await see(['member', 'list']);
  await see(['member', 'list', '-w', 'json']);
  const alice = ['--user', 'alice:apw'];
  for (const args of [
    ['get', 'k1'],
    ['put', 'k1', 'denied'],
  ]) {
    const r = await etcdctl(m.endpoint, [...alice, ...args]);
    out.push(`$ alice ${args.join(' ')}\n${r.stdout}${r.stderr.replace(/^\{"level".*\n/gm, '')}exit ${r.code}`);
  }
  // The store goes on from the restored revision.
  await see(['put', 'new', 'after-restore', '-w', 'json']);
  return out;
}

/** The lease's remaining TTL: reset to about its full 600 s when the restored member starts. */
async function remainingTtl(m: Member, leaseHex: string): Promise<number> {
  const r = await ctl(m, ['lease', 'timetolive', leaseHex]);
  return Number(/remaining\((\d+)s\)/.exec(r)![1]);
}

const t = oracleGate(test);

/**
 * Where the snapshots come from: etcd 3.4 (migration), and tetcd's own Snapshot RPC, which writes the same bbolt
 * format (then etcd restoring tetcd's snapshot is the oracle, so tetcd's file is checked by etcd as well).
 */
const SOURCES: readonly MemberKind[] = ['etcd', 'tetcd'];

for (const source of SOURCES) {
  t(`a snapshot of ${source} restored by tetcd serves what etcd restored from it serves`, async () => {
    const dir = tempDir('tetcd-migrate-');
    const w = await writeTo(source, dir);
    // status reads the same file as etcdctl does
    for (const format of ['simple', 'json', 'table']) {
      const theirs = await run('etcdctl', ['snapshot', 'status', w.snapshot, '-w', format]);
      const ours = await tetcdSnapshot(['status', w.snapshot, '-w', format]);
      assert.is(ours.stdout, theirs.stdout, format);
      assert.is(ours.code, 0, ours.stderr);
    }
    const etcd = await restoreAndStart('etcd', w, dir);
    let want: string[];
    try {
      want = await observe(etcd, w);
    } finally {
      await etcd.stop();
    }
    const tetcd = await restoreAndStart('tetcd', w, dir);
    try {
      const got = await observe(tetcd, w);
      if (process.env.TETCD_DEBUG_RESTORE) console.log(got.join('\n'));
      assert.is(got.length, want.length);
      for (let i = 0; i < want.length; i++) assert.fixture(got[i]!, want[i]!);
      assert.ok((await remainingTtl(tetcd, w.leaseHex)) >= 590);
    } finally {
      await tetcd.stop();
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

t('a 3-member tetcd restore: each member restores with its own name, the cluster starts and agrees', async () => {
  const dir = tempDir('tetcd-migrate3-');
  const w = await writeTo('etcd', dir);
  const names = ['a', 'b', 'c'];
  const ports: Array<{ client: number; peer: number }> = [];
  for (const _ of names) ports.push({ client: await freePort(), peer: await freePort() });
  const cluster = names.map((n, i) => `${n}=http://127.0.0.1:${ports[i]!.peer}`).join(',');
  for (let i = 0; i < names.length; i++) {
    const r = await tetcdSnapshot([
      'restore',
      w.snapshot,
      '--name',
      names[i]!,
      '--data-dir',
      path.join(dir, names[i]!),
      '--initial-cluster',
      cluster,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${ports[i]!.peer}`,
    ]);
    assert.is(r.code, 0, r.stderr);
  }
  const members = await Promise.all(
    names.map((name, i) =>
      startMember('tetcd', {
        name,
        dataDir: path.join(dir, name),
        clientPort: ports[i]!.client,
        peerPort: ports[i]!.peer,
        initialCluster: cluster,
        waitReady: false,
      }),
    ),
  );
  try {
    await Promise.all(members.map((m) => m.waitReady(30_000)));
    const put = JSON.parse(await ctl(members[0]!, ['put', 'after', 'restore', '-w', 'json']));
    assert.is(put.header.revision, w.lastRev + 1);
    const list = JSON.parse(await ctl(members[1]!, ['member', 'list', '-w', 'json']));
    assert.equal(list.members.map((m: { name: string }) => m.name).sort(), names);
    // Every member serves the same keys at the same revisions (a linearizable read goes through Raft).
    const dumps = [];
    for (const m of members) {
      const r = JSON.parse(await ctl(m, ['get', '', '--prefix', `--rev=${w.lastRev}`, '-w', 'json']));
      dumps.push(JSON.stringify(r.kvs));
      const after = JSON.parse(await ctl(m, ['get', 'after', '-w', 'json']));
      assert.is(after.kvs[0].mod_revision, w.lastRev + 1);
    }
    assert.is(dumps[1], dumps[0]);
    assert.is(dumps[2], dumps[0]);
    assert.is(JSON.parse(dumps[0]!).length, 9); // k0..k9 less k2 and k4, leased-a, leased-b
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
