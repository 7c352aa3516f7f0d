// Crash test: writers keep several puts in flight against one member; the member is SIGKILLed at random
// moments (12 times; 40 in the long run), restarted, and every put it acknowledged must be there with exactly the revision the
// put response reported. Puts whose outcome is unknown (in flight at the kill) may be present or not, but
// all present puts together must occupy revisions 2..N with no gap and no stranger.
//   TETCD_COMPAT_TARGET=etcd proves the test on etcd; TETCD_CRASH_SEED replays a run's kill timings.
import { test } from 'uvu';
import { rng } from '../../tools/lib/rng.js';
import * as assert from 'uvu/assert';
import { runningChildren } from '../helpers/cleanup.js';
import { KvClient, prefixEnd } from '../helpers/grpc-kv.js';
import { startMember, type Member } from '../helpers/member.js';
import { startPutLoops, type PutRecord } from '../helpers/put_loops.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';

// 12 kills in `npm test`, 40 in `npm run test:faults`.
const KILLS = Number(process.env.TETCD_CRASH_KILLS ?? (process.env.TETCD_FAULTS_LONG === '1' ? 40 : 12));
const WRITERS = 8;
const KILL_DELAY_MIN_MS = 30;
const KILL_DELAY_MAX_MS = 400;
const PREFIX = Buffer.from('crash/');
const seed = Number(process.env.TETCD_CRASH_SEED ?? Date.now() % 2 ** 31);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const target = compatTarget();
const t = target === 'etcd' ? oracleGate(test) : test;
const records: PutRecord[] = [];
let member: Member;

/** Reads every crash/ key and checks the invariants against all records so far; returns a summary. */
async function verify(round: number): Promise<string> {
  const kv = new KvClient(member.endpoint);
  try {
    const r = await kv.range(PREFIX, prefixEnd(PREFIX), 30_000);
    const present = new Map(r.kvs.map((x) => [x.key.toString(), x]));
    const byKey = new Map(records.map((x) => [x.key, x]));
    for (const key of present.keys()) {
      assert.ok(byKey.has(key), `round ${round}: key ${key} exists but was never written`);
    }
    let acked = 0;
    let unknownPresent = 0;
    for (const rec of records) {
      const kvr = present.get(rec.key);
      if (rec.outcome === 'acked') {
        acked++;
        assert.ok(kvr, `round ${round}: acknowledged put ${rec.key} (revision ${rec.revision}) is missing`);
        assert.is(
          kvr.modRevision,
          rec.revision,
          `round ${round}: ${rec.key} mod_revision ${kvr.modRevision}, acknowledged ${rec.revision}`,
        );
        assert.is(kvr.createRevision, rec.revision, `round ${round}: ${rec.key} create_revision`);
        assert.is(kvr.version, 1n, `round ${round}: ${rec.key} version`);
        assert.is(kvr.value.toString(), rec.key, `round ${round}: ${rec.key} value`);
      } else {
        assert.is(rec.outcome, 'unknown', `round ${round}: ${rec.key} still pending after the writers stopped`);
        const now = kvr ? 'present' : 'absent';
        if (rec.resolved !== undefined)
          assert.is(now, rec.resolved, `round ${round}: unknown put ${rec.key} was ${rec.resolved}, now ${now}`);
        rec.resolved = now;
        if (kvr) {
          unknownPresent++;
          assert.is(kvr.modRevision, kvr.createRevision, `round ${round}: ${rec.key} rewritten`);
        }
      }
    }
    // Every present put took exactly one revision, starting at 2 on a fresh member, with no gaps.
    const revs = [...present.values()].map((x) => x.createRevision).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    revs.forEach((rev, i) => assert.is(rev, BigInt(i + 2), `round ${round}: revision gap or duplicate at position ${i}`));
    assert.is(r.revision, BigInt(revs.length + 1), `round ${round}: header revision vs. writes present`);
    // A writer's acknowledged puts were sequential, so their revisions rise.
    for (let w = 0; w < WRITERS; w++) {
      const mine = records.filter((x) => x.writer === w && x.outcome === 'acked').map((x) => x.revision);
      for (let i = 1; i < mine.length; i++) assert.ok(mine[i]! > mine[i - 1]!, `writer ${w}: revisions not increasing`);
    }
    return `${acked} acked, ${unknownPresent} unknown-but-present, revision ${r.revision}`;
  } finally {
    kv.close();
  }
}

t(`start a fresh ${target} member (seed ${seed})`, async () => {
  member = await startMember(target, { name: 'crash' });
});

const random = rng(seed);
for (let round = 1; round <= KILLS; round++) {
  t(`kill ${round}/${KILLS}: SIGKILL under concurrent puts, restart, every acknowledged put is there`, async () => {
    assert.ok(member, 'member did not start');
    const kv = new KvClient(member.endpoint);
    const writers = startPutLoops([kv], WRITERS, (w, seq) => `crash/${String(round).padStart(2, '0')}/${w}/${seq}`, records);
    const delayMs = KILL_DELAY_MIN_MS + Math.floor(random() * (KILL_DELAY_MAX_MS - KILL_DELAY_MIN_MS));
    await sleep(delayMs);
    await member.kill();
    writers.stop();
    await writers.done;
    kv.close();
    await member.start();
    const summary = await verify(round);
    if (process.env.TETCD_CRASH_VERBOSE === '1') process.stdout.write(`  round ${round}: killed after ${delayMs} ms; ${summary}\n`);
  });
}

t('some puts were acknowledged and some were in flight at a kill', () => {
  assert.ok(records.filter((r) => r.outcome === 'acked').length > KILLS, 'too few acknowledged puts to mean anything');
  assert.ok(
    records.some((r) => r.outcome === 'unknown'),
    'no put was ever in flight at a kill',
  );
});

t('stop the member', async () => {
  await member?.stop();
  assert.is(runningChildren(), 0);
});

test.run();
