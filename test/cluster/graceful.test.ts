// Graceful behaviour on a bad day. SIGTERM to the leader of a 3-member cluster with puts in flight: it hands
// leadership over before it goes (a new leader is there when its process ends, not an election timeout later),
// exits 0, and nothing acknowledged is lost. A read-only data dir is refused as etcd 3.4 refuses it (same text),
// and the data in it is there once the disk is writable again. A data dir of a newer tetcd, or of etcd itself, is
// refused with what to do, and touched by nothing. A full disk under the backend is named as such.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { KvClient, prefixEnd } from '../helpers/grpc-kv.js';
import { type Member, startCluster, startMember, tetcdEntry } from '../helpers/member.js';
import { tetcdNodeFlags } from '../../tools/cluster.js';
import { type PutRecord, startPutLoops } from '../helpers/put_loops.js';
import { mountTmpfs, tmpfsGate, unmountTmpfs } from '../helpers/tmpfs.js';

/** Long enough that an election after a silent leader would come far later than a handed-over leadership. */
const ELECTION_MS = 4000;
const EXIT_WAIT_MS = 15_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The member ID and the leader a member reports (decimal strings: uint64s do not fit a JS number). */
async function leaderSeenBy(m: Member): Promise<{ self: string; leader: string } | undefined> {
  const r = await etcdctl(m.endpoint, ['endpoint', 'status', '-w', 'json', '--command-timeout=1s']);
  const self = /"member_id":(\d+)/.exec(r.stdout)?.[1];
  const leader = /"leader":(\d+)/.exec(r.stdout)?.[1];
  return r.code === 0 && self && leader && leader !== '0' ? { self, leader } : undefined;
}

test('SIGTERM to the leader with puts in flight: leadership handed over first, exit 0, nothing acknowledged lost', async () => {
  const members = await startCluster('tetcd', ['g1', 'g2', 'g3'], {
    extraArgs: ['--election-timeout', String(ELECTION_MS), '--heartbeat-interval', '100'],
  });
  const clients = members.map((m) => new KvClient(m.endpoint));
  try {
    let leaderId: string | undefined;
    for (let i = 0; i < 50 && leaderId === undefined; i++) {
      leaderId = (await leaderSeenBy(members[0]!))?.leader;
      if (leaderId === undefined) await sleep(200);
    }
    assert.ok(leaderId, 'no leader');
    const ids = await Promise.all(members.map((m) => leaderSeenBy(m)));
    const leader = members[ids.findIndex((s) => s?.self === leaderId)]!;
    const others = members.filter((m) => m !== leader);

    const records: PutRecord[] = [];
    const loops = startPutLoops(clients, 6, (w, seq) => `graceful/${w}/${seq}`, records);
    await sleep(1000);
    const sentAt = Date.now();
    leader.proc!.kill('SIGTERM');
    assert.ok(await leader.exitsWithin(EXIT_WAIT_MS), `the leader did not exit within ${EXIT_WAIT_MS} ms:\n${leader.logs()}`);
    const exitedAt = Date.now();
    assert.is(leader.proc!.exitCode, 0, `exit status:\n${leader.logs()}`);
    assert.match(leader.logs(), /leader is stopping; transferring leadership/);

    // A new leader among the others, well before the election timeout a vanished leader would cost.
    let newLeader: string | undefined;
    while (newLeader === undefined && Date.now() - exitedAt < 2 * ELECTION_MS) {
      const seen = await Promise.all(others.map((m) => leaderSeenBy(m)));
      if (seen.every((s) => s !== undefined && s.leader === seen[0]!.leader && s.leader !== leaderId)) newLeader = seen[0]!.leader;
      else await sleep(50);
    }
    const tookMs = Date.now() - exitedAt;
    assert.ok(newLeader, `no new leader within ${2 * ELECTION_MS} ms of the exit`);
    assert.ok(
      tookMs < ELECTION_MS / 2,
      `a new leader ${tookMs} ms after the old one exited (${Date.now() - sentAt} ms after SIGTERM): leadership was not handed over`,
    );

    // Puts to the remaining members go on under the new leader.
    await sleep(500);
    loops.stop();
    await loops.done;
    assert.not.ok(
      records.some((r) => r.outcome === 'pending'),
      'a put never got an answer',
    );
    const acked = records.filter((r) => r.outcome === 'acked');
    assert.ok(acked.length > 20, `only ${acked.length} puts acknowledged`);
    for (const c of others.map((m) => clients[members.indexOf(m)]!)) {
      const got = await c.range(Buffer.from('graceful/'), prefixEnd(Buffer.from('graceful/')), 10_000);
      const have = new Map(got.kvs.map((kv) => [kv.key.toString(), kv.modRevision]));
      for (const r of acked) assert.is(have.get(r.key), r.revision, `acknowledged put ${r.key} @ ${r.revision} missing`);
    }
  } finally {
    for (const c of clients) c.close();
    await Promise.all(members.map((m) => m.stop()));
  }
});

const onTmpfs = tmpfsGate(test);

onTmpfs('a read-only data dir is refused with etcd 3.4 text; its data is there once it is writable again', async () => {
  const mnt = join(tempDir('tetcd-graceful-ro-'), 'mnt');
  mkdirSync(mnt);
  // etcd preallocates 64 MiB WAL segments.
  mountTmpfs(mnt, 256 * 1024 * 1024);
  try {
    const said: Record<string, string> = {};
    for (const kind of ['etcd', 'tetcd'] as const) {
      const m = await startMember(kind, { dataDir: join(mnt, kind) });
      const put = await etcdctl(m.endpoint, ['put', 'ro-key', kind]);
      assert.is(put.code, 0, put.stderr);
      await m.stop();
      execFileSync('mount', ['-o', 'remount,ro', mnt]);
      try {
        await m.start().catch(() => undefined);
        assert.ok(await m.exitsWithin(EXIT_WAIT_MS), `${kind} still runs on a read-only data dir:\n${m.logs()}`);
        assert.is(m.proc!.exitCode, 1, m.logs());
        const line = /cannot access data directory: .*/.exec(m.logs())?.[0];
        assert.ok(line, `${kind} did not say why:\n${m.logs()}`);
        said[kind] = line.replace(m.dataDir, 'DATA_DIR').replace(/\\n.*|".*/, '');
      } finally {
        execFileSync('mount', ['-o', 'remount,rw', mnt]);
      }
      await m.start();
      const get = await etcdctl(m.endpoint, ['get', 'ro-key', '--print-value-only']);
      assert.is(get.stdout.trim(), kind);
      await m.stop();
    }
    assert.is(said.tetcd, said.etcd);
    assert.is(said.tetcd, 'cannot access data directory: open DATA_DIR/.touch: read-only file system');
  } finally {
    unmountTmpfs(mnt, true);
  }
});

onTmpfs('a full disk under the backend is reported as one, naming the file; nothing acknowledged is lost once there is room', async () => {
  const root = tempDir('tetcd-graceful-full-');
  const mnt = join(root, 'mnt');
  mkdirSync(mnt);
  // The WAL elsewhere: the backend is what fills the disk here (a full WAL: cluster/wal-failure, cluster/disk-errors).
  mountTmpfs(mnt, 4 * 1024 * 1024);
  try {
    const m = await startMember('tetcd', { dataDir: join(mnt, 'data'), extraArgs: ['--wal-dir', join(root, 'wal')] });
    const kv = new KvClient(m.endpoint);
    const records: PutRecord[] = [];
    try {
      const loops = startPutLoops(
        [kv],
        4,
        (w, seq) => `full/${w}/${seq}`,
        records,
        () => Buffer.alloc(100_000, 0x78),
      );
      const deadline = Date.now() + 20_000;
      while (!m.logs().includes('member stops serving writes after a fatal error') && Date.now() < deadline) await sleep(100);
      loops.stop();
      await loops.done;
      assert.match(
        m.logs(),
        /backend: .*\(the disk holding \S*member\/snap\/db is full: \d+ bytes free; free space on it, then restart the member\)/,
      );
      const refused = await etcdctl(m.endpoint, ['put', 'after', 'v']);
      assert.match(refused.stderr, /etcdserver: backend: .*is full/);
    } finally {
      kv.close();
      await m.stop();
    }
    execFileSync('mount', ['-o', 'remount,size=64m', mnt]);
    await m.start();
    const check = new KvClient(m.endpoint);
    try {
      const acked = records.filter((r) => r.outcome === 'acked');
      assert.ok(acked.length > 5, `only ${acked.length} puts acknowledged`);
      const got = await check.range(Buffer.from('full/'), prefixEnd(Buffer.from('full/')), 10_000);
      const have = new Map(got.kvs.map((r) => [r.key.toString(), r.modRevision]));
      for (const r of acked) assert.is(have.get(r.key), r.revision, `acknowledged put ${r.key} @ ${r.revision} missing`);
      assert.is((await etcdctl(m.endpoint, ['put', 'after', 'v'])).code, 0);
    } finally {
      check.close();
      await m.stop();
    }
  } finally {
    unmountTmpfs(mnt, true);
  }
});

function restore(file: string, dataDir: string): void {
  execFileSync(
    process.execPath,
    [...tetcdNodeFlags(), tetcdEntry(), 'snapshot', 'restore', file, '--skip-hash-check', '--data-dir', dataDir],
    {
      stdio: 'pipe',
    },
  );
}

test('a data dir of a newer tetcd, or of etcd, is refused with what to do and left untouched', async () => {
  // tetcd's own data dir carries its format; a newer one is refused, the same one starts.
  const m = await startMember('tetcd', {});
  assert.is((await etcdctl(m.endpoint, ['put', 'k', 'tetcd'])).code, 0);
  await m.stop();
  const marker = join(m.dataDir, 'member', 'tetcd-format');
  assert.equal(JSON.parse(readFileSync(marker, 'utf8')), { format: 1 });
  writeFileSync(marker, '{"format":2}\n');
  await m.start().catch(() => undefined);
  assert.ok(await m.exitsWithin(EXIT_WAIT_MS), `tetcd runs on a newer format:\n${m.logs()}`);
  assert.is(m.proc!.exitCode, 1);
  assert.match(m.logs(), /has format 2 .*written by a newer tetcd; this tetcd reads format 1 and older: run the newer tetcd/);
  writeFileSync(marker, '{"format":1}\n');
  await m.start();
  assert.is((await etcdctl(m.endpoint, ['get', 'k', '--print-value-only'])).stdout.trim(), 'tetcd');
  await m.stop();

  // etcd's data dir: refused before anything in it is opened; its backend restored with tetcd serves its keys.
  const e = await startMember('etcd', {});
  assert.is((await etcdctl(e.endpoint, ['put', 'k', 'etcd'])).code, 0);
  await e.stop();
  const listing = (dir: string) => readdirSync(dir, { recursive: true }).map(String).sort();
  const before = listing(e.dataDir);
  const t = await startMember('tetcd', { dataDir: e.dataDir, waitReady: false });
  assert.ok(await t.exitsWithin(EXIT_WAIT_MS), `tetcd runs on etcd's data dir:\n${t.logs()}`);
  assert.is(t.proc!.exitCode, 1);
  assert.match(t.logs(), /is an etcd data dir .*is a bbolt database.*`tetcd snapshot restore FILE --data-dir NEW_DIR`/);
  assert.equal(listing(e.dataDir), before);
  const restored = join(tempDir('tetcd-graceful-restored-'), 'data');
  restore(join(e.dataDir, 'member', 'snap', 'db'), restored);
  const r = await startMember('tetcd', { dataDir: restored });
  try {
    assert.is((await etcdctl(r.endpoint, ['get', 'k', '--print-value-only'])).stdout.trim(), 'etcd');
  } finally {
    await r.stop();
  }
});

test.run();
