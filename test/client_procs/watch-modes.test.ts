// A Watch client sees the same bytes with and without client processes: the same scenario against a
// member with --client-workers 0 and one with --client-workers 2 (same name, ports and token, so the same
// cluster and member IDs), read by @grpc/grpc-js as raw messages, must give byte-identical responses:
// prefix and single-key watchers, prev_kv, both filters, a txn with several events, a watcher that
// catches up from history, a fragmenting watcher (a delete of keys whose prev_kv pass the fragment size)
// and a progress request. The client-process mode sends event responses as WatchEvents frames and
// rebuilds them in the client process; this is where a difference in a header or a field would show.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2 from 'node:http2';
import * as grpc from '../../tools/lib/grpcjs.js';
import {
  KV,
  decodeWatchResponse,
  encodeDeleteRangeRequest,
  encodePutRequest,
  encodeTxnRequest,
  encodeWatchRequest,
  type WatchCreateRequestInit,
} from '../../src/proto/rpc.js';
import { startMember } from '../helpers/member.js';
import { unaryCall, prefixEnd } from '../helpers/grpc-kv.js';
import { freePort } from '../../tools/lib/ports.js';

// This file pins both modes itself.
delete process.env.TETCD_CLIENT_WORKERS;

const NOPUT = 0;
const NODELETE = 1;
const BIG_KEYS = 150;
/** Each big value; 150 of them as prev_kv pass --max-request-bytes + 512 KiB, so the delete fragments. */
const BIG_VALUE = 'b'.repeat(3700);

interface Stream {
  call: grpc.ClientDuplexStream<Uint8Array, Buffer>;
  got: Buffer[];
}

function openStream(client: grpc.Client): Stream {
  const call = client.makeBidiStreamRequest<Uint8Array, Buffer>(
    '/etcdserverpb.Watch/Watch',
    (b) => Buffer.from(b),
    (b) => Buffer.from(b),
  );
  const s: Stream = { call, got: [] };
  call.on('data', (b: Buffer) => s.got.push(b));
  call.on('error', () => {});
  return s;
}

function create(s: Stream, key: string, opts: Omit<WatchCreateRequestInit, 'key'> = {}): void {
  s.call.write(encodeWatchRequest({ create_request: { key: Buffer.from(key), ...opts } }));
}

const prefix = (p: string): Pick<WatchCreateRequestInit, 'range_end'> => ({ range_end: prefixEnd(Buffer.from(p)) });

async function settle(streams: Stream[], count: () => number): Promise<void> {
  // Until nothing arrived for 400 ms (and at least `count()` responses were expected to be there).
  let last = -1;
  for (let i = 0; i < 200; i++) {
    const n = streams.reduce((a, s) => a + s.got.length, 0);
    if (n === last && n >= count()) return;
    last = n;
    await new Promise((r) => setTimeout(r, 400));
  }
  throw new Error('watch responses did not settle');
}

async function scenario(clientWorkers: number, ports: { clientPort: number; peerPort: number }): Promise<Buffer[][]> {
  const m = await startMember('tetcd', {
    name: 'modes',
    ...ports,
    initialClusterToken: 'watch-modes',
    extraArgs: ['--client-workers', String(clientWorkers), '--max-request-bytes', '8192'],
  });
  const client = new grpc.Client(m.endpoint, grpc.credentials.createInsecure());
  const session = http2.connect(`http://${m.endpoint}`);
  session.on('error', () => {});
  const kv = (path: string, body: Uint8Array) => unaryCall(session, path, body, 10_000);
  try {
    const a = openStream(client);
    create(a, 'k/', prefix('k/'));
    create(a, 'k/', { ...prefix('k/'), prev_kv: true });
    create(a, 'k/', { ...prefix('k/'), filters: [NOPUT] });
    create(a, 'k/', { ...prefix('k/'), filters: [NODELETE], prev_kv: true });
    create(a, 'k/1');
    create(a, 'big/', { ...prefix('big/'), watch_id: 42 });
    // The fragmenting watcher on a stream of its own: its response fills the stream, and what is queued
    // behind a full stream depends on timing, not on the mode.
    const c = openStream(client);
    create(c, 'big/', { ...prefix('big/'), prev_kv: true, fragment: true });
    await settle([a, c], () => 7);
    for (let i = 0; i < 3; i++)
      await kv(KV.methods.Put.path, encodePutRequest({ key: Buffer.from(`k/${i}`), value: Buffer.from(`v${i}`) }));
    await kv(
      KV.methods.Txn.path,
      encodeTxnRequest({
        success: [
          { request_put: { key: Buffer.from('k/1'), value: Buffer.from('t1') } },
          { request_delete_range: { key: Buffer.from('k/0') } },
          { request_put: { key: Buffer.from('k/9'), value: Buffer.from('t9') } },
          { request_put: { key: Buffer.from('other'), value: Buffer.from('x') } },
        ],
      }),
    );
    for (let i = 0; i < BIG_KEYS; i++) {
      await kv(
        KV.methods.Put.path,
        encodePutRequest({ key: Buffer.from(`big/${String(i).padStart(3, '0')}`), value: Buffer.from(BIG_VALUE) }),
      );
    }
    await kv(KV.methods.DeleteRange.path, encodeDeleteRangeRequest({ key: Buffer.from('k/'), range_end: prefixEnd(Buffer.from('k/')) }));
    await kv(
      KV.methods.DeleteRange.path,
      encodeDeleteRangeRequest({ key: Buffer.from('big/'), range_end: prefixEnd(Buffer.from('big/')) }),
    );
    // A watcher that starts in the past catches up from the member's history.
    const b = openStream(client);
    create(b, 'k/', { ...prefix('k/'), start_revision: 2, prev_kv: true });
    await settle([a, b, c], () => 0);
    a.call.write(encodeWatchRequest({ progress_request: {} }));
    b.call.write(encodeWatchRequest({ progress_request: {} }));
    await settle([a, b, c], () => 0);
    for (const s of [a, b, c]) s.call.cancel();
    return [a.got, b.got, c.got];
  } finally {
    client.close();
    session.close();
    await m.stop();
  }
}

test('Watch responses are byte-identical with --client-workers 0 and 2', async () => {
  const ports = { clientPort: await freePort(), peerPort: await freePort() };
  const inline = await scenario(0, ports);
  const procs = await scenario(2, ports);
  // The scenario reached what it is about: fragments, events with prev_kv, a progress response.
  const all = inline.flat();
  const decoded = inline.map((l) => l.map((b) => decodeWatchResponse(b)));
  assert.ok(
    decoded[2].some((r) => r.fragment),
    'the fragmenting watcher got fragments',
  );
  assert.ok(
    decoded[0].some((r) => r.watch_id === -1 && r.events.length === 0 && !r.created),
    'a progress response',
  );
  assert.ok(
    decoded[1].some((r) => r.events.some((e) => e.prev_kv !== undefined)),
    'catch-up events with prev_kv',
  );
  assert.ok(inline[0].length > BIG_KEYS, `stream a got ${inline[0].length} responses`);
  assert.ok(all.some((b) => b.includes(Buffer.from(BIG_VALUE))));
  for (let s = 0; s < inline.length; s++) {
    assert.is(procs[s].length, inline[s].length, `stream ${s}: response count`);
    for (let i = 0; i < inline[s].length; i++) {
      assert.is(procs[s][i].toString('hex'), inline[s][i].toString('hex'), `stream ${s}, response ${i}`);
    }
  }
});

test.run();
