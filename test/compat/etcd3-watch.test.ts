// The `etcd3` npm client's watch API against a fresh etcd 3.4 and a fresh tetcd: watchers on a key, a
// prefix with previous kvs, a range, with put or delete filtered out, from a past revision, and one created
// from a compacted revision; they see the same writes, and what each watcher received must match.
import { Etcd3, type Watcher } from 'etcd3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runningChildren } from '../helpers/cleanup.js';
import { startMember, type Member } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';

const text = (b: Buffer | Uint8Array | undefined): string => (b === undefined ? '' : Buffer.from(b).toString());

/** One watcher's record: every event, with its revision and previous value, and how it ended. */
function record(w: Watcher, out: string[]): void {
  w.on('put', (kv, prev) =>
    out.push(`put ${text(kv.key)}=${text(kv.value)} @${kv.mod_revision} v${kv.version}${prev ? ` prev=${text(prev.value)}` : ''}`),
  );
  w.on('delete', (kv, prev) => out.push(`delete ${text(kv.key)} @${kv.mod_revision}${prev ? ` prev=${text(prev.value)}` : ''}`));
  w.on('error', (err) => out.push(`error ${err.message}`));
}

async function scenario(m: Member): Promise<Record<string, string[]>> {
  const client = new Etcd3({ hosts: m.clientUrl, dialTimeout: 5_000 });
  const got: Record<string, string[]> = {};
  const watchers: Watcher[] = [];
  const watch = async (label: string, build: (c: Etcd3) => Promise<Watcher>): Promise<void> => {
    got[label] = [];
    const w = await build(client);
    record(w, got[label]);
    watchers.push(w);
  };
  try {
    await watch('key', (c) => c.watch().key('a').create());
    await watch('prefix with previous kv', (c) => c.watch().prefix('a').withPreviousKV().create());
    await watch('range [a, b)', (c) => c.watch().inRange({ start: 'a', end: 'b' }).create());
    await watch('only deletes', (c) => c.watch().prefix('a').ignore('put').create());
    await watch('only puts', (c) => c.watch().prefix('a').only('put').create());
    await client.put('a').value('1'); // rev 2
    await client.put('a2').value('2'); // rev 3
    await client.put('b').value('3'); // rev 4
    await client.if('a', 'Value', '==', '1').then(client.put('a').value('x'), client.put('a3').value('y')).commit(); // rev 5
    await client.delete().prefix('a'); // rev 6
    await client.put('a').value('again'); // rev 7
    await watch('from revision 3', (c) => c.watch().prefix('a').startRevision('3').create());
    await client.put('a').value('last'); // rev 8
    await new Promise((r) => setTimeout(r, 500));
    return got;
  } finally {
    await Promise.all(watchers.map((w) => w.cancel()));
    client.close();
  }
}

const target = compatTarget();
const t = oracleGate(test);

t(`etcd3 watchers see the same events on etcd and ${target}`, async () => {
  const [a, b] = await Promise.all([startMember('etcd', { name: 'm1' }), startMember(target, { name: 'm1' })]);
  try {
    const [want, got] = await Promise.all([scenario(a), scenario(b)]);
    assert.ok(want['prefix with previous kv'].length >= 6, `etcd: ${JSON.stringify(want)}`);
    if (process.env.TETCD_COMPAT_VERBOSE === '1') process.stdout.write(`${JSON.stringify(want, null, 1)}\n`);
    assert.equal(got, want);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  assert.is(runningChildren(), 0);
});

test.run();
