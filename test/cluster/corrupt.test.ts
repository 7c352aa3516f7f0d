// Hashes and corruption checks on three members: after a random workload with compactions every member has
// the same HashKV (at one revision) and the same Hash; a follower whose backend is altered while it is
// stopped is refused at start by --experimental-initial-corrupt-check, and, started without it, is caught by
// the leader's --experimental-corrupt-check-time pass, which raises CORRUPT through Raft: seen in `alarm
// list`, Status errors and /health, and writes get `etcdserver: corrupt cluster`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { open } from 'lmdb';
import { decodeKeyValue, encodeKeyValue } from '../../src/proto/kv.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { httpGet, startCluster, type Member } from '../helpers/member.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** One JSON gateway call; throws on a non-200 answer. */
async function post(m: Member, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${m.clientUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** A seeded random workload of puts, deletes and compactions; returns the last revision. */
async function workload(m: Member, ops: number, seed: number): Promise<number> {
  let x = seed;
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % n;
  };
  let rev = 0;
  let compacted = 0;
  for (let i = 0; i < ops; i++) {
    const key = b64(`key${rnd(40)}`);
    const r = rnd(20);
    let res: Record<string, unknown>;
    const at = rev - rnd(10);
    if (r === 0 && at > compacted) {
      await post(m, '/v3/kv/compaction', { revision: String(at), physical: rnd(2) === 0 });
      compacted = at;
      continue;
    }
    if (r < 4) res = await post(m, '/v3/kv/deleterange', { key });
    else res = await post(m, '/v3/kv/put', { key, value: b64(`value${i}-${'x'.repeat(rnd(200))}`) });
    rev = Number((res.header as { revision: string }).revision);
  }
  return rev;
}

interface Status {
  revision: number;
  leader: bigint;
  memberId: bigint;
  errors: string[];
}

async function status(m: Member): Promise<Status> {
  const r = await post(m, '/v3/maintenance/status', {});
  const h = r.header as { revision: string; member_id: string };
  return {
    revision: Number(h.revision),
    leader: BigInt(r.leader as string),
    memberId: BigInt(h.member_id),
    errors: (r.errors as string[]) ?? [],
  };
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** Rewrites the value of the newest revision of `key` in a stopped member's backend (same key, other bytes). */
async function corruptBackend(m: Member, key: string): Promise<void> {
  const env = open({ path: join(m.dataDir, 'member', 'snap', 'db'), noSubdir: true, maxDbs: 4 });
  const db = env.openDB<Buffer, Buffer>({ name: 'key', keyEncoding: 'binary', encoding: 'binary' });
  let target: { rk: Buffer; value: Buffer } | undefined;
  for (const { key: rk, value } of db.getRange({})) {
    if (Buffer.from(decodeKeyValue(value).key).toString() === key && rk.length === 17)
      target = { rk: Buffer.from(rk), value: Buffer.from(value) };
  }
  assert.ok(target, `no revision of ${key} in ${m.name}'s backend`);
  const kv = decodeKeyValue(target.value);
  await db.put(target.rk, Buffer.from(encodeKeyValue({ ...kv, value: Buffer.from('corrupted!') })));
  await env.close();
}

test('equal hashes after a random workload and defragments under writes; a corrupted follower is refused at start and then alarmed CORRUPT', async () => {
  const ms = await startCluster('tetcd', ['c1', 'c2', 'c3'], { extraArgs: ['--experimental-corrupt-check-time', '1s'] });
  try {
    const rev0 = await workload(ms[0], 300, 7);
    // Every member defragments while writes go on (its copy catches up with them before the swap).
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await post(ms[0], '/v3/kv/put', { key: b64(`during${written % 50}`), value: b64(`v${written}`) });
        written++;
      }
    })();
    for (const m of ms) {
      const d = await etcdctl(m.endpoint, ['defrag']);
      assert.is(d.code, 0, d.stderr);
    }
    writing = false;
    await writer;
    assert.ok(written > 0);
    const rev = rev0 + written;
    await post(ms[0], '/v3/kv/put', { key: b64('last'), value: b64('v') });
    const last = rev + 1;
    await waitFor(
      'every member at the last revision',
      async () => ((await Promise.all(ms.map(status))).every((s) => s.revision === last) ? true : undefined),
      20_000,
    );
    const hashkv = await Promise.all(ms.map((m) => etcdctl(m.endpoint, ['endpoint', 'hashkv', '--rev', String(last)])));
    const kvHashes = hashkv.map((r) => r.stdout.split(', ')[1]?.trim());
    assert.ok(kvHashes[0] !== undefined && /^\d+$/.test(kvHashes[0]), hashkv[0].stdout + hashkv[0].stderr);
    assert.equal(kvHashes, [kvHashes[0], kvHashes[0], kvHashes[0]], 'HashKV at one revision');
    // The gateway's /v3/maintenance/hash is Hash (the whole backend), as etcd 3.4's.
    const hashes = await Promise.all(ms.map(async (m) => (await post(m, '/v3/maintenance/hash', {})).hash));
    assert.ok(typeof hashes[0] === 'number');
    assert.equal(hashes, [hashes[0], hashes[0], hashes[0]], 'Hash');

    const statuses = await Promise.all(ms.map(status));
    const f = statuses.findIndex((s) => s.memberId !== s.leader);
    assert.ok(f >= 0, 'a follower');
    const victim = ms[f];
    const victimId = statuses[f].memberId;
    await victim.stop();
    await corruptBackend(victim, 'last');

    // The initial check: the member compares with its peers before serving, and refuses to start.
    victim.setEnv({ ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK: 'true' });
    await victim.start(); // a cluster's members do not wait for /health at start
    assert.ok(
      await victim.exitsWithin(30_000),
      `${victim.name} still runs:\n${victim
        .logs()
        .split('\n')
        .filter((l) => /corrupt|hash|starting/i.test(l))
        .join('\n')}`,
    );
    assert.match(victim.logs(), new RegExp(`tetcd: ${victimId.toString(16)} found data inconsistency with peers`));

    // Without it the member starts; the leader's periodic check finds it out.
    victim.setEnv({});
    await victim.start();
    // Not waitReady: /health turns false with the alarm this is about.
    await waitFor(`${victim.name} serving`, () => status(victim), 30_000);
    const other = ms.find((m) => m !== victim)!;
    const alarms = await waitFor(
      'the CORRUPT alarm',
      async () => {
        const r = await etcdctl(other.endpoint, ['alarm', 'list']);
        return r.stdout.includes('alarm:CORRUPT') ? r.stdout : undefined;
      },
      20_000,
    );
    assert.is(alarms, `memberID:${victimId} alarm:CORRUPT \n`);
    assert.equal((await status(other)).errors, [`memberID:${victimId} alarm:CORRUPT `]);
    const health = await httpGet(`${other.clientUrl}/health`, 5_000);
    assert.match(health.text, /"health":"false"/);
    const put = await etcdctl(other.endpoint, ['put', 'k', 'v']);
    assert.is(put.code, 1);
    assert.match(put.stderr, /Error: etcdserver: corrupt cluster/);
  } finally {
    await Promise.all(ms.map((m) => m.stop()));
  }
});

test.run();
