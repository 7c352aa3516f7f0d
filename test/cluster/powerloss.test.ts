// Power loss, simulated (tools/powerloss: an LD_PRELOAD journal of every change under the data dir, rolled
// back after SIGKILL to what completed fsyncs made durable; torn rounds keep a random subset of the unsynced
// pages). Writers record every acknowledged put; the member (or all three members at once) is killed, loses
// its unsynced data, restarts, and every acknowledged put must be there with its revision.
// The last tests prove the harness: with the WAL's fdatasync or its directory fsync dropped, a round fails.
//   TETCD_POWERLOSS_SEED replays a run's kill timings and torn pages; TETCD_FAULTS_LONG=1 runs many rounds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rng } from '../../tools/lib/rng.js';
import { runningChildren, tempDir } from '../helpers/cleanup.js';
import { type Member, startMember } from '../helpers/member.js';
import { freePort } from '../../tools/lib/ports.js';
import { memberShimEnv, powerLoss, powerlossDirs, startWriters, verifyAcked, type PutRecord } from '../helpers/powerloss.js';

const LONG = process.env.TETCD_FAULTS_LONG === '1';
const seed = Number(process.env.TETCD_POWERLOSS_SEED ?? Date.now() % 2 ** 31);
const random = rng(seed);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Small segments and frequent snapshots, so rotations, snapshot files and segment releases happen in a round. */
const FLAGS = ['--wal-segment-bytes', '65536', '--snapshot-count', '300', '--snapshot-catchup-entries', '100'];
const verbose = process.env.TETCD_POWERLOSS_VERBOSE === '1';
/** The client-process pass of `npm test` (test/run.ts runs this file in both serving modes). */
const clientPass = (process.env.TETCD_CLIENT_WORKERS ?? '0') !== '0';

function log(line: string): void {
  if (verbose) process.stdout.write(`  ${line}\n`);
}

/**
 * Members on fixed ports under the shim, each data dir in base/<name>/data. Every sync waits 2 ms first, so a
 * kill often finds written but unsynced WAL records and backend pages (what the torn rounds tear).
 */
async function makeMembers(base: string, names: string[], extraEnv: Record<string, string> = {}): Promise<Member[]> {
  const ports: Array<{ client: number; peer: number }> = [];
  for (const _ of names) ports.push({ client: await freePort(), peer: await freePort() });
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${ports[i]!.peer}`).join(',');
  const members: Member[] = [];
  for (const [i, name] of names.entries()) {
    members.push(
      await startMember('tetcd', {
        name,
        dataDir: powerlossDirs(base, name).dataDir,
        clientPort: ports[i]!.client,
        peerPort: ports[i]!.peer,
        initialCluster,
        extraArgs: FLAGS,
        env: memberShimEnv(base, name, { POWERLOSS_SYNC_DELAY_US: '2000', ...extraEnv }),
        waitReady: false,
      }),
    );
  }
  await Promise.all(members.map((m) => m.waitReady(30_000)));
  return members;
}

/**
 * One round: writers for a random while, every member SIGKILLed at once, the power loss, a restart of all.
 * Throws (an assertion or a start failure) when an acknowledged put is lost or a member cannot restart.
 */
async function round(base: string, members: Member[], n: number, torn: boolean, records: PutRecord[]): Promise<void> {
  const writers = startWriters(
    members.map((m) => m.endpoint),
    6,
    `r${n}`,
    records,
  );
  const delayMs = 300 + Math.floor(random() * 900);
  await sleep(delayMs);
  await Promise.all(members.map((m) => m.kill()));
  writers.stop();
  await writers.done;
  const summaries = powerLoss(base, members, torn, Math.floor(random() * 2 ** 31));
  const what = `round ${n} (${torn ? 'torn' : 'strict'}, seed ${seed})`;
  try {
    await Promise.all(members.map((m) => m.start()));
    await Promise.all(members.map((m) => m.waitReady(30_000)));
  } catch (e) {
    const last = (e as Error).message.trim().split('\n').slice(-2).join(' ');
    throw new Error(`${what}: a member did not restart after the power loss: ${last}\n${summaries.join('\n')}`);
  }
  let acked: number;
  try {
    acked = await verifyAcked(members[0]!.endpoint, records, what);
  } catch (e) {
    const logs = members.map((m) => `--- ${m.name}\n${m.logs().slice(verbose ? -3000 : -800)}`).join('\n');
    throw new Error(`${(e as Error).message}\n${summaries.join('\n')}\n${logs}`);
  }
  log(`round ${n}: killed after ${delayMs} ms, ${acked} acknowledged puts present; ${summaries.join(' | ')}`);
}

test(`one member: SIGKILL + power loss (strict and torn), every acknowledged put survives (seed ${seed})`, async () => {
  const base = tempDir('tetcd-powerloss-');
  const members = await makeMembers(base, ['p1']);
  const records: PutRecord[] = [];
  try {
    const rounds = LONG ? 30 : clientPass ? 2 : 3;
    for (let n = 1; n <= rounds; n++) await round(base, members, n, n % 2 === 0, records);
    assert.ok(records.filter((r) => r.outcome === 'acked').length > rounds * 10, 'too few acknowledged puts to mean anything');
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
});

test(`three members lose power together: every acknowledged put survives (seed ${seed})`, async () => {
  const base = tempDir('tetcd-powerloss3-');
  const members = await makeMembers(base, ['q1', 'q2', 'q3']);
  const records: PutRecord[] = [];
  try {
    const rounds = LONG ? 15 : 2;
    for (let n = 1; n <= rounds; n++) await round(base, members, n, n % 2 === 0, records);
    assert.ok(records.filter((r) => r.outcome === 'acked').length > rounds * 10, 'too few acknowledged puts to mean anything');
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
});

/** Runs rounds under a broken sync until one fails; returns the failure (undefined: the breakage went unseen). */
async function roundsUntilFailure(dropEnv: Record<string, string>, rounds: number): Promise<string | undefined> {
  const base = tempDir('tetcd-powerloss-broken-');
  const members = await makeMembers(base, ['b1'], dropEnv);
  const records: PutRecord[] = [];
  try {
    for (let n = 1; n <= rounds; n++) {
      try {
        await round(base, members, n, false, records);
      } catch (e) {
        return (e as Error).message.split('\n')[0];
      }
    }
    return undefined;
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
}

// The harness proofs do not depend on the serving mode: the client-process pass (test/run.ts) skips them.
const proof = clientPass ? test.skip : test;

proof('the harness catches a WAL whose fdatasync does nothing', async () => {
  const failure = await roundsUntilFailure({ POWERLOSS_DROP_SYNC: '/member/wal/' }, 3);
  log(`dropped WAL fdatasync: ${failure}`);
  assert.ok(failure, 'three power losses with the WAL never synced lost nothing: the harness cannot see a missing fdatasync');
});

proof('the harness catches a WAL directory that is never fsynced after a segment is renamed into place', async () => {
  const failure = await roundsUntilFailure({ POWERLOSS_DROP_DIRSYNC: '/member/wal' }, 3);
  log(`dropped WAL directory fsync: ${failure}`);
  assert.ok(failure, 'three power losses with the WAL directory never synced lost nothing: the harness cannot see it');
});

proof('the harness catches a data dir that is never fsynced after member/ is created in it', async () => {
  const failure = await roundsUntilFailure({ POWERLOSS_DROP_DIRSYNC: '/b1/data$' }, 3);
  log(`dropped data dir fsync: ${failure}`);
  assert.ok(failure, 'three power losses with the data dir never synced lost nothing: the harness cannot see it');
});

test('no member left running', () => {
  assert.is(runningChildren(), 0);
});

test.run();
