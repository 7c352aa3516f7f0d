// Wire compatibility with etcd itself: our encoders build the requests, a real etcd 3.4 member
// (started here on loopback, in a temp dir) answers over plain HTTP/2 gRPC, our decoders read
// the answers. Skipped, with a note, when the etcd binary is not installed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, type ClientHttp2Session } from 'node:http2';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as rpc from '../../src/proto/rpc.js';
import { Event_EventType } from '../../src/proto/kv.js';

const etcdAvailable = spawnSync('etcd', ['--version'], { encoding: 'utf8' }).status === 0;
const startTimeoutMs = 10_000;
const callTimeoutMs = 5_000;
const responseBytesMax = 4 << 20;

let etcd: ChildProcess | undefined;
let dataDir = '';
let session: ClientHttp2Session | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const srv = createServer();
    srv.once('error', () => resolve(freePort()));
    srv.listen(port, '127.0.0.1', () => srv.close((err) => (err ? reject(err) : resolve(port))));
  });
}

function frame(msg: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + msg.length);
  b.writeUInt32BE(msg.length, 1);
  b.set(msg, 5);
  return b;
}

/** Splits a gRPC response body into its messages. */
function unframe(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  while (p + 5 <= body.length) {
    const len = body.readUInt32BE(p + 1);
    out.push(body.subarray(p + 5, p + 5 + len));
    p += 5 + len;
  }
  return out;
}

/** One unary call; resolves with the response message bytes, rejects with grpc-status != 0. */
function unary(path: string, req: Uint8Array): Promise<Buffer> {
  const s = session;
  if (s === undefined) throw new Error('no session');
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      stream.close();
      reject(new Error(`${path}: timed out`));
    }, callTimeoutMs);
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > responseBytesMax) {
        stream.close();
        reject(new Error('response too large'));
        return;
      }
      chunks.push(c);
    });
    let status = '';
    let message = '';
    stream.on('trailers', (t) => {
      status = String(t['grpc-status']);
      message = String(t['grpc-message'] ?? '');
    });
    stream.on('response', (h) => {
      if (h['grpc-status'] !== undefined) {
        status = String(h['grpc-status']);
        message = String(h['grpc-message'] ?? '');
      }
    });
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      if (status !== '0') {
        reject(new Error(`${path}: grpc-status ${status} ${decodeURIComponent(message)}`));
        return;
      }
      const msgs = unframe(Buffer.concat(chunks));
      if (msgs.length !== 1) {
        reject(new Error(`${path}: ${msgs.length} messages`));
        return;
      }
      resolve(msgs[0]);
    });
    stream.end(frame(req));
  });
}

test.before(async () => {
  if (!etcdAvailable) return;
  const clientPort = await freePort();
  const peerPort = await freePort();
  dataDir = mkdtempSync(join(tmpdir(), 'tetcd-proto-etcd-'));
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  etcd = spawn(
    'etcd',
    [
      '--name',
      'p1',
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `p1=${peer}`,
      '--log-level',
      'error',
    ],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    // A session that met a refused connection is dead: start a new one per attempt.
    session?.destroy();
    session = connect(client);
    session.on('error', () => {
      /* reported by the calls */
    });
    try {
      await unary('/etcdserverpb.Maintenance/Status', rpc.encodeStatusRequest({}));
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

test.after(() => {
  session?.destroy();
  if (etcd !== undefined && etcd.exitCode === null) etcd.kill('SIGKILL');
  if (dataDir !== '') rmSync(dataDir, { recursive: true, force: true });
});

// Whatever happens to the tests, the member dies with this process.
process.on('exit', () => {
  if (etcd !== undefined && etcd.exitCode === null) etcd.kill('SIGKILL');
});

const t = etcdAvailable ? test : test.skip;
if (!etcdAvailable) {
  if (process.env.TETCD_REQUIRE_ORACLE === '1') {
    test('etcd is installed (TETCD_REQUIRE_ORACLE=1)', () => assert.unreachable('etcd not found on PATH; apt-get install etcd-server'));
  } else {
    process.stdout.write('etcd not installed: skipping the wire test against real etcd (apt-get install etcd-server)\n');
  }
}

t('Put, Range, Txn with a nested txn and a range compare, DeleteRange, against real etcd', async () => {
  const key = Buffer.from('proto/ü/key');
  const put = rpc.decodePutResponse(await unary('/etcdserverpb.KV/Put', rpc.encodePutRequest({ key, value: Buffer.from('v1') })));
  assert.is(typeof put.header?.cluster_id, 'bigint');
  assert.ok((put.header?.member_id ?? 0n) > 0n);
  const rev1 = put.header?.revision ?? 0;
  assert.ok(rev1 >= 2);
  const put2 = rpc.decodePutResponse(
    await unary('/etcdserverpb.KV/Put', rpc.encodePutRequest({ key, value: Buffer.alloc(70000, 7), prev_kv: true })),
  );
  assert.is(Buffer.from(put2.prev_kv?.value ?? []).toString(), 'v1');
  assert.is(put2.prev_kv?.mod_revision, rev1);
  const range = rpc.decodeRangeResponse(
    await unary(
      '/etcdserverpb.KV/Range',
      rpc.encodeRangeRequest({
        key: Buffer.from('proto/'),
        range_end: Buffer.from('proto0'),
        sort_order: rpc.RangeRequest_SortOrder.DESCEND,
      }),
    ),
  );
  assert.is(range.count, 1);
  assert.is(range.kvs[0].value.length, 70000);
  assert.is(range.kvs[0].version, 2);
  assert.is(range.kvs[0].lease, 0n);
  const txn = rpc.decodeTxnResponse(
    await unary(
      '/etcdserverpb.KV/Txn',
      rpc.encodeTxnRequest({
        compare: [
          {
            key: Buffer.from('proto/'),
            range_end: Buffer.from('proto0'),
            target: rpc.Compare_CompareTarget.VERSION,
            result: rpc.Compare_CompareResult.GREATER,
            version: 0,
          },
        ],
        success: [
          {
            request_txn: {
              compare: [{ key, target: rpc.Compare_CompareTarget.VALUE, value: Buffer.from('nope') }],
              success: [],
              failure: [{ request_put: { key, value: Buffer.from('v3') } }, { request_range: { key } }],
            },
          },
        ],
      }),
    ),
  );
  assert.ok(txn.succeeded);
  const inner = txn.responses[0].response_txn;
  assert.is(inner?.succeeded, false);
  assert.ok(inner?.responses[0].response_put !== undefined);
  assert.is(Buffer.from(inner?.responses[1].response_range?.kvs[0].value ?? []).toString(), 'v3');
  const del = rpc.decodeDeleteRangeResponse(
    await unary('/etcdserverpb.KV/DeleteRange', rpc.encodeDeleteRangeRequest({ key, prev_kv: true })),
  );
  assert.is(del.deleted, 1);
  assert.is(Buffer.from(del.prev_kvs[0].key).toString(), 'proto/ü/key');
});

t('leases (64-bit IDs), members, status, alarms against real etcd', async () => {
  const id = 0x7fffffffffff0001n;
  const grant = rpc.decodeLeaseGrantResponse(
    await unary('/etcdserverpb.Lease/LeaseGrant', rpc.encodeLeaseGrantRequest({ TTL: 60, ID: id })),
  );
  assert.is(grant.ID, id);
  assert.is(grant.TTL, 60);
  await unary('/etcdserverpb.KV/Put', rpc.encodePutRequest({ key: Buffer.from('leased'), lease: id }));
  const ttl = rpc.decodeLeaseTimeToLiveResponse(
    await unary('/etcdserverpb.Lease/LeaseTimeToLive', rpc.encodeLeaseTimeToLiveRequest({ ID: id, keys: true })),
  );
  assert.is(ttl.grantedTTL, 60);
  assert.equal(
    ttl.keys.map((k) => Buffer.from(k).toString()),
    ['leased'],
  );
  const missing = rpc.decodeLeaseTimeToLiveResponse(
    await unary('/etcdserverpb.Lease/LeaseTimeToLive', rpc.encodeLeaseTimeToLiveRequest({ ID: 1n })),
  );
  assert.is(missing.TTL, -1);
  const leases = rpc.decodeLeaseLeasesResponse(await unary('/etcdserverpb.Lease/LeaseLeases', rpc.encodeLeaseLeasesRequest({})));
  assert.ok(leases.leases.some((l) => l.ID === id));
  const members = rpc.decodeMemberListResponse(await unary('/etcdserverpb.Cluster/MemberList', rpc.encodeMemberListRequest({})));
  assert.is(members.members.length, 1);
  assert.is(members.members[0].name, 'p1');
  assert.is(members.members[0].ID, members.header?.member_id);
  const status = rpc.decodeStatusResponse(await unary('/etcdserverpb.Maintenance/Status', rpc.encodeStatusRequest({})));
  assert.is(status.version, '3.4.23');
  assert.is(status.leader, members.members[0].ID);
  assert.ok(status.dbSize > 0 && status.raftIndex > 0);
  const alarms = rpc.decodeAlarmResponse(
    await unary('/etcdserverpb.Maintenance/Alarm', rpc.encodeAlarmRequest({ action: rpc.AlarmRequest_AlarmAction.GET })),
  );
  assert.equal(alarms.alarms, []);
  await unary('/etcdserverpb.Lease/LeaseRevoke', rpc.encodeLeaseRevokeRequest({ ID: id }));
  const gone = rpc.decodeRangeResponse(await unary('/etcdserverpb.KV/Range', rpc.encodeRangeRequest({ key: Buffer.from('leased') })));
  assert.is(gone.count, 0);
});

t('a Watch stream: create, a put and a delete arrive as events', async () => {
  const s = session;
  if (s === undefined) throw new Error('no session');
  const stream = s.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
  const received: rpc.WatchResponse[] = [];
  let pending = Buffer.alloc(0);
  const waiters: (() => void)[] = [];
  stream.on('data', (c: Buffer) => {
    pending = Buffer.concat([pending, c]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const len = pending.readUInt32BE(1);
      received.push(rpc.decodeWatchResponse(pending.subarray(5, 5 + len)));
      pending = pending.subarray(5 + len);
    }
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = async (n: number): Promise<void> => {
    const deadline = Date.now() + callTimeoutMs;
    while (received.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${received.length} watch responses`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
  };
  stream.write(
    frame(
      rpc.encodeWatchRequest({ create_request: { key: Buffer.from('w/'), range_end: Buffer.from('w0'), prev_kv: true, watch_id: 42 } }),
    ),
  );
  await waitFor(1);
  assert.ok(received[0].created);
  assert.is(received[0].watch_id, 42);
  await unary('/etcdserverpb.KV/Put', rpc.encodePutRequest({ key: Buffer.from('w/a'), value: Buffer.from('1') }));
  await unary('/etcdserverpb.KV/DeleteRange', rpc.encodeDeleteRangeRequest({ key: Buffer.from('w/a') }));
  await waitFor(3);
  const events = received.slice(1).flatMap((r) => r.events);
  assert.is(events.length, 2);
  assert.is(events[0].type, Event_EventType.PUT);
  assert.is(Buffer.from(events[0].kv?.value ?? []).toString(), '1');
  assert.is(events[1].type, Event_EventType.DELETE);
  assert.is(Buffer.from(events[1].prev_kv?.value ?? []).toString(), '1');
  stream.write(frame(rpc.encodeWatchRequest({ cancel_request: { watch_id: 42 } })));
  await waitFor(4);
  assert.ok(received[3].canceled);
  stream.close();
});

t('etcd rejects what it should with the messages we expect (our encoding of bad requests)', async () => {
  let text = '';
  try {
    await unary('/etcdserverpb.KV/Put', rpc.encodePutRequest({ value: Buffer.from('x') }));
  } catch (e) {
    text = String(e);
  }
  assert.ok(text.includes('etcdserver: key is not provided'), text);
  text = '';
  try {
    await unary('/etcdserverpb.KV/Range', rpc.encodeRangeRequest({ key: Buffer.from('a'), revision: 2 ** 40 }));
  } catch (e) {
    text = String(e);
  }
  assert.ok(text.includes('required revision is a future revision'), text);
});

test.run();
