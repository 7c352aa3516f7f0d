// LeaseKeepAlive streams on the client-process channel, in one process: raw HTTP/2 gRPC clients → the client
// process's gRPC server and Forwarder → a Unix socket → the member's MemberChannel over a fake member.
// - N streams × one keep-alive each in one turn cost the member one LeaseKeepAlives call, not N Opens and
//   N Messages (the frames reaching the member are counted); each stream gets its answer, in order.
// - A stream that requires a leader (`hasleader`) is refused without one and ended when it is lost.
// - A renewal that fails ends its stream with the member's error; the other streams of the batch go on.
// - A flood on one stream is answered in order while the client process holds a bounded number of
//   requests; against a member that never answers, requests and batches in flight stay bounded.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import type { ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { GrpcServer } from '../../src/api/grpc/server.js';
import { ClientListener } from '../../src/api/listener.js';
import { Forwarder, FORWARDER_DEFAULTS, type ForwarderLimits } from '../../src/client_procs/forwarder.js';
import { MemberChannel, MEMBER_CHANNEL_DEFAULTS } from '../../src/client_procs/member_channel.js';
import { FrameKind, FrameReader, CALL_HEAD_BYTES, type FrameSink } from '../../src/client_procs/channel.js';
import { InternalMethod } from '../../src/client_procs/methods.js';
import { decodeKeepAliveBatch } from '../../src/client_procs/keepalive_batch.js';
import { KEEPALIVE_BATCHES_IN_FLIGHT_MAX } from '../../src/client_procs/keepalive_streams.js';
import type { MemberApi } from '../../src/server/member_api.js';
import { Lease, decodeLeaseKeepAliveResponse, encodeLeaseKeepAliveRequest, type LeaseKeepAliveResponse } from '../../src/proto/rpc.js';
import { Errors } from '../../src/errors.js';
import { newLogger } from '../../src/log.js';
import { RawStream, connect, sendRaw } from './fixtures/raw_stream.js';
import { tempDir } from '../helpers/cleanup.js';

const MEMBER_ID = 0x8e9e05c52164694dn;
const KEEPALIVE = Lease.methods.LeaseKeepAlive.path;
const log = newLogger('fatal');
const HTTP = { healthy: async () => true, metricsText: () => '' };
const HEADER = { cluster_id: 0x1234n, member_id: MEMBER_ID, revision: 77, raft_term: 3 };

/** Counts the frames that reach the member, by kind (and the LeaseKeepAlives calls and their IDs). */
class FrameTap implements FrameSink {
  readonly byKind = new Map<number, number>();
  readonly batches: bigint[][] = [];
  private readonly reader = new FrameReader(this);
  constructor(socket: net.Socket) {
    socket.on('data', (c: Buffer) => this.reader.push(c));
  }
  frames(kind: number): number {
    return this.byKind.get(kind) ?? 0;
  }
  reset(): void {
    this.byKind.clear();
    this.batches.length = 0;
  }
  onFrame(buf: Buffer, start: number, end: number): void {
    const kind = buf[start];
    this.byKind.set(kind, this.frames(kind) + 1);
    if (kind === FrameKind.Call && buf.readUInt16BE(start + 5) === InternalMethod.LeaseKeepAlives) {
      this.batches.push(decodeKeepAliveBatch(buf.subarray(start + CALL_HEAD_BYTES - 4, end)));
    }
  }
  onBadFrame(reason: string): void {
    throw new Error(reason);
  }
}

/** A fake member: lease 404 does not exist, 13 fails to renew; `renew` can be replaced. */
function fakeMember() {
  let lost: (() => void) | undefined;
  const m = {
    limits: { maxTxnOps: 128, maxRequestBytes: 1 << 20, quotaBackendBytes: 0 },
    hasLeader: true,
    header: () => ({ ...HEADER }),
    renew: (id: bigint): number | Promise<number> => {
      if (id === 404n) return -1;
      if (id === 13n) return Promise.reject(Errors.Timeout());
      return 30;
    },
    leaseRenew(id: bigint) {
      return m.renew(id);
    },
    onLeaderLost(fn: () => void) {
      lost = fn;
      return () => {
        lost = undefined;
      };
    },
    loseLeader() {
      const fn = lost;
      lost = undefined;
      fn?.();
    },
    get listening() {
      return lost !== undefined;
    },
  };
  return m;
}

async function rig(keepAliveBatches = true, limits: ForwarderLimits = FORWARDER_DEFAULTS) {
  const dir = tempDir('tetcd-keepalive-channel-');
  const server = net.createServer();
  const path = join(dir, 'channel.sock');
  await new Promise<void>((r) => server.listen(path, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const clientSide = net.connect(path);
  const memberSide = await accepted;
  const tap = new FrameTap(memberSide);
  const member = fakeMember();
  const channel = new MemberChannel(memberSide, member as unknown as MemberApi, HTTP, log, MEMBER_CHANNEL_DEFAULTS);
  const fwd = new Forwarder(clientSide, { maxTxnOps: 128, maxRequestBytes: 1 << 20 }, { memberId: MEMBER_ID }, limits, undefined, {
    keepAliveBatches,
  });
  const grpc = new GrpcServer({ engine: (process.env.TETCD_GRPC_ENGINE || undefined) as 'raw' | 'node' | undefined });
  fwd.register(grpc);
  const listener = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc });
  const session: ClientHttp2Session = await connect(listener.port);
  session.on('error', () => {});
  return {
    tap,
    member,
    channel,
    fwd,
    session,
    open: (headers = {}) => RawStream.open(session, KEEPALIVE, headers),
    async close() {
      session.destroy();
      await grpc.shutdown({ graceful: false });
      await listener.close(100);
      clientSide.destroy();
      memberSide.destroy();
      server.close();
    },
  };
}

const keepAlive = (s: RawStream, id: bigint): void => sendRaw(s, encodeLeaseKeepAliveRequest({ ID: id }));
const answers = (s: RawStream): LeaseKeepAliveResponse[] => s.raw.map((b) => decodeLeaseKeepAliveResponse(b));

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** N streams, each sends one keep-alive in the same turn; returns the frames the member saw for them. */
async function oneEach(keepAliveBatches: boolean, n: number) {
  const r = await rig(keepAliveBatches);
  try {
    const streams = Array.from({ length: n }, () => r.open());
    // Let every stream open first (without batches each costs an Open frame), then count only the requests.
    await new Promise((res) => setTimeout(res, 100));
    r.tap.reset();
    for (let i = 0; i < n; i++) keepAlive(streams[i], BigInt(i % 2 === 0 ? 1000 + i : 404));
    await waitFor('every answer', () => streams.every((s) => s.raw.length === 1));
    for (let i = 0; i < n; i++) {
      const [a] = answers(streams[i]);
      assert.equal(
        [a.header?.revision, a.header?.member_id, a.header?.raft_term, a.header?.cluster_id, a.ID, a.TTL],
        [77, MEMBER_ID, 3, 0x1234n, BigInt(i % 2 === 0 ? 1000 + i : 404), i % 2 === 0 ? 30 : 0],
        `stream ${i}`,
      );
    }
    const frames = new Map(r.tap.byKind);
    const batches = r.tap.batches.map((b) => b.length);
    for (const s of streams) s.req.close();
    return { frames, batches };
  } finally {
    await r.close();
  }
}

test('N keep-alive streams × one request in one turn: one LeaseKeepAlives call reaches the member, not N Messages', async () => {
  const N = 200;
  const batched = await oneEach(true, N);
  assert.equal([...batched.frames], [[FrameKind.Call, 1]], 'one frame for every stream');
  assert.equal(batched.batches, [N], 'every renewal in it');
  const unbatched = await oneEach(false, N);
  assert.is(unbatched.frames.get(FrameKind.Message), N, 'without batches: a Message per stream');
  assert.is(unbatched.frames.get(FrameKind.Call), undefined);
});

test('answers come in order per stream; a half-close ends the stream after its answers', async () => {
  const r = await rig();
  try {
    const s = r.open();
    const ids = [1n, 404n, 2n, 404n, 3n];
    for (const id of ids) keepAlive(s, id);
    s.halfClose();
    const st = await s.status;
    assert.is(st.code, 0);
    assert.equal(
      answers(s).map((a) => [a.ID, a.TTL]),
      ids.map((id) => [id, id === 404n ? 0 : 30]),
    );
  } finally {
    await r.close();
  }
});

test("a renewal that fails ends its stream with the member's error; the others of the batch are answered", async () => {
  const r = await rig();
  try {
    const ok = r.open();
    const bad = r.open();
    await new Promise((res) => setTimeout(res, 50));
    keepAlive(bad, 5n);
    keepAlive(bad, 13n);
    keepAlive(bad, 6n);
    keepAlive(ok, 7n);
    assert.equal(await bad.status, { code: Errors.Timeout().code, message: Errors.Timeout().message });
    assert.equal(
      answers(bad).map((a) => a.ID),
      [5n],
      'the answers before the failure, nothing after',
    );
    await waitFor('the other stream', () => ok.raw.length === 1);
    assert.is(answers(ok)[0].TTL, 30);
    keepAlive(ok, 8n);
    await waitFor('the other stream goes on', () => ok.raw.length === 2);
  } finally {
    await r.close();
  }
});

test('a keep-alive stream that requires a leader is refused without one and ended when the member loses it', async () => {
  const r = await rig();
  try {
    r.member.hasLeader = false;
    const refused = r.open({ hasleader: 'true' });
    keepAlive(refused, 1n);
    assert.equal(await refused.status, { code: 14, message: 'etcdserver: no leader' });
    assert.is(refused.raw.length, 0, 'no answer before the refusal');
    r.member.hasLeader = true;
    const strict = r.open({ hasleader: 'true' });
    const plain = r.open();
    keepAlive(strict, 1n);
    keepAlive(plain, 2n);
    await waitFor('answers', () => strict.raw.length === 1 && plain.raw.length === 1);
    assert.ok(r.member.listening, 'the member watches its leader for the stream');
    assert.is(r.channel.streamsOpen, 1, 'one guard on the member, for the strict stream only');
    r.member.loseLeader();
    assert.equal(await strict.status, { code: 14, message: 'etcdserver: no leader' });
    keepAlive(plain, 3n);
    await waitFor('the plain stream goes on', () => plain.raw.length === 2);
    // A strict stream that ends on its own takes its guard on the member with it.
    const other = r.open({ hasleader: 'true' });
    keepAlive(other, 4n);
    await waitFor('answer', () => other.raw.length === 1);
    assert.is(r.channel.streamsOpen, 1);
    other.halfClose();
    assert.is((await other.status).code, 0);
    await waitFor('the guard is gone', () => r.channel.streamsOpen === 0 && !r.member.listening);
  } finally {
    await r.close();
  }
});

test('a flood on one stream is answered in order, each request once', async () => {
  const r = await rig();
  try {
    const s = r.open();
    const N = 20_000;
    // IDs from 1000 up (13, which fails, is not among them); every third one is unknown.
    for (let i = 0; i < N; i++) keepAlive(s, BigInt(i % 3 === 0 ? 404 : 1000 + i));
    await waitFor('every answer', () => s.raw.length === N, 30_000);
    const got = answers(s);
    for (let i = 0; i < N; i++) {
      if (got[i].ID !== BigInt(i % 3 === 0 ? 404 : 1000 + i) || got[i].TTL !== (i % 3 === 0 ? 0 : 30))
        assert.unreachable(`answer ${i} out of order`);
    }
    assert.is(
      r.tap.batches.reduce((a, b) => a + b.length, 0),
      N,
    );
  } finally {
    await r.close();
  }
});

test('a flood past the bytes one stream may hold ends that stream with RESOURCE_EXHAUSTED; the client process held no more', async () => {
  const limit = 16 * 1024;
  const r = await rig(true, { ...FORWARDER_DEFAULTS, streamPendingBytesMax: limit });
  const ka = r.fwd.keepAlives!;
  try {
    // A member that answers late: the flood piles up in the client process.
    r.member.renew = (id) => new Promise<number>((res) => setTimeout(() => res(id === 404n ? -1 : 30), 20));
    const s = r.open();
    const calm = r.open();
    let heldMax = 0;
    const sample = setInterval(() => {
      heldMax = Math.max(heldMax, ka.streamHeldBytesMax);
    }, 1);
    // 20,000 requests of 8 bytes: 160 KB, within the client's HTTP/2 window, far past the limit.
    for (let i = 0; i < 20_000; i++) keepAlive(s, BigInt(1000 + (i % 100)));
    keepAlive(calm, 1n);
    const st = await s.status;
    clearInterval(sample);
    assert.is(st.code, 8, st.message);
    assert.match(st.message, `stream holds over ${limit} request bytes`);
    assert.ok(heldMax <= limit, `held ${heldMax} bytes`);
    await waitFor('the other stream', () => calm.raw.length === 1);
    assert.is(ka.size, 1, 'only the calm stream is left');
  } finally {
    await r.close();
  }
});

test('a member that never answers: batches in flight and bytes held stay bounded, the clients are pushed back', async () => {
  const r = await rig();
  const ka = r.fwd.keepAlives!;
  try {
    r.member.renew = () => new Promise<number>(() => {});
    const STREAMS = 40;
    const streams = Array.from({ length: STREAMS }, () => r.open());
    for (let round = 0; round < 40; round++) {
      for (const s of streams) for (let i = 0; i < 50; i++) keepAlive(s, BigInt(1000 + i));
      await new Promise((res) => setTimeout(res, 5));
    }
    await new Promise((res) => setTimeout(res, 300));
    assert.ok(ka.batchesInFlight <= KEEPALIVE_BATCHES_IN_FLIGHT_MAX, `${ka.batchesInFlight} batches in flight`);
    assert.ok(ka.streamHeldBytesMax <= FORWARDER_DEFAULTS.streamPendingBytesMax, `${ka.streamHeldBytesMax} bytes held by one stream`);
    // One batch in flight per stream, each with what the stream had when it went: at most the queue limit
    // plus what one read of its HTTP/2 data carried; nothing more reaches the member while it is silent.
    const sent = r.tap.batches.reduce((a, b) => a + b.length, 0);
    assert.ok(r.tap.batches.length <= KEEPALIVE_BATCHES_IN_FLIGHT_MAX, `${r.tap.batches.length} batches`);
    assert.ok(sent < STREAMS * 2000, `${sent} renewals sent to the member`);
    assert.ok(streams.every((s) => s.raw.length === 0));
  } finally {
    await r.close();
  }
});

test.run();
