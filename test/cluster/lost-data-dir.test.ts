// A member whose data dir lost part or all of its state must not come back as if nothing happened: a member
// that had data refuses to run when its WAL or its backend is gone (local evidence), and one whose whole data
// dir is gone is refused by its peers, which know it as already bootstrapped (etcd 3.4 asks them the same).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { KvClient } from '../helpers/grpc-kv.js';
import { httpGet, startCluster, startMember, type Member } from '../helpers/member.js';

const FLAGS = ['--wal-segment-bytes', '65536', '--snapshot-count', '200', '--snapshot-catchup-entries', '50'];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** n puts; each is retried for a while (a put sent to a follower whose leader just died times out). */
async function puts(endpoint: string, n: number): Promise<void> {
  const kv = new KvClient(endpoint);
  try {
    for (let i = 0; i < n; i++) {
      for (let attempt = 1; ; attempt++) {
        try {
          await kv.put(Buffer.from(`k${i}`), Buffer.alloc(300, 0x61), 10_000);
          break;
        } catch (e) {
          if (attempt === 3) throw e;
        }
      }
    }
  } finally {
    kv.close();
  }
}

/** start() must fail; returns the member's output. */
async function refusedStart(m: Member): Promise<string> {
  try {
    await m.start();
  } catch (e) {
    return (e as Error).message;
  }
  await m.stop();
  assert.unreachable(`${m.name} started`);
  return '';
}

test('a member whose WAL is gone but whose backend holds data refuses to start, naming both', async () => {
  const m = await startMember('tetcd', { name: 'w1', extraArgs: FLAGS });
  await puts(m.endpoint, 50);
  await m.stop();
  rmSync(join(m.dataDir, 'member', 'wal'), { recursive: true });
  const out = await refusedStart(m);
  assert.match(out, /member\/snap\/db holds entries applied up to index \d+ but .*member\/wal holds no WAL/);
});

test('a member whose backend is gone while its WAL resumes after a snapshot refuses to start, naming the file', async () => {
  const m = await startMember('tetcd', { name: 'b1', extraArgs: FLAGS });
  await puts(m.endpoint, 600);
  await m.stop();
  const walFiles = readdirSync(join(m.dataDir, 'member', 'wal'));
  assert.not.ok(walFiles.includes('0000000000000000-0000000000000000.wal'), `the first segment was never released: ${walFiles}`);
  rmSync(join(m.dataDir, 'member', 'snap', 'db'));
  rmSync(join(m.dataDir, 'member', 'snap', 'db-lock'), { force: true });
  const out = await refusedStart(m);
  assert.match(out, /member\/snap\/db: backend applied index 0 is behind snapshot index \d+/);
});

test('a cluster member that comes back with an empty data dir is refused by its peers and stops', async () => {
  const ms = await startCluster('tetcd', ['c1', 'c2', 'c3'], { extraArgs: FLAGS });
  try {
    await puts(ms[0]!.endpoint, 20);
    const lost = ms[2]!;
    assert.ok(lost, 'three members');
    await lost.kill();
    rmSync(join(lost.dataDir, 'member'), { recursive: true });
    // It may get to answer /health before it learns it is refused, or not: start() may fail.
    const started = lost.start().catch(() => {});
    // Refused either by a peer's stream check, or by Raft when the leader's heartbeat commits past its empty log.
    const refused = /has already been bootstrapped|Was the raft log corrupted, truncated, or lost/;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !refused.test(lost.logs())) await sleep(200);
    await started;
    assert.match(lost.logs(), refused, lost.logs().slice(-3000));
    assert.match(lost.logs(), /member stops serving writes after a fatal error/);
    if (lost.running()) {
      const h = await httpGet(`${lost.clientUrl}/health`, 5_000).catch((e: Error) => ({ status: 0, text: e.message }));
      assert.is.not(h.status, 200, `/health of the refused member: ${h.status} ${h.text}`);
    }
    // The other two go on.
    await puts(ms[0]!.endpoint, 5).catch((e: Error) => {
      const tail = (m: Member) =>
        m
          .logs()
          .split('\n')
          .filter((l) => !l.includes('refused peer stream'))
          .slice(-25)
          .join('\n');
      throw new Error(`the other two members stopped serving writes: ${e.message}\n${tail(ms[0]!)}\n---\n${tail(ms[1]!)}`);
    });
  } finally {
    await Promise.all(ms.map((m) => m.stop()));
  }
});

test.run();
