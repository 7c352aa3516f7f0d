// A member of a 3-member cluster whose WAL fails (its --wal-dir is a small tmpfs that fills up): it stops
// serving writes with the WAL's error and stops taking part in Raft, the other two go on serving writes (with
// a new leader if it was the leader), nothing acknowledged is lost, and once space is freed a restart brings
// it back up to the cluster's revision.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LocalCluster } from '../../tools/cluster.js';
import { tempDir } from '../helpers/cleanup.js';
import {
  ExactKv,
  PutLoad,
  assertNoCrash,
  clusterLogs,
  endpointStatus,
  sleep,
  startFaultCluster,
  waitConverged,
} from '../helpers/faults.js';
import { GrpcStatusError } from '../helpers/grpc-kv.js';
import { fillDisk, mountTmpfs, tmpfsGate, unmountTmpfs } from '../helpers/tmpfs.js';

const onTmpfs = tmpfsGate(test);

const WAL_MOUNT_BYTES = 1024 * 1024;
/** The smallest --wal-segment-bytes: the next rotation, which must preallocate, comes soon under load. */
const SEGMENT_BYTES = 64 * 1024;
const FAILED = 'm1';
const FAIL_WAIT_MS = 20_000;

onTmpfs(
  'a member whose WAL fills up stops serving writes; the other two go on; nothing acknowledged is lost; it rejoins after a restart',
  async () => {
    const root = tempDir('tetcd-cluster-wal-failure-');
    const mnt = join(root, 'wal-mnt');
    mkdirSync(mnt);
    let c: LocalCluster | undefined;
    try {
      mountTmpfs(mnt, WAL_MOUNT_BYTES);
      c = await startFaultCluster({
        memberArgs: (name) => (name === FAILED ? ['--wal-dir', join(mnt, 'wal'), '--wal-segment-bytes', String(SEGMENT_BYTES)] : []),
      });
      await c.waitHealthy(30_000);
      const failed = c.members.find((m) => m.name === FAILED)!;
      const others = c.members.filter((m) => m !== failed);
      const filler = fillDisk(mnt);

      const load = new PutLoad(c, 'walfail', 4);
      load.start();
      const deadline = Date.now() + FAIL_WAIT_MS;
      while (!failed.logTail().includes('member stops serving writes after a fatal error') && Date.now() < deadline) await sleep(100);
      assert.match(
        failed.logTail(),
        /member stops serving writes after a fatal error.*ENOSPC/,
        `${FAILED} never failed:\n${clusterLogs(c)}`,
      );
      const ackedAtFailure = load.acked.size;

      // The failed member refuses writes with its WAL's error, at once; it is still running.
      const kv = new ExactKv(failed.endpoint);
      try {
        await kv.put(Buffer.from('walfail-direct'), Buffer.from('x'), 5_000);
        assert.unreachable('a put through the failed member was acknowledged');
      } catch (err) {
        assert.instance(err, GrpcStatusError, String(err));
        assert.match((err as Error).message, /^etcdserver: wal: .*ENOSPC/);
      } finally {
        kv.close();
      }
      assert.ok(failed.running, `${FAILED} exited after its WAL failed`);

      // The other two go on (electing a leader among themselves if the failed member led).
      const leader = await c.leader(10_000, others);
      assert.is.not(leader, failed);
      await sleep(2_000);
      assert.ok(
        load.acked.size > ackedAtFailure + 100,
        `writes stalled after the failure: ${load.acked.size - ackedAtFailure} acknowledged in 2 s`,
      );
      await load.stop();

      // Space again, a restart: the member catches up and nothing acknowledged is missing anywhere.
      rmSync(filler);
      await failed.stop();
      failed.start();
      await failed.waitHealthy(30_000);
      const conv = await waitConverged(c, 30_000);
      assert.is((await endpointStatus(failed.endpoint)).revision, conv.revision, 'the restarted member reached the cluster revision');
      const lost = await load.lostWrites(failed.endpoint);
      assert.equal(lost, [], `${lost.length} problems (of ${load.acked.size} acked):\n${lost.slice(0, 20).join('\n')}`);
      assertNoCrash(c);
      process.stdout.write(
        `  ${load.acked.size} acked (${ackedAtFailure} before ${FAILED}'s WAL failed), ${load.errors} errors; converged at revision ${conv.revision}\n`,
      );
    } finally {
      await c?.stop();
      unmountTmpfs(mnt, true);
      rmSync(root, { recursive: true, force: true });
    }
  },
);

test.run();
