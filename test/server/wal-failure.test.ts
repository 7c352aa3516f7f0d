// A member whose WAL fails stops serving writes instead of acknowledging what is not durable: its --wal-dir
// is a small tmpfs that is filled up, so the next segment cannot be preallocated (ENOSPC). Puts in flight
// and every later put are refused with an etcdserver error, serializable reads still answer, and once space
// is freed a restart brings back every put acknowledged before the failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { GrpcStatusError, KvClient } from '../helpers/grpc-kv.js';
import { httpGet, startTetcd, type Member } from '../helpers/member.js';
import { fillDisk, mountTmpfs, tmpfsGate, unmountTmpfs } from '../helpers/tmpfs.js';

const onTmpfs = tmpfsGate(test);

const WAL_MOUNT_BYTES = 1024 * 1024;
const SEGMENT_BYTES = 64 * 1024; // the smallest --wal-segment-bytes: a rotation every ~60 puts of 1 KB
const WRITERS = 4;
const PUT_TIMEOUT_MS = 10_000;
const PUTS_MAX = 2_000;
/** Puts refused before the writers stop: some were in flight at the failure, the rest started after it. */
const REFUSALS_WANTED = 16;
/** gRPC status Unknown: what etcd answers for an internal error with its own text. */
const GRPC_UNKNOWN = 2;

function valueFor(key: string): Buffer {
  return Buffer.from(`${key}:`.padEnd(1000, key.slice(-1)));
}

onTmpfs('a WAL that hits ENOSPC: puts refused with an etcdserver error, none acked after, acked ones survive a restart', async () => {
  const root = tempDir('tetcd-wal-failure-');
  const mnt = join(root, 'wal-mnt');
  mkdirSync(mnt);
  let m: Member | undefined;
  let kv: KvClient | undefined;
  try {
    mountTmpfs(mnt, WAL_MOUNT_BYTES);
    m = await startTetcd({
      dataDir: join(root, 'data'),
      extraArgs: ['--wal-dir', join(mnt, 'wal'), '--wal-segment-bytes', String(SEGMENT_BYTES)],
    });
    kv = new KvClient(m.endpoint);
    await kv.put(Buffer.from('k/first'), valueFor('k/first'), PUT_TIMEOUT_MS);
    // The open segment is preallocated, so writes go on into it; the next one has no room.
    const filler = fillDisk(mnt);

    const acked = new Map<string, Buffer>([['k/first', valueFor('k/first')]]);
    const refusals: Array<{ key: string; err: unknown; ms: number }> = [];
    const ackedAfterRefusal: string[] = [];
    let puts = 0;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; refusals.length < REFUSALS_WANTED && puts < PUTS_MAX; i++) {
        puts++;
        const key = `k/${w}/${i}`;
        const startedAfterRefusal = refusals.length > 0;
        const t0 = Date.now();
        try {
          await kv!.put(Buffer.from(key), valueFor(key), PUT_TIMEOUT_MS);
          acked.set(key, valueFor(key));
          if (startedAfterRefusal) ackedAfterRefusal.push(key);
        } catch (err) {
          refusals.push({ key, err, ms: Date.now() - t0 });
        }
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));

    assert.ok(refusals.length > 0, `no put was refused after ${puts} puts on a full WAL disk`);
    assert.ok(acked.size > 20, `only ${acked.size} puts acknowledged before the failure: the disk filled too early`);
    assert.equal(ackedAfterRefusal, [], 'puts started after a refusal were acknowledged');
    for (const r of refusals) {
      assert.instance(r.err, GrpcStatusError, `${r.key}: ${String(r.err)} (a hang or a dropped stream, not a refusal)`);
      assert.is((r.err as GrpcStatusError).code, GRPC_UNKNOWN, `${r.key}: ${String(r.err)}`);
      assert.match(
        (r.err as GrpcStatusError).message,
        /^etcdserver: wal: .*ENOSPC|No space left/i,
        `${r.key}: ${(r.err as Error).message}`,
      );
      assert.ok(r.ms < 3_000, `${r.key} took ${r.ms} ms to be refused`);
    }
    assert.match(m.logs(), /member stops serving writes after a fatal error/);

    // What a real client sees: a prompt, etcd-like error for writes and linearizable reads, answers for
    // serializable ones, and an unhealthy member.
    const put = await etcdctl(m.endpoint, ['put', 'k/late', 'v'], { timeoutMs: 10_000 });
    assert.is.not(put.code, 0, `etcdctl put succeeded: ${put.stdout}`);
    assert.match(put.stderr, /etcdserver: wal: .*(ENOSPC|no space left)/i);
    const linearizable = await etcdctl(m.endpoint, ['get', 'k/first', '--print-value-only'], { timeoutMs: 10_000 });
    assert.is.not(linearizable.code, 0, 'a linearizable read was served by a member whose WAL failed');
    assert.match(linearizable.stderr, /etcdserver: wal:/);
    const serializable = await etcdctl(m.endpoint, ['get', 'k/first', '--print-value-only', '--consistency=s']);
    assert.is(serializable.stdout.trim(), valueFor('k/first').toString());
    assert.is((await httpGet(`${m.clientUrl}/health`, 5_000)).text, '{"health":"false"}');

    // It stops cleanly on SIGTERM (the failed WAL closes), and comes back whole once there is room.
    kv.close();
    kv = undefined;
    await m.stop();
    assert.is(m.proc?.exitCode, 0, `exit ${m.proc?.exitCode ?? m.proc?.signalCode}:\n${m.logs()}`);
    assert.not.match(m.logs(), /\n\s+at /, 'the member printed a stack trace');
    rmSync(filler);
    await m.start();
    kv = new KvClient(m.endpoint);
    const lost: string[] = [];
    for (const [key, value] of acked) {
      const got = await kv.range(Buffer.from(key), null, PUT_TIMEOUT_MS);
      if (got.kvs.length !== 1 || !got.kvs[0]!.value.equals(value)) lost.push(key);
    }
    assert.equal(lost, [], `acknowledged puts missing after the restart (of ${acked.size})`);
    await kv.put(Buffer.from('k/after'), valueFor('k/after'), PUT_TIMEOUT_MS);
  } finally {
    kv?.close();
    await m?.stop();
    unmountTmpfs(mnt);
  }
});

test.run();
