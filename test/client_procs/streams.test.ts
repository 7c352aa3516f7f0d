// Streams on the client-process channel, end to end in one process: a gRPC client → the client
// process's gRPC server and Forwarder → a Unix socket → the member's MemberChannel → test RPCs served
// through the same table path as production ones. Open, messages both ways, half-close, cancel and end;
// the per-call context; backpressure when the gRPC client stops reading; a bad frame closes one channel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import http2, { constants as h2, type ClientHttp2Session } from 'node:http2';
import type { SecureContextOptions } from 'node:tls';
import { join } from 'node:path';
import { GrpcServer } from '../../src/api/grpc/server.js';
import { ClientListener } from '../../src/api/listener.js';
import { Forwarder, FORWARDER_DEFAULTS } from '../../src/client_procs/forwarder.js';
import { MemberChannel, MEMBER_CHANNEL_DEFAULTS } from '../../src/client_procs/member_channel.js';
import { MEMBER_STREAM_DEFAULTS, type MemberStreamLimits } from '../../src/client_procs/member_stream.js';
import { FrameWriter, FrameKind, ContextSizer, type WireContext } from '../../src/client_procs/channel.js';
import { newLogger } from '../../src/log.js';
import { encodeEcho } from '../api/helpers.js';
import { tempDir } from '../helpers/cleanup.js';
import {
  FAKE_SERVER,
  TestMethods,
  TEST_METHOD_IDS,
  hooks,
  probes,
  testChannelMethods,
  type Probe,
  type SeenContext,
} from './fixtures/test_rpcs.js';
import { RawStream, connect, sendRaw } from './fixtures/raw_stream.js';
import { ChannelMethods } from '../../src/client_procs/methods.js';
import { bidiRpc } from '../../src/api/rpc.js';
import { Errors } from '../../src/errors.js';
import { Watch, encodeWatchRequest, decodeWatchResponse, type WatchRequest, type WatchResponseInit } from '../../src/proto/rpc.js';
import { tlsMaterial, type TlsMaterial } from './fixtures/tls_material.js';

const MEMBER_ID = 0x8e9e05c52164694dn;
const log = newLogger('fatal');
const HTTP = { healthy: async () => true, metricsText: () => '' };

interface Rig {
  member: MemberChannel;
  fwd: Forwarder;
  session: ClientHttp2Session;
  memberClosed: Promise<void>;
  close(): Promise<void>;
}

async function socketPair(): Promise<{ a: net.Socket; b: net.Socket; server: net.Server }> {
  const path = join(tempDir('tetcd-streams-'), 'channel.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(path, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const a = net.connect(path);
  const b = await accepted;
  return { a, b, server };
}

async function rig(
  streamLimits: MemberStreamLimits = MEMBER_STREAM_DEFAULTS,
  grpcOptions = {},
  tlsm?: TlsMaterial,
  methods: () => ChannelMethods = testChannelMethods,
): Promise<Rig> {
  const { a: clientSide, b: memberSide, server } = await socketPair();
  const member = new MemberChannel(memberSide, FAKE_SERVER, HTTP, log, MEMBER_CHANNEL_DEFAULTS, { methods: methods(), streamLimits });
  const memberClosed = new Promise<void>((r) => {
    member.onClose = r;
  });
  const fwd = new Forwarder(
    clientSide,
    { maxTxnOps: 128, maxRequestBytes: 1 << 20 },
    { memberId: MEMBER_ID },
    FORWARDER_DEFAULTS,
    methods(),
  );
  const grpc = new GrpcServer({ engine: (process.env.TETCD_GRPC_ENGINE || undefined) as 'raw' | 'node' | undefined, ...grpcOptions });
  fwd.register(grpc);
  const listener =
    tlsm === undefined
      ? await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc })
      : await ClientListener.listen({
          url: 'https://127.0.0.1:0',
          grpc,
          tls: {
            key: tlsm.serverKey,
            cert: tlsm.serverCert,
            ca: tlsm.ca,
            requestCert: true,
            rejectUnauthorized: false,
          } as SecureContextOptions,
        });
  const session =
    tlsm === undefined
      ? await connect(listener.port)
      : http2.connect(`https://127.0.0.1:${listener.port}`, { ca: tlsm.ca, key: tlsm.clientKey, cert: tlsm.clientCert });
  session.on('error', () => {});
  return {
    member,
    fwd,
    session,
    memberClosed,
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

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function lastProbe(): Probe {
  const p = probes[probes.length - 1];
  assert.ok(p !== undefined, 'serve ran');
  return p;
}

test('a server stream opens with its request, carries messages and ends with the status serve decides', async () => {
  const r = await rig();
  try {
    const ok = RawStream.open(r.session, TestMethods.Count.path, {}, { n: 5, text: 'polite', payload: Buffer.from('abc') });
    assert.equal(await ok.status, { code: 0, message: '' });
    assert.equal(
      ok.messages.map((m) => m.n),
      [1, 2, 3, 4, 5],
    );
    assert.ok(Buffer.from(ok.messages[4].payload).equals(Buffer.from('abc')));
    const failed = RawStream.open(r.session, TestMethods.Count.path, {}, { n: 2, text: 'fail' });
    assert.equal(await failed.status, { code: 9, message: 'count: told to fail' });
    assert.is(failed.messages.length, 2, 'the messages before the status arrive');
    const refused = RawStream.open(r.session, TestMethods.Count.path, {}, { n: 2_000_000 });
    assert.equal(await refused.status, { code: 3, message: 'count: too many' }, 'validated in the client process');
    await waitFor('streams to be forgotten', () => r.member.streamsOpen === 0 && r.fwd.streamsOpen === 0);
  } finally {
    await r.close();
  }
});

test('a bidi stream carries messages both ways; half-close reaches serve, which ends it', async () => {
  const r = await rig();
  try {
    const s = RawStream.open(r.session, TestMethods.Echo.path);
    for (let i = 1; i <= 3; i++) s.send({ n: i, text: `m${i}` });
    await waitFor('three echoes', () => s.messages.length === 3);
    assert.equal(
      s.messages.map((m) => m.text),
      ['echo:m1', 'echo:m2', 'echo:m3'],
    );
    const p = lastProbe();
    assert.is(p.halfClosed, false);
    s.halfClose();
    assert.equal(await s.status, { code: 0, message: '' });
    assert.is(s.messages[3].text, 'half-closed');
    assert.is(p.halfClosed, true);
    assert.is(p.cancel, undefined, 'serve ended it: no cancellation');
    // serve ending the stream by itself, while the client still sends.
    const e = RawStream.open(r.session, TestMethods.Echo.path);
    e.send({ n: 1, text: 'end' });
    assert.equal(await e.status, { code: 0, message: '' });
    await waitFor('streams to be forgotten', () => r.member.streamsOpen === 0 && r.fwd.streamsOpen === 0);
  } finally {
    await r.close();
  }
});

test('an invalid or undecodable bidi message ends the stream in the client process and cancels it on the member', async () => {
  const r = await rig();
  try {
    const s = RawStream.open(r.session, TestMethods.Echo.path);
    s.send({ n: 1, text: 'fine' });
    await waitFor('an echo', () => s.messages.length === 1);
    const p = lastProbe();
    s.send({ n: 2, text: 'invalid' });
    assert.equal(await s.status, { code: 3, message: 'echo: invalid message' });
    await waitFor('the member to hear of it', () => p.cancel !== undefined);
    assert.is(p.cancel!.code, 3);
    assert.equal(
      p.received.map((m) => m.text),
      ['fine'],
      'the invalid message never reached serve',
    );
    await waitFor('streams to be forgotten', () => r.member.streamsOpen === 0);
    // A message that does not decode fails in the client process's gRPC layer; the member hears of it.
    const m = RawStream.open(r.session, TestMethods.Echo.path);
    m.send({ n: 1, text: 'fine' });
    await waitFor('an echo', () => m.messages.length === 1);
    const pm = lastProbe();
    m.req.write(Buffer.from([0, 0, 0, 0, 2, 0xff, 0xff]));
    assert.is((await m.status).code, 13);
    await waitFor('the member to hear of it', () => pm.cancel !== undefined);
    assert.is(pm.cancel!.code, 13);
    await waitFor('streams to be forgotten', () => r.member.streamsOpen === 0 && r.fwd.streamsOpen === 0);
  } finally {
    await r.close();
  }
});

test('a gRPC client that cancels, or whose deadline passes, cancels the stream on the member', async () => {
  const r = await rig();
  try {
    const s = RawStream.open(r.session, TestMethods.Count.path, {}, { n: 1, text: 'hold' });
    await waitFor('the first message', () => s.messages.length === 1);
    const p = lastProbe();
    s.req.close(h2.NGHTTP2_CANCEL);
    await waitFor('onCancel', () => p.cancel !== undefined);
    assert.is(p.cancel!.code, 1, 'CANCELLED');
    assert.ok(p.ctx.cancelled);
    await waitFor('streams to be forgotten', () => r.member.streamsOpen === 0 && r.fwd.streamsOpen === 0);

    const d = RawStream.open(r.session, TestMethods.Count.path, { 'grpc-timeout': '150m' }, { n: 1, text: 'hold' });
    await waitFor('the first message', () => d.messages.length === 1);
    const pd = lastProbe();
    assert.ok(pd.ctx.deadlineMs > Date.now() && pd.ctx.deadlineMs <= Date.now() + 200, 'the deadline arrived');
    assert.is((await d.status).code, 4, 'DEADLINE_EXCEEDED');
    await waitFor('onCancel', () => pd.cancel !== undefined);
    assert.is(pd.cancel!.code, 4);
  } finally {
    await r.close();
  }
});

test("the context (token metadata, peer, deadline) reaches the member's serve", async () => {
  const r = await rig();
  try {
    const { unaryCall } = await import('../helpers/grpc-kv.js');
    const { decodeEcho } = await import('../api/helpers.js');
    // With credentials the peer travels too; without, only the deadline does (the hot path stays small).
    const before = Date.now();
    const withToken = await unaryCallWithHeaders(r.session, TestMethods.Ctx.path, { token: 'tok-1', 'grpc-timeout': '5S' });
    const seen = JSON.parse(withToken.text) as SeenContext;
    assert.is(seen.token, 'tok-1');
    assert.is(seen.certCommonName, null);
    assert.is(seen.peerAddress, '127.0.0.1');
    assert.ok(
      seen.deadlineMs !== null && seen.deadlineMs >= before + 4900 && seen.deadlineMs <= Date.now() + 5100,
      `deadline ${seen.deadlineMs}`,
    );
    const auth = JSON.parse((await unaryCallWithHeaders(r.session, TestMethods.Ctx.path, { authorization: 'tok-2' })).text) as SeenContext;
    assert.is(auth.token, 'tok-2', 'etcd also reads the token from `authorization`');
    assert.is(auth.deadlineMs, null);
    const plain = JSON.parse(decodeEcho(await unaryCall(r.session, TestMethods.Ctx.path, encodeEcho({}), 5000)).text) as SeenContext;
    assert.equal(plain.token, null);
    // Streams always carry the peer.
    const s = RawStream.open(r.session, TestMethods.Echo.path, { token: 'tok-3', 'grpc-timeout': '10S' });
    s.send({ n: 1, text: 'x' });
    await waitFor('an echo', () => s.messages.length === 1);
    const p = lastProbe();
    assert.is(p.ctx.token, 'tok-3');
    assert.is(p.ctx.peerAddress, '127.0.0.1');
    assert.ok(p.ctx.deadlineMs > Date.now() + 9000);
    s.halfClose();
    await s.status;
  } finally {
    await r.close();
  }
});

test("a verified client certificate's CN crosses the channel with unary calls and streams", async () => {
  const r = await rig(MEMBER_STREAM_DEFAULTS, {}, tlsMaterial('client-7'));
  try {
    const seen = JSON.parse((await unaryCallWithHeaders(r.session, TestMethods.Ctx.path, {})).text) as SeenContext;
    assert.is(seen.certCommonName, 'client-7', 'a certificate counts as a credential: the context block is sent');
    assert.is(seen.token, null);
    assert.is(seen.peerAddress, '127.0.0.1');
    const s = RawStream.open(r.session, TestMethods.Echo.path);
    s.send({ n: 1, text: 'x' });
    await waitFor('an echo', () => s.messages.length === 1);
    assert.is(lastProbe().ctx.certCommonName, 'client-7');
    s.halfClose();
    assert.is((await s.status).code, 0);
  } finally {
    await r.close();
  }
});

test('backpressure: a gRPC client that stops reading stops a polite producer; the member queues under its bound', async () => {
  const limits: MemberStreamLimits = { ...MEMBER_STREAM_DEFAULTS, streamQueueBytesHigh: 64 * 1024, streamQueueBytesMax: 1024 * 1024 };
  const r = await rig(limits, { sendQueueBytesHigh: 64 * 1024 });
  let maxQueued = 0;
  hooks.afterWrite = () => {
    maxQueued = Math.max(maxQueued, r.member.streamQueuedBytes);
  };
  try {
    const payload = Buffer.alloc(16 * 1024, 7);
    const probesBefore = probes.length;
    const n = 2000; // 32 MiB in all
    const s = RawStream.open(r.session, TestMethods.Count.path, {}, { n, text: 'polite', payload });
    s.req.pause();
    await waitFor('serve to start', () => probes.length > probesBefore);
    const p = lastProbe();
    // Wait until the producer stands still.
    let last = -1;
    await waitFor(
      'the producer to stop',
      () => {
        const stalled = p.writes === last && p.sawUnwritable;
        last = p.writes;
        return stalled;
      },
      10_000,
    );
    await new Promise((res) => setTimeout(res, 100));
    assert.ok(p.sawUnwritable, 'the producer saw writable=false');
    assert.ok(p.writes < n / 4, `the producer stopped early (${p.writes} of ${n} writes)`);
    const frameBytes = 9 + 5 + 16 * 1024 + 8;
    assert.ok(maxQueued <= limits.streamQueueBytesHigh + frameBytes, `member-side queue stayed under the bound (${maxQueued})`);
    assert.ok(r.member.streamQueuedBytes <= limits.streamQueueBytesHigh + frameBytes);
    assert.is(p.cancel, undefined);
    // Reading again lets everything through, in order.
    s.req.resume();
    assert.equal(await s.status, { code: 0, message: '' });
    assert.is(s.messages.length, n);
    assert.ok(s.messages.every((m, i) => m.n === i + 1));
    assert.is(r.member.streamQueuedBytes, 0);
  } finally {
    hooks.afterWrite = undefined;
    await r.close();
  }
});

test('backpressure: a producer that ignores it is ended with RESOURCE_EXHAUSTED and told so', async () => {
  const limits: MemberStreamLimits = { ...MEMBER_STREAM_DEFAULTS, streamQueueBytesHigh: 64 * 1024, streamQueueBytesMax: 512 * 1024 };
  const r = await rig(limits, { sendQueueBytesHigh: 64 * 1024 });
  let maxQueued = 0;
  hooks.afterWrite = () => {
    maxQueued = Math.max(maxQueued, r.member.streamQueuedBytes);
  };
  try {
    const payload = Buffer.alloc(16 * 1024, 7);
    const probesBefore = probes.length;
    const s = RawStream.open(r.session, TestMethods.Count.path, {}, { n: 100_000, text: 'ignore', payload });
    s.req.pause();
    await waitFor('serve to start', () => probes.length > probesBefore);
    const p = lastProbe();
    await waitFor('the stream to be cut', () => p.cancel !== undefined, 10_000);
    assert.is(p.cancel!.code, 8, 'RESOURCE_EXHAUSTED');
    assert.ok(p.ctx.cancelled);
    assert.ok(p.writes < 1000, `the producer was stopped (${p.writes} writes)`);
    const frameBytes = 9 + 5 + 16 * 1024 + 8;
    assert.ok(maxQueued <= limits.streamQueueBytesMax + frameBytes, `member-side queue stayed under the hard bound (${maxQueued})`);
    assert.is(r.member.streamQueuedBytes, 0, 'the queue was dropped');
    assert.is(r.member.streamsOpen, 0);
    s.req.resume();
    const st = await s.status;
    assert.is(st.code, 8);
    assert.match(st.message, /does not read its stream/);
  } finally {
    hooks.afterWrite = undefined;
    await r.close();
  }
});

test('a malformed frame closes that channel, ending only its streams', async () => {
  const good = await rig();
  const { a: clientSide, b: memberSide, server } = await socketPair();
  try {
    const kept = RawStream.open(good.session, TestMethods.Echo.path);
    kept.send({ n: 1, text: 'before' });
    await waitFor('an echo', () => kept.messages.length === 1);

    const bad = new MemberChannel(memberSide, FAKE_SERVER, HTTP, log, MEMBER_CHANNEL_DEFAULTS, { methods: testChannelMethods() });
    const badClosed = new Promise<void>((res) => {
      bad.onClose = res;
    });
    // A well-formed Open first, so the bad channel has a stream to lose.
    const w = new FrameWriter(clientSide);
    const ctx: WireContext = { token: undefined, certCommonName: undefined, peerAddress: '10.0.0.1', requireLeader: false };
    const sizer = new ContextSizer();
    sizer.size(ctx);
    w.writeCallWithContext(FrameKind.Open, 7, TEST_METHOD_IDS.get(TestMethods.Echo.path)!, 0, ctx, sizer, new Uint8Array(0));
    await waitFor('the stream to open', () => bad.streamsOpen === 1);
    const lost = lastProbe();
    assert.is(lost.ctx.peerAddress, '10.0.0.1');
    // A frame kind nobody knows.
    clientSide.write(Buffer.from([0, 0, 0, 5, 77, 0, 0, 0, 7]));
    await badClosed;
    assert.is(lost.cancel?.code, 14, 'its stream ended (UNAVAILABLE)');
    assert.is(bad.streamsOpen, 0);

    kept.send({ n: 2, text: 'after' });
    await waitFor('another echo', () => kept.messages.length === 2);
    assert.is(kept.messages[1].text, 'echo:after', 'the other channel serves on');
    kept.halfClose();
    assert.is((await kept.status).code, 0);
  } finally {
    clientSide.destroy();
    memberSide.destroy();
    server.close();
    await good.close();
  }
});

test('a Watch-shaped bidi RPC plugs into the table and crosses the channel under its fixed ID', async () => {
  // What the Watch issue will add to RPCS, reduced to answering every create request.
  const watchStub = bidiRpc(Watch.methods.Watch, {
    validate: (req: WatchRequest) => {
      if (req.create_request !== undefined && req.create_request.key.length === 0) throw Errors.EmptyKey();
    },
    serve: (_s, stream, ctx) => {
      let nextId = 0;
      stream.onMessage = (req) => {
        if (req.create_request !== undefined)
          stream.write({ watch_id: nextId++, created: true, cancel_reason: ctx.token ?? '' } as WatchResponseInit);
      };
      stream.onHalfClose = () => stream.end();
    },
  });
  const r = await rig(MEMBER_STREAM_DEFAULTS, {}, undefined, () => new ChannelMethods([watchStub]));
  try {
    const s = RawStream.open(r.session, Watch.methods.Watch.path, { token: 'w-tok' });
    sendRaw(s, encodeWatchRequest({ create_request: { key: Buffer.from('a') } }));
    sendRaw(s, encodeWatchRequest({ create_request: { key: Buffer.from('b') } }));
    await waitFor('two created responses', () => s.raw.length === 2);
    const got = s.raw.map((b) => decodeWatchResponse(b));
    assert.equal(
      got.map((w) => [w.watch_id, w.created, w.cancel_reason]),
      [
        [0, true, 'w-tok'],
        [1, true, 'w-tok'],
      ],
    );
    sendRaw(s, encodeWatchRequest({ create_request: { key: Buffer.alloc(0) } }));
    assert.equal(await s.status, { code: 3, message: 'etcdserver: key is not provided' });
  } finally {
    await r.close();
  }
});

/** A unary call with extra request headers; resolves with the decoded Echo. */
async function unaryCallWithHeaders(session: ClientHttp2Session, path: string, headers: Record<string, string>): Promise<{ text: string }> {
  const s = RawStream.open(session, path, headers, {});
  const st = await s.status;
  if (st.code !== 0) throw new Error(`status ${st.code}: ${st.message}`);
  return { text: s.messages[0].text };
}

test.run();
