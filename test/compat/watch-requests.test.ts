// Watch requests etcd answers in particular ways, sent as raw gRPC to etcd 3.4 and tetcd and compared
// response by response: client-chosen and assigned watch IDs, a duplicate ID, range_end before key, a
// cancel of an unknown ID and of a known one, a progress request, NOPUT/NODELETE filters, and a txn too big
// for one response split into fragments (with fragment set) or sent whole (without).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '../../tools/lib/grpcjs.js';
import { decodeWatchResponse, encodeWatchRequest, type WatchRequestInit, type WatchResponse } from '../../src/proto/rpc.js';
import { runningChildren } from '../helpers/cleanup.js';
import { startMember, type Member, type MemberKind } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { etcdctl } from '../helpers/etcdctl.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const b = (s: string): Buffer => Buffer.from(s);

/** A response as the comparison sees it (IDs and terms are the cluster's own, so only the revision stays). */
function show(r: WatchResponse): string {
  const evs = r.events.map((e) => `${e.type}:${Buffer.from(e.kv!.key).toString()}@${e.kv!.mod_revision}${e.prev_kv ? '+prev' : ''}`);
  const flags = [r.created && 'created', r.canceled && 'canceled', r.fragment && 'fragment'].filter(Boolean).join(',');
  const events = evs.length > 4 ? `${evs.length} events ${evs[0]}..${evs.at(-1)}` : evs.join(' ');
  return `id=${r.watch_id} rev=${r.header!.revision} ${flags} compact=${r.compact_revision} reason=${JSON.stringify(r.cancel_reason)} [${events}]`;
}

async function scenario(kind: MemberKind): Promise<string[]> {
  const m: Member = await startMember(kind, { name: 'm1', extraArgs: ['--max-request-bytes', '700000'] });
  const client = new grpc.Client(m.endpoint, grpc.credentials.createInsecure());
  const seen: string[] = [];
  try {
    const call = client.makeBidiStreamRequest<Uint8Array, WatchResponse>(
      '/etcdserverpb.Watch/Watch',
      (x) => Buffer.from(x),
      (x) => decodeWatchResponse(x),
    );
    call.on('error', () => {});
    call.on('data', (r: WatchResponse) => seen.push(show(r)));
    const send = async (req: WatchRequestInit): Promise<void> => {
      call.write(encodeWatchRequest(req));
      await sleep(150);
    };
    await send({ create_request: { key: b('a') } }); // assigned ID 0
    await send({ create_request: { key: b('a'), watch_id: 7 } });
    await send({ create_request: { key: b('b'), watch_id: 7 } }); // duplicate
    await send({ create_request: { key: b('z'), range_end: b('a') } }); // range_end before key
    await send({ create_request: { key: b('a'), range_end: b('b'), filters: [0] } }); // NOPUT: assigned ID 1
    await send({ create_request: { key: b('a'), range_end: b('b'), filters: [1], prev_kv: true } }); // NODELETE
    await send({ create_request: { key: b('big/'), range_end: b('big0'), fragment: true, prev_kv: true } });
    await send({ create_request: { key: b('big/'), range_end: b('big0'), prev_kv: true } });
    await send({ cancel_request: { watch_id: 99 } }); // unknown: no answer
    await send({ cancel_request: { watch_id: 7 } });
    for (const args of [
      ['put', 'a', '1'],
      ['put', 'a', '2'],
      ['del', 'a'],
    ])
      await etcdctl(m.endpoint, args);
    await sleep(200);
    await send({ progress_request: {} });
    // 20 values of 33 KiB, written twice in one txn each: the second txn's events with their previous
    // values are 1.32 MB, past the fragment size (--max-request-bytes + 512 KiB of gRPC overhead, 1.22 MB).
    for (const fill of ['x', 'y']) {
      const ops = Array.from({ length: 20 }, (_, i) => `put big/${String(i).padStart(2, '0')} ${fill.repeat(33 * 1024)}`).join('\n');
      const r = await etcdctl(m.endpoint, ['txn', '-i'], { stdin: `\n${ops}\n\n\n` });
      assert.is(r.code, 0, r.stderr);
    }
    await sleep(1000);
    call.cancel();
    return seen;
  } finally {
    client.close();
    await m.stop();
  }
}

const target = compatTarget();
const t = oracleGate(test);

t(`watch requests get the same responses from etcd and ${target}`, async () => {
  const [want, got] = await Promise.all([scenario('etcd'), scenario(target)]);
  assert.ok(
    want.some((l) => l.includes('fragment')),
    `etcd fragmented: ${want.join('\n')}`,
  );
  assert.ok(
    want.some((l) => l.includes('duplicate watch ID')),
    'etcd refused the duplicate ID',
  );
  // etcd sends the responses of different watchers in no fixed order (a Go map): compare per watch ID.
  const byId = (lines: string[]) => {
    const m = new Map<string, string[]>();
    for (const l of lines) {
      const id = l.slice(0, l.indexOf(' '));
      m.set(id, [...(m.get(id) ?? []), l]);
    }
    return Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)));
  };
  assert.equal(byId(got), byId(want));
  assert.is(runningChildren(), 0);
});

test.run();
