// Maintenance.Snapshot against the oracle: `etcdctl snapshot save` from tetcd under concurrent writes, the
// file restored by etcd 3.4's own `etcdctl snapshot restore` and served by a real etcd, which must answer
// every key at every revision since the compaction, and every lease, as tetcd did at the snapshot's
// revision; `snapshot status` of the same workload on both servers; a client that stops reading (the
// stream waits, it is not cut and nothing piles up past the transport's limit) and one that cancels (the
// snapshot file goes).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { httpGet, startCluster, startMember, type Member } from '../helpers/member.js';
import { oracleGate } from '../helpers/oracle.js';
import { freePort } from '../../tools/lib/ports.js';

const t = oracleGate(test);

interface Status {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/** A KeyValue as compared: every field etcd returns. */
interface Kv {
  key: string;
  value: string;
  create_revision: string;
  mod_revision: string;
  version: string;
  lease: string;
}

async function ok(endpoint: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await etcdctl(endpoint, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function status(file: string): Promise<Status> {
  return JSON.parse(await ok('127.0.0.1:1', ['snapshot', 'status', file, '-w', 'json'])) as Status;
}

/**
 * A workload with history: overwrites, deletes, a lease with keys, a compaction, writes after it.
 * Deterministic (no IDs chosen by the server reach the keys), so etcd and tetcd end at the same revision.
 */
async function workload(c: Etcd3): Promise<{ compactRev: number }> {
  for (let i = 0; i < 40; i++) await c.put(`k/${String(i).padStart(2, '0')}`).value(`v${i}`);
  for (let i = 0; i < 40; i += 3) await c.put(`k/${String(i).padStart(2, '0')}`).value(`w${i}`);
  for (let i = 1; i < 40; i += 7) await c.delete().key(`k/${String(i).padStart(2, '0')}`);
  const lease = c.lease(600, { autoKeepAlive: false });
  await lease.put('leased/a').value('1');
  await lease.put('leased/b').value('2');
  await c.put('big').value(Buffer.alloc(100_000, 0x61));
  const compactRev = Number((await c.get('k/00').exec()).header.revision) - 5;
  await c.kv.compact({ revision: compactRev, physical: true });
  for (let i = 0; i < 10; i++) await c.put(`k/${String(i).padStart(2, '0')}`).value(`after${i}`);
  await c.put('big').value(Buffer.alloc(200_000, 0x62));
  return { compactRev };
}

function client(m: Member): Etcd3 {
  return new Etcd3({ hosts: m.clientUrl, dialTimeout: 5_000 });
}

/** Every key at `rev` (every field), or the error's text. */
async function allAt(c: Etcd3, rev: number): Promise<Kv[] | string> {
  try {
    const r = await c.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), revision: rev });
    return r.kvs.map((kv) => ({
      key: kv.key.toString(),
      value: createHash('sha256').update(kv.value).digest('hex'),
      create_revision: String(kv.create_revision),
      mod_revision: String(kv.mod_revision),
      version: String(kv.version),
      lease: String(kv.lease),
    }));
  } catch (err) {
    return (err as Error).message;
  }
}

async function leases(c: Etcd3): Promise<{ id: string; granted: string; keys: string[] }[]> {
  const list = await c.leaseClient.leaseLeases({});
  const out = [];
  for (const l of list.leases) {
    const ttl = await c.leaseClient.leaseTimeToLive({ ID: l.ID, keys: true });
    out.push({ id: String(l.ID), granted: String(ttl.grantedTTL), keys: ttl.keys.map((k) => k.toString()).sort() });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** `etcdctl snapshot restore` into a new data dir, then a real etcd on it. */
async function restoreIntoEtcd(file: string): Promise<Member> {
  const dir = tempDir('tetcd-snap-restore-');
  const peerPort = await freePort();
  const dataDir = path.join(dir, 'r1');
  await ok('127.0.0.1:1', [
    'snapshot',
    'restore',
    file,
    '--name',
    'r1',
    '--data-dir',
    dataDir,
    '--initial-cluster',
    `r1=http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${peerPort}`,
  ]);
  return startMember('etcd', { name: 'r1', dataDir, peerPort });
}

t('etcdctl snapshot save under concurrent writes; etcd 3.4 restores the file with every key, revision, version and lease', async () => {
  const m = await startMember('tetcd');
  const c = client(m);
  let restored: Member | undefined;
  let rc: Etcd3 | undefined;
  try {
    const { compactRev } = await workload(c);
    const revBefore = Number((await c.get('k/00').exec()).header.revision);
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) await c.put(`w/${written++ % 50}`).value(`x${written}`);
    })();
    const file = path.join(tempDir('tetcd-snap-'), 'snap.db');
    const saved = await ok(m.endpoint, ['snapshot', 'save', file]);
    writing = false;
    await writer;
    assert.match(saved, `Snapshot saved at ${file}`);
    assert.ok(written > 0, 'the writer ran during the snapshot');
    const st = await status(file);
    assert.is(st.totalSize, fs.statSync(file).size - 32, 'the file is the bbolt database and its sha256');
    assert.ok(st.revision >= revBefore, `snapshot revision ${st.revision} >= ${revBefore}`);

    restored = await restoreIntoEtcd(file);
    rc = client(restored);
    const head = await rc.get('k/00').exec();
    assert.is(Number(head.header.revision), st.revision, 'etcd serves the snapshot revision');
    for (let rev = compactRev - 1; rev <= st.revision; rev++) {
      assert.equal(await allAt(rc, rev), await allAt(c, rev), `every key at revision ${rev}`);
    }
    assert.equal(await leases(rc), await leases(c));
  } finally {
    c.close();
    rc?.close();
    await restored?.stop();
    await m.stop();
  }
});

t('a follower of a 3-member cluster snapshots what it applied; etcd restores it as the cluster served it', async () => {
  const ms = await startCluster('tetcd', ['a', 'b', 'c']);
  const clients = ms.map(client);
  let restored: Member | undefined;
  let rc: Etcd3 | undefined;
  try {
    const { compactRev } = await workload(clients[0]);
    const leader = String((await clients[0].maintenance.status({})).leader);
    let follower: Member | undefined;
    for (let i = 0; i < ms.length && follower === undefined; i++) {
      if (String((await clients[i].maintenance.status({})).header.member_id) !== leader) follower = ms[i];
    }
    if (follower === undefined) throw new Error('no follower');
    const file = path.join(tempDir('tetcd-snap-'), 'follower.db');
    await ok(follower.endpoint, ['snapshot', 'save', file]);
    const st = await status(file);
    restored = await restoreIntoEtcd(file);
    rc = client(restored);
    for (let rev = compactRev - 1; rev <= st.revision; rev++) {
      assert.equal(await allAt(rc, rev), await allAt(clients[0], rev), `every key at revision ${rev}`);
    }
    assert.equal(await leases(rc), await leases(clients[0]));
  } finally {
    for (const c of clients) c.close();
    rc?.close();
    await restored?.stop();
    await Promise.all(ms.map((m) => m.stop()));
  }
});

t('snapshot status of the same workload: revision and total keys as etcd 3.4 prints them', async () => {
  const out: Record<string, Status> = {};
  for (const kind of ['etcd', 'tetcd'] as const) {
    const m = await startMember(kind);
    const c = client(m);
    try {
      await workload(c);
      const file = path.join(tempDir('tetcd-snap-'), `${kind}.db`);
      await ok(m.endpoint, ['snapshot', 'save', file]);
      out[kind] = await status(file);
      const table = await ok('127.0.0.1:1', ['snapshot', 'status', file, '-w', 'table']);
      assert.match(table, /\| +HASH +\| +REVISION +\| +TOTAL KEYS +\| +TOTAL SIZE +\|/);
    } finally {
      c.close();
      await m.stop();
    }
  }
  const { etcd, tetcd } = out;
  assert.equal(Object.keys(tetcd).sort(), Object.keys(etcd).sort());
  assert.is(tetcd.revision, etcd.revision);
  assert.is(tetcd.totalKey, etcd.totalKey, 'the same records in the same buckets');
  // etcd's file keeps free pages; tetcd's is written tight. Both hold the same data.
  assert.ok(tetcd.totalSize > 0 && tetcd.totalSize <= etcd.totalSize, `sizes ${tetcd.totalSize} vs ${etcd.totalSize}`);
});

/** What users, roles and permissions look like from outside: the same on the original and the restored server. */
const AUTH_PROBES: string[][] = [
  ['--user', 'root:rootpw', 'user', 'list'],
  ['--user', 'root:rootpw', 'user', 'get', 'u'],
  ['--user', 'root:rootpw', 'role', 'list'],
  ['--user', 'root:rootpw', 'role', 'get', 'reader'],
  ['--user', 'u:upw', 'get', 'k1'],
  ['--user', 'u:upw', 'put', 'k2', 'x'],
  ['--user', 'u:wrong', 'get', 'k1'],
  ['get', 'k1'],
];

async function authProbes(endpoint: string): Promise<string[]> {
  const out: string[] = [];
  for (const args of AUTH_PROBES) {
    const r = await etcdctl(endpoint, args);
    out.push(`${r.code} ${r.stdout.trim()} ${r.stderr.split('\n').find((l) => l.startsWith('Error:')) ?? ''}`);
  }
  return out;
}

t('with auth on, only root may take a snapshot (as etcd 3.4 answers); etcd restores the users, roles and permissions', async () => {
  const seen: Record<string, string[]> = {};
  for (const kind of ['etcd', 'tetcd'] as const) {
    const m = await startMember(kind);
    try {
      for (const args of [
        ['put', 'k1', 'v1'],
        ['user', 'add', 'root:rootpw'],
        ['user', 'add', 'u:upw'],
        ['role', 'add', 'reader'],
        ['role', 'grant-permission', 'reader', '--prefix=true', 'read', 'k'],
        ['user', 'grant-role', 'u', 'reader'],
        ['auth', 'enable'],
      ]) {
        await ok(m.endpoint, args);
      }
      const file = path.join(tempDir('tetcd-snap-'), 'a.db');
      const lines: string[] = [];
      for (const user of [[], ['--user', 'u:upw'], ['--user', 'root:rootpw']]) {
        const r = await etcdctl(m.endpoint, ['snapshot', 'save', file, ...user], { timeoutMs: 60_000 });
        const err = r.stderr.split('\n').find((l) => l.startsWith('Error:')) ?? '';
        lines.push(`${r.code} ${r.stdout.trim().replace(file, 'FILE')} ${err}`);
      }
      seen[kind] = lines;
      if (kind === 'tetcd') {
        const restored = await restoreIntoEtcd(file);
        try {
          const probes = await authProbes(m.endpoint);
          assert.equal(await authProbes(restored.endpoint), probes);
        } finally {
          await restored.stop();
        }
      }
    } finally {
      await m.stop();
    }
  }
  assert.equal(seen.tetcd, seen.etcd);
  assert.match(seen.tetcd[1], 'permission denied');
  assert.match(seen.tetcd[2], /^0 Snapshot saved/);
});

/** A raw Snapshot stream: the gRPC messages' payload bytes and the status, read at the caller's pace. */
function openSnapshot(m: Member): {
  stream: http2.ClientHttp2Stream;
  session: http2.ClientHttp2Session;
  done: Promise<{ data: Buffer; status: string }>;
} {
  const session = http2.connect(m.clientUrl);
  session.on('error', () => {});
  const stream = session.request({
    ':method': 'POST',
    ':path': '/etcdserverpb.Maintenance/Snapshot',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.end(Buffer.from([0, 0, 0, 0, 0]));
  const chunks: Buffer[] = [];
  const done = new Promise<{ data: Buffer; status: string }>((resolve) => {
    let status = '';
    stream.on('trailers', (h) => {
      status = `${h['grpc-status']} ${h['grpc-message'] ?? ''}`;
    });
    stream.on('response', (h) => {
      if (h['grpc-status'] !== undefined) status = `${h['grpc-status']} ${h['grpc-message'] ?? ''}`;
    });
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('close', () => resolve({ data: Buffer.concat(chunks), status }));
    stream.on('error', () => {});
  });
  return { stream, session, done };
}

/** The blobs of SnapshotResponse messages (field 3) in gRPC-framed bytes. */
function blobs(framed: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  while (p + 5 <= framed.length) {
    const len = framed.readUInt32BE(p + 1);
    const msg = framed.subarray(p + 5, p + 5 + len);
    p += 5 + len;
    let i = 0;
    while (i < msg.length) {
      const tag = msg[i++];
      let v = 0;
      let mul = 1;
      for (;;) {
        const b = msg[i++];
        v += (b & 0x7f) * mul;
        mul *= 128;
        if (b < 0x80) break;
      }
      if ((tag & 7) === 2) {
        if (tag >> 3 === 3) out.push(msg.subarray(i, i + v));
        i += v;
      }
    }
  }
  return out;
}

function outgoingFiles(m: Member): string[] {
  const dir = path.join(m.dataDir, 'member', 'snap');
  return fs.readdirSync(dir).filter((n) => n.startsWith('outgoing-client-'));
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t(
  'a client that stops reading holds the stream (not cut, the file sent whole after); at most two in flight; a cancelled one frees the file',
  async () => {
    const m = await startMember('tetcd', { extraArgs: ['--max-request-bytes', String(3 << 20)] });
    const c = client(m);
    try {
      // 72 MiB: past the most a stream may queue before it is cut (64 MiB in-process, 8 MiB per client-process stream).
      const value = Buffer.alloc(2 << 20, 0x63);
      for (let i = 0; i < 36; i++) await c.put(`big/${i}`).value(value);

      const slow = openSnapshot(m);
      slow.stream.pause();
      await until('the snapshot file', () => outgoingFiles(m).length === 1);
      // Two snapshots may be in flight; a third is refused until one ends.
      const second = openSnapshot(m);
      second.stream.pause();
      await until('the second snapshot file', () => outgoingFiles(m).length === 2);
      const third = openSnapshot(m);
      const refused = await third.done;
      third.session.close();
      assert.is(refused.status, '8 etcdserver: too many requests');
      second.stream.close(http2.constants.NGHTTP2_CANCEL);
      await second.done;
      second.session.close();
      await new Promise((r) => setTimeout(r, 1_500));
      slow.stream.resume();
      const { data, status: st } = await slow.done;
      slow.session.close();
      assert.is(st.trim(), '0', 'the stream ended OK');
      const parts = blobs(data);
      const body = Buffer.concat(parts.slice(0, -1));
      assert.ok(body.length > 72 * 1024 * 1024, `the whole file arrived (${body.length} bytes)`);
      assert.equal(parts[parts.length - 1], createHash('sha256').update(body).digest(), 'the last message is its sha256');
      await until('the file to go after the stream', () => outgoingFiles(m).length === 0);

      const cancelled = openSnapshot(m);
      await new Promise<void>((resolve) => cancelled.stream.once('data', () => resolve()));
      assert.is(outgoingFiles(m).length, 1);
      cancelled.stream.close(http2.constants.NGHTTP2_CANCEL);
      await cancelled.done;
      cancelled.session.close();
      await until('the cancelled snapshot file to go', () => outgoingFiles(m).length === 0);

      // Cancelled while the file is being written: the export stops and its file goes too.
      const early = openSnapshot(m);
      await until('the snapshot file', () => outgoingFiles(m).length === 1);
      early.stream.close(http2.constants.NGHTTP2_CANCEL);
      await early.done;
      early.session.close();
      await until('the file of the export cancelled early to go', () => outgoingFiles(m).length === 0);
      const metrics = await httpGet(`${m.clientUrl}/metrics`, 5_000);
      assert.match(metrics.text, /\netcd_disk_backend_snapshot_duration_seconds_count [1-9]/);
      assert.match(m.logs(), /wrote database snapshot for a client/);
    } finally {
      c.close();
      await m.stop();
    }
  },
);

test.run();
