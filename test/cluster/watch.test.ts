// Watch on every member of a 3-member cluster: watchers on the leader and on followers see exactly the
// same events, in revision order, each committed write once; and a watcher whose member is SIGKILLed
// reconnects to another member from its last revision + 1 and still sees every revision exactly once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '../../tools/lib/grpcjs.js';
import { decodeWatchResponse, encodeWatchRequest, type WatchResponse } from '../../src/proto/rpc.js';
import { awaitWithTimer } from '../helpers/cleanup.js';
import { startCluster, type Member } from '../helpers/member.js';
import { etcdctl } from '../helpers/etcdctl.js';

/** One watcher on one member: every event it received as "rev:type:key". */
class Watching {
  readonly seen: string[] = [];
  lastRev = 0;
  private client: grpc.Client | undefined;
  private call: grpc.ClientDuplexStream<Uint8Array, WatchResponse> | undefined;
  broken = false;

  constructor(readonly label: string) {}

  open(endpoint: string, startRev: number): Promise<void> {
    this.broken = false;
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure());
    const call = this.client.makeBidiStreamRequest<Uint8Array, WatchResponse>(
      '/etcdserverpb.Watch/Watch',
      (b) => Buffer.from(b),
      (b) => decodeWatchResponse(b),
    );
    this.call = call;
    return new Promise<void>((resolve, reject) => {
      call.on('data', (r: WatchResponse) => {
        if (r.created) resolve();
        for (const e of r.events) {
          const rev = e.kv!.mod_revision;
          this.seen.push(`${rev}:${e.type}:${Buffer.from(e.kv!.key).toString()}`);
          this.lastRev = rev;
        }
      });
      call.on('error', (err) => {
        this.broken = true;
        reject(err);
      });
      call.write(
        encodeWatchRequest({ create_request: { key: Buffer.from('x/'), range_end: Buffer.from('x0'), start_revision: startRev } }),
      );
    });
  }

  close(): void {
    this.call?.cancel();
    this.client?.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('watchers on every member see the same events; one that reconnects elsewhere from last+1 misses nothing', async () => {
  const members: Member[] = await startCluster('tetcd', ['a', 'b', 'c'], {});
  const watchers = members.map((m) => new Watching(m.name));
  const roaming = new Watching('roaming');
  try {
    await Promise.all(watchers.map((w, i) => w.open(members[i].endpoint, 0)));
    // Writes go to the leader; the member that dies is a follower (a write in flight to a dying leader would
    // only test etcdctl's timeout). The order below is leader, doomed follower, surviving follower.
    const status = JSON.parse((await etcdctl(members[0].endpoint, ['endpoint', 'status', '-w', 'json'])).stdout)[0].Status;
    const leaderId = BigInt(status.leader);
    const ids = await Promise.all(
      members.map(async (m) =>
        BigInt(JSON.parse((await etcdctl(m.endpoint, ['endpoint', 'status', '-w', 'json'])).stdout)[0].Status.header.member_id),
      ),
    );
    const li = ids.indexOf(leaderId);
    assert.ok(li >= 0, 'the leader is one of the members');
    const order = [li, (li + 1) % 3, (li + 2) % 3];
    members.splice(0, 3, ...order.map((i) => members[i]));
    watchers.splice(0, 3, ...order.map((i) => watchers[i]));
    await roaming.open(members[1].endpoint, 0);
    const writer = members[0].endpoint;
    const want: string[] = [];
    const put = async (k: string, v: string): Promise<void> => {
      const r = await etcdctl(writer, ['put', k, v, '-w', 'json']);
      assert.is(r.code, 0, r.stderr);
      want.push(`${JSON.parse(r.stdout).header.revision}:0:${k}`);
    };
    for (let i = 0; i < 30; i++) await put(`x/${i % 7}`, `v${i}`);
    // The roaming watcher's member goes away mid-stream; it resumes on another member from last + 1.
    await members[1].kill();
    for (let i = 0; i < 10; i++) await put(`x/${i % 7}`, `w${i}`);
    await sleep(300);
    assert.ok(roaming.broken, 'the stream to the killed member broke');
    roaming.close();
    await roaming.open(members[2].endpoint, roaming.lastRev + 1);
    const del = await etcdctl(writer, ['del', '--prefix', 'x/', '-w', 'json']);
    assert.is(del.code, 0, del.stderr);
    const delRev = JSON.parse(del.stdout).header.revision;
    for (let k = 0; k < 7; k++) want.push(`${delRev}:1:x/${k}`);
    for (let i = 0; i < 10; i++) await put(`x/${i}`, `z${i}`);
    const last = want.at(-1)!;
    const live = [watchers[0], watchers[2], roaming];
    await awaitWithTimer(
      (async () => {
        while (!live.every((w) => w.seen.at(-1) === last)) await sleep(50);
      })(),
      20_000,
      'every watcher to see the last write',
    );
    // The deletes of one revision arrive in key order; everything else in revision order.
    assert.equal(watchers[0].seen, want, 'the watcher on the first member saw every write once, in order');
    assert.equal(watchers[2].seen, want, 'the watcher on the third member too');
    assert.equal(roaming.seen, want, 'the roaming watcher saw every revision exactly once across the reconnect');
    assert.equal(watchers[1].seen, want.slice(0, watchers[1].seen.length), "the killed member's watcher saw a prefix, in order");
  } finally {
    for (const w of [...watchers, roaming]) w.close();
    await Promise.all(members.map((m) => m.stop()));
  }
});

test.run();
