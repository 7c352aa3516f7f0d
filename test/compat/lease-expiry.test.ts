// Lease expiry on one member, checked as a property on etcd 3.4 and on the system under test side by side:
// while keep-alives flow the keys stay; once they stop the keys are gone within TTL + one election timeout
// (never before the TTL), all in one revision; a lease and its keys survive a restart (kill -9 included);
// the lease metrics count.
import { Etcd3 } from 'etcd3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runningChildren } from '../helpers/cleanup.js';
import { httpGet, startMember, type Member } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';

const ELECTION_MS = 1000; // both sides run with the default --election-timeout
const POLL_MS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Side {
  member: Member;
  client: Etcd3;
}

const target = compatTarget();
const t = oracleGate(test);
const sides: Side[] = [];

function connect(m: Member): Etcd3 {
  return new Etcd3({ hosts: m.clientUrl, dialTimeout: 5_000 });
}

t(`start a fresh etcd (oracle) and a fresh ${target}`, async () => {
  const ms = await Promise.all([startMember('etcd', { name: 'm1' }), startMember(target, { name: 'm1' })]);
  for (const m of ms) sides.push({ member: m, client: connect(m) });
});

/** Keeps a lease alive for `ms`, then stops; returns when the last answer arrived (ms, Date.now()). */
async function keepAliveFor(c: Etcd3, id: string, ms: number, everyMs: number): Promise<number> {
  const stream = await c.leaseClient.leaseKeepAlive();
  let last = 0;
  let answered: () => void = () => {};
  stream.on('data', () => {
    last = Date.now();
    answered();
  });
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const got = new Promise<void>((r) => {
      answered = r;
    });
    stream.write({ ID: id });
    await got;
    await sleep(everyMs);
  }
  stream.end();
  return last;
}

async function exists(c: Etcd3, key: string): Promise<boolean> {
  return (await c.get(key).serializable(true).string()) !== null;
}

t(
  'keys stay while keep-alives flow, and vanish within TTL + one election timeout after they stop (never before the TTL), in one revision',
  async () => {
    const ttlSec = 3;
    await Promise.all(
      sides.map(async ({ member, client }) => {
        const { ID } = await client.leaseClient.leaseGrant({ TTL: ttlSec });
        for (const k of ['ex/a', 'ex/b', 'ex/c']) await client.put(k).value('v').lease(ID).exec();
        // Keep-alives every second for twice the TTL, while a poller checks the keys never vanish.
        let vanished = false;
        let polling = true;
        const poller = (async () => {
          while (polling) {
            if (!(await exists(client, 'ex/a'))) vanished = true;
            await sleep(POLL_MS);
          }
        })();
        const lastRenew = await keepAliveFor(client, ID, 2 * ttlSec * 1000, 1000);
        polling = false;
        await poller;
        assert.is(vanished, false, `${member.kind}: a key vanished while keep-alives flowed`);
        const revBefore = Number((await client.get('ex/a').exec()).header.revision);
        // Never before the TTL.
        while (Date.now() < lastRenew + ttlSec * 1000 - 150) {
          assert.ok(
            await exists(client, 'ex/a'),
            `${member.kind}: gone ${Date.now() - lastRenew} ms after the last renew (TTL ${ttlSec} s)`,
          );
          await sleep(POLL_MS);
        }
        // Gone by TTL + election timeout.
        let goneAfterMs = -1;
        while (Date.now() < lastRenew + ttlSec * 1000 + ELECTION_MS + 500) {
          if (!(await exists(client, 'ex/a'))) {
            goneAfterMs = Date.now() - lastRenew;
            break;
          }
          await sleep(POLL_MS);
        }
        assert.ok(goneAfterMs > 0, `${member.kind}: keys still there ${ttlSec * 1000 + ELECTION_MS + 500} ms after the last renew`);
        assert.ok(goneAfterMs <= ttlSec * 1000 + ELECTION_MS, `${member.kind}: keys gone only after ${goneAfterMs} ms`);
        const after = await client.getAll().prefix('ex/').exec();
        assert.is(after.kvs.length, 0);
        assert.is(Number(after.header.revision), revBefore + 1, `${member.kind}: the three deletes share one revision`);
        const ttl = await client.leaseClient.leaseTimeToLive({ ID });
        assert.is(String(ttl.TTL), '-1');
      }),
    );
  },
);

t('a lease and its keys survive a graceful restart and a kill -9; it still expires afterwards', async () => {
  await Promise.all(
    sides.map(async (side) => {
      const { ID } = await side.client.leaseClient.leaseGrant({ TTL: 20 });
      await side.client.put('rs/a').value('1').lease(ID).exec();
      await side.client.put('rs/b').value('2').lease(ID).exec();
      const { ID: short } = await side.client.leaseClient.leaseGrant({ TTL: 4 });
      await side.client.put('rs/short').value('3').lease(short).exec();
      // Let the backend commit (etcd's batch interval is 100 ms) before the kill.
      await sleep(300);
      side.client.close();
      await side.member.stop();
      await side.member.start();
      await side.member.kill();
      await side.member.start();
      side.client = connect(side.member);
      const r = await side.client.leaseClient.leaseTimeToLive({ ID, keys: true });
      assert.is(String(r.grantedTTL), '20', `${side.member.kind}: granted TTL after restart`);
      assert.ok(Number(r.TTL) > 10 && Number(r.TTL) <= 21, `${side.member.kind}: remaining TTL ${r.TTL} after restart`);
      assert.equal(r.keys.map((k) => Buffer.from(k).toString()).sort(), ['rs/a', 'rs/b']);
      const list = await side.client.leaseClient.leaseLeases();
      assert.equal(list.leases.map((l) => String(l.ID)).sort(), [ID, short].sort());
      // The short lease's TTL restarted at promote (etcd: TTL + election timeout); it expires without keep-alives.
      const deadline = Date.now() + 4000 + ELECTION_MS + 2000;
      while ((await exists(side.client, 'rs/short')) && Date.now() < deadline) await sleep(100);
      assert.is(await exists(side.client, 'rs/short'), false, `${side.member.kind}: the short lease did not expire after the restart`);
      await side.client.leaseClient.leaseRevoke({ ID });
      assert.equal(await side.client.getAll().prefix('rs/').keys(), []);
    }),
  );
});

t('the lease metrics count grants, renews and revokes', async () => {
  for (const side of sides) {
    const text = (await httpGet(`${side.member.clientUrl}/metrics`, 5000)).text;
    for (const name of [
      'etcd_debugging_lease_granted_total',
      'etcd_debugging_lease_revoked_total',
      'etcd_debugging_lease_renewed_total',
      'etcd_debugging_lease_ttl_total_bucket{le="4"}',
      'etcd_debugging_server_lease_expired_total',
    ]) {
      assert.ok(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} \\d+`, 'm').test(text), `${side.member.kind}: /metrics has ${name}`);
    }
  }
  // tetcd's counters restart with the process, as etcd's do: the expiry above happened after the restarts.
  const sut = sides[1]!;
  const text = (await httpGet(`${sut.member.clientUrl}/metrics`, 5000)).text;
  assert.match(text, /^etcd_debugging_server_lease_expired_total [1-9]/m);
  assert.match(text, /^etcd_debugging_lease_revoked_total [1-9]/m);
});

t('stop both members', async () => {
  for (const s of sides) s.client.close();
  await Promise.all(sides.map((s) => s.member.stop()));
  assert.is(runningChildren(), 0);
});

test.run();
