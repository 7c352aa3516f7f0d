// Disk errors, injected by the power-loss shim (tools/powerloss): EIO or ENOSPC on the n-th write or fdatasync
// of the WAL or of the backend (n drawn from a printed seed). The member must never retry a failed sync nor
// acknowledge anything after it: it stops accepting writes and says why in its log, /health and Status. Then
// the power goes (what no completed sync covered is lost, and what a failed sync did not write is lost for
// good), the member restarts on a healthy disk, and every acknowledged put is there.
import { COMMIT_STALL_MS } from '../../src/server/backend.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rng } from '../../tools/lib/rng.js';
import { tempDir } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { KvClient } from '../helpers/grpc-kv.js';
import { httpGet, startMember } from '../helpers/member.js';
import { memberShimEnv, powerLoss, powerlossDirs, startWriters, verifyAcked, type PutRecord } from '../helpers/powerloss.js';

const seed = Number(process.env.TETCD_DISK_ERRORS_SEED ?? Date.now() % 2 ** 31);
const random = rng(seed);
const LONG = process.env.TETCD_FAULTS_LONG === '1';
const STOP_WAIT_MS = 20_000;

interface Case {
  what: string;
  op: 'write' | 'fdatasync';
  path: string;
  errno: 'EIO' | 'ENOSPC';
  /** The n-th call fails, n in [min, max): early enough to happen within seconds of load. */
  min: number;
  max: number;
  /** What the member must say (log, Status, refused puts). */
  says: RegExp;
  /** How long writes may go on after the load began (default STOP_WAIT_MS). */
  stopWaitMs?: number;
}

const CASES: Case[] = [
  { what: 'WAL fdatasync EIO', op: 'fdatasync', path: '/member/wal/', errno: 'EIO', min: 20, max: 150, says: /fdatasync.*EIO/ },
  { what: 'WAL write ENOSPC', op: 'write', path: '/member/wal/', errno: 'ENOSPC', min: 20, max: 150, says: /write.*ENOSPC/ },
  {
    what: 'backend fdatasync EIO',
    op: 'fdatasync',
    path: '/member/snap/db',
    errno: 'EIO',
    min: 8,
    max: 20,
    says: /backend.*Input\/output error/,
  },
  {
    what: 'backend write EIO',
    op: 'write',
    path: '/member/snap/db',
    errno: 'EIO',
    min: 20,
    max: 200,
    // When the failed write is LMDB's meta page, lmdb-js (3.5) only prints the error and never settles the
    // commit: the member learns of it from the commit stall (src/server/backend.ts COMMIT_STALL_MS).
    says: /backend.*(Input\/output error|not durable after \d+ ms; the disk may have failed)/,
    stopWaitMs: COMMIT_STALL_MS + STOP_WAIT_MS,
  },
];

// `npm test` runs a WAL case and the backend's fdatasync case in each serving pass (test/run.ts runs this file in
// both); the long run runs all of them three times with other n. The backend's write case is in the long run
// only: when it hits LMDB's meta page, the member learns of it only after COMMIT_STALL_MS.
const clientPass = (process.env.TETCD_CLIENT_WORKERS ?? '0') !== '0';
// TETCD_DISK_ERRORS_CASES="backend write EIO,WAL write ENOSPC" runs those cases (by name) instead.
const named = (process.env.TETCD_DISK_ERRORS_CASES ?? '').split(',').filter((w) => w !== '');
const chosen =
  named.length > 0
    ? CASES.filter((c) => named.includes(c.what))
    : LONG
      ? [...CASES, ...CASES, ...CASES]
      : [CASES[clientPass ? 1 : 0]!, CASES[2]!];
for (const c of chosen) {
  const n = c.min + Math.floor(random() * (c.max - c.min));
  test(`${c.what} on call ${n} (seed ${seed}): the member stops writing and says why; nothing acknowledged is lost`, async () => {
    const t0 = Date.now();
    const mark = (what: string) => {
      if (process.env.TETCD_DISK_ERRORS_VERBOSE === '1') process.stdout.write(`  ${Date.now() - t0} ms: ${what}\n`);
    };
    const base = tempDir('tetcd-disk-errors-');
    const name = 'e1';
    const spec = `${c.op}:${c.path}:${n}:${c.errno}`;
    const m = await startMember('tetcd', {
      name,
      dataDir: powerlossDirs(base, name).dataDir,
      extraArgs: ['--wal-segment-bytes', '65536', '--snapshot-count', '300'],
      env: memberShimEnv(base, name, { POWERLOSS_FAIL: spec }),
    });
    try {
      mark('started');
      const records: PutRecord[] = [];
      const writers = startWriters([m.endpoint], 4, 'e', records);
      // Each writer ends at its first refused put; all end once the member has stopped writing.
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([
        writers.done.then(() => true),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), c.stopWaitMs ?? STOP_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
      writers.stop();
      await writers.done;
      mark(`writers stopped, ${records.filter((r) => r.outcome === 'acked').length} acknowledged`);
      assert.ok(
        stopped,
        `writes still succeed ${c.stopWaitMs ?? STOP_WAIT_MS} ms after the load began (${spec} never hit?)\n${m.logs().slice(-2000)}`,
      );
      assert.ok(m.running(), `the member crashed instead of stopping cleanly:\n${m.logs().slice(-3000)}`);
      const acked = records.filter((r) => r.outcome === 'acked').length;
      assert.ok(acked > 0, 'nothing was acknowledged before the error');

      // It refuses every write from now on, and says why.
      const kv = new KvClient(m.endpoint);
      let refusal = '';
      try {
        await kv.put(Buffer.from('after/failure'), Buffer.from('x'), 5_000);
      } catch (e) {
        refusal = (e as Error).message;
      } finally {
        kv.close();
      }
      assert.match(refusal, c.says, `a put after the failure was not refused with the cause: '${refusal}'`);
      const health = await httpGet(`${m.clientUrl}/health`, 5_000);
      assert.is(health.status, 503, `/health: ${health.status} ${health.text}`);
      const st = await etcdctl(m.endpoint, ['endpoint', 'status', '-w', 'json']);
      assert.match(st.stdout, c.says, `Status errors do not name the failure: ${st.stdout} ${st.stderr}`);
      assert.match(m.logs(), /member stops serving writes after a fatal error/);
      assert.match(m.logs(), c.says);

      mark('checked the refusal, /health, Status and the log');
      // Power loss; a restart on a healthy disk keeps every acknowledged put.
      await m.kill();
      const summary = powerLoss(base, [m], false, seed);
      m.setEnv(memberShimEnv(base, name));
      try {
        await m.start();
      } catch (e) {
        throw new Error(`no restart after ${c.what} and a power loss (${summary.join('; ')}): ${(e as Error).message.slice(-1500)}`);
      }
      mark('restarted');
      await verifyAcked(m.endpoint, records, `${c.what} (seed ${seed})`);
      mark('verified');
    } finally {
      await m.stop();
      mark('stopped');
    }
  });
}

test.run();
