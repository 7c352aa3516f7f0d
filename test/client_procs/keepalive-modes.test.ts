// A LeaseKeepAlive client sees the same bytes with and without client processes: the same scenario against
// a member with --client-workers 0 (the member's own stream) and one with --client-workers 2 (the client
// process answers, renewals cross in batches), same name, ports and token so the same cluster and member
// IDs, read as raw messages, must give byte-identical responses: live leases, an unknown lease (TTL 0),
// several streams at once, requests sent back to back, puts between them (the header's revision moves),
// a revoked lease, and a half-close that ends the stream after its answers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2 from 'node:http2';
import * as grpc from '../../tools/lib/grpcjs.js';
import {
  KV,
  Lease,
  decodeLeaseGrantResponse,
  decodeLeaseKeepAliveResponse,
  encodeLeaseGrantRequest,
  encodeLeaseKeepAliveRequest,
  encodeLeaseRevokeRequest,
  encodePutRequest,
} from '../../src/proto/rpc.js';
import { startMember } from '../helpers/member.js';
import { unaryCall } from '../helpers/grpc-kv.js';
import { freePort } from '../../tools/lib/ports.js';

// This file pins both modes itself.
delete process.env.TETCD_CLIENT_WORKERS;

interface Stream {
  call: grpc.ClientDuplexStream<Uint8Array, Buffer>;
  got: Buffer[];
  ended: Promise<number>;
}

function openStream(client: grpc.Client): Stream {
  const call = client.makeBidiStreamRequest<Uint8Array, Buffer>(
    Lease.methods.LeaseKeepAlive.path,
    (b) => Buffer.from(b),
    (b) => Buffer.from(b),
  );
  const got: Buffer[] = [];
  call.on('data', (b: Buffer) => got.push(b));
  const ended = new Promise<number>((resolve) => {
    call.on('error', (err: grpc.ServiceError) => resolve(err.code));
    call.on('end', () => resolve(0));
  });
  return { call, got, ended };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function scenario(clientWorkers: number, ports: { clientPort: number; peerPort: number }): Promise<Buffer[][]> {
  const m = await startMember('tetcd', {
    name: 'modes',
    ...ports,
    initialClusterToken: 'keepalive-modes',
    extraArgs: ['--client-workers', String(clientWorkers)],
  });
  const client = new grpc.Client(m.endpoint, grpc.credentials.createInsecure());
  const session = http2.connect(`http://${m.endpoint}`);
  session.on('error', () => {});
  const call = (path: string, body: Uint8Array) => unaryCall(session, path, body, 10_000);
  try {
    const ids: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const r = decodeLeaseGrantResponse(
        await call(Lease.methods.LeaseGrant.path, encodeLeaseGrantRequest({ ID: BigInt(100 + i), TTL: 30 + i })),
      );
      ids.push(r.ID);
    }
    const a = openStream(client);
    const b = openStream(client);
    const c = openStream(client);
    const ask = (s: Stream, id: bigint) => s.call.write(encodeLeaseKeepAliveRequest({ ID: id }));
    // Back to back on one stream, and on three streams in the same turn.
    for (const id of [ids[0], ids[1], 999n, ids[0]]) ask(a, id);
    ask(b, ids[1]);
    ask(c, 12345n);
    await until('first answers', () => a.got.length === 4 && b.got.length === 1 && c.got.length === 1);
    await call(KV.methods.Put.path, encodePutRequest({ key: Buffer.from('k'), value: Buffer.from('v'), lease: ids[2] }));
    ask(b, ids[2]);
    ask(c, ids[0]);
    await until('answers after a put', () => b.got.length === 2 && c.got.length === 2);
    await call(Lease.methods.LeaseRevoke.path, encodeLeaseRevokeRequest({ ID: ids[1] }));
    ask(a, ids[1]);
    ask(a, ids[2]);
    a.call.end();
    const aEnd = await a.ended;
    assert.is(aEnd, 0, 'a half-closed stream ends OK after its answers');
    for (const s of [b, c]) s.call.cancel();
    return [a.got, b.got, c.got];
  } finally {
    client.close();
    session.close();
    await m.stop();
  }
}

test('LeaseKeepAlive responses are byte-identical with --client-workers 0 and 2', async () => {
  const ports = { clientPort: await freePort(), peerPort: await freePort() };
  const inline = await scenario(0, ports);
  const procs = await scenario(2, ports);
  const a = inline[0].map((x) => decodeLeaseKeepAliveResponse(x));
  assert.equal(
    a.map((r) => [r.ID, r.TTL]),
    [
      [100n, 30],
      [101n, 31],
      [999n, 0],
      [100n, 30],
      [101n, 0],
      [102n, 32],
    ],
    'live, unknown and revoked leases',
  );
  assert.ok(a[5].header!.revision > a[0].header!.revision, 'the header revision moved with the put');
  for (let s = 0; s < inline.length; s++) {
    assert.is(procs[s].length, inline[s].length, `stream ${s}: response count`);
    for (let i = 0; i < inline[s].length; i++) {
      assert.is(procs[s][i].toString('hex'), inline[s][i].toString('hex'), `stream ${s}, response ${i}`);
    }
  }
});

test.run();
