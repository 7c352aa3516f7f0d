// Progress notifications (--experimental-watch-progress-notify-interval): a watcher created with
// progress_notify against etcd 3.4 and tetcd with a short interval gets the same event and empty
// responses for its watch ID at the current revision while idle (how many depends on timing; both must
// send several). etcdctl 3.4 has no --progress-notify, so the test speaks gRPC itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '../../tools/lib/grpcjs.js';
import { decodeWatchResponse, encodeWatchRequest, type WatchResponse } from '../../src/proto/rpc.js';
import { runningChildren } from '../helpers/cleanup.js';
import { startMember, type Member, type MemberKind } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { etcdctl } from '../helpers/etcdctl.js';

/** What a client sees, reduced to what must match: created, events, and progress responses. */
async function scenario(kind: MemberKind): Promise<string[]> {
  const m: Member = await startMember(kind, { name: 'm1', extraArgs: ['--experimental-watch-progress-notify-interval', '400ms'] });
  const client = new grpc.Client(m.endpoint, grpc.credentials.createInsecure());
  try {
    await etcdctl(m.endpoint, ['put', 'other', 'x']); // rev 2
    const seen: string[] = [];
    const call = client.makeBidiStreamRequest<Uint8Array, WatchResponse>(
      '/etcdserverpb.Watch/Watch',
      (b) => Buffer.from(b),
      (b) => decodeWatchResponse(b),
    );
    call.on('error', () => {});
    call.on('data', (r: WatchResponse) => {
      const evs = r.events.map((e) => `${e.type}:${Buffer.from(e.kv!.key).toString()}@${e.kv!.mod_revision}`).join(',');
      seen.push(`${r.created ? 'created ' : ''}id=${r.watch_id} rev=${r.header!.revision} events=[${evs}]`);
    });
    call.write(encodeWatchRequest({ create_request: { key: Buffer.from('foo'), progress_notify: true } }));
    await new Promise((r) => setTimeout(r, 300));
    await etcdctl(m.endpoint, ['put', 'foo', 'v']); // rev 3
    await new Promise((r) => setTimeout(r, 2000));
    call.cancel();
    return seen;
  } finally {
    client.close();
    await m.stop();
  }
}

const target = compatTarget();
const t = oracleGate(test);

t(`progress notifications of an idle watcher carry the current revision on etcd and ${target}`, async () => {
  const [want, got] = await Promise.all([scenario('etcd'), scenario(target)]);
  const progress = (lines: string[]) => lines.filter((l) => l.endsWith('events=[]') && !l.startsWith('created'));
  const rest = (lines: string[]) => lines.filter((l) => !progress(lines).includes(l));
  assert.equal(rest(want), ['created id=0 rev=2 events=[]', 'id=0 rev=3 events=[0:foo@3]'], `etcd: ${want.join(' | ')}`);
  assert.ok(progress(want).length >= 2, `etcd sent progress: ${want.join(' | ')}`);
  assert.equal(rest(got), rest(want));
  assert.ok(progress(got).length >= 2, `progress: ${got.join(' | ')}`);
  assert.equal([...new Set(progress(got))], [...new Set(progress(want))]);
  assert.is(runningChildren(), 0);
});

test.run();
