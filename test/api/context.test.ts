// The per-call context and the streaming RPC kinds in-process (--client-workers 0): test RPCs registered
// through registerServices, as the production table is, see the caller's token, peer and deadline, and
// their streams behave as on the client-process channel (test/client_procs/streams.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2, { constants as h2 } from 'node:http2';
import type { SecureContextOptions } from 'node:tls';
import { registerServices } from '../../src/api/services.js';
import { GrpcServer } from '../../src/api/grpc/server.js';
import { ClientListener } from '../../src/api/listener.js';
import { tlsMaterial } from '../client_procs/fixtures/tls_material.js';
import { startServer, type Running } from './helpers.js';
import { FAKE_SERVER, TEST_RPCS, TestMethods, probes, type Probe, type SeenContext } from '../client_procs/fixtures/test_rpcs.js';
import { RawStream, connect } from '../client_procs/fixtures/raw_stream.js';

async function serve(options = {}): Promise<Running> {
  return startServer(options, (g) => registerServices(g, FAKE_SERVER, TEST_RPCS));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function unaryContext(r: Running, headers: Record<string, string>): Promise<SeenContext> {
  const session = await connect(r.port);
  try {
    const s = RawStream.open(session, TestMethods.Ctx.path, headers, {});
    const st = await s.status;
    assert.is(st.code, 0, st.message);
    return JSON.parse(s.messages[0].text) as SeenContext;
  } finally {
    session.destroy();
  }
}

test('the context (token metadata, peer, deadline) reaches serve in-process', async () => {
  const r = await serve();
  try {
    const before = Date.now();
    const seen = await unaryContext(r, { token: 'tok-1', 'grpc-timeout': '5S' });
    assert.is(seen.token, 'tok-1');
    assert.is(seen.certCommonName, null, 'no TLS, no certificate');
    assert.is(seen.peerAddress, '127.0.0.1');
    assert.ok(seen.deadlineMs !== null && seen.deadlineMs >= before + 4900 && seen.deadlineMs <= Date.now() + 5100);
    const auth = await unaryContext(r, { authorization: 'tok-2' });
    assert.is(auth.token, 'tok-2');
    assert.is(auth.deadlineMs, null);
    const plain = await unaryContext(r, {});
    assert.is(plain.token, null);
    assert.is(plain.peerAddress, '127.0.0.1', 'in-process the peer is always known');
  } finally {
    await r.stop();
  }
});

test('streaming RPCs from the table: server stream, bidi with validation, cancellation', async () => {
  const r = await serve();
  const session = await connect(r.port);
  try {
    const count = RawStream.open(session, TestMethods.Count.path, {}, { n: 3, text: 'polite' });
    assert.equal(await count.status, { code: 0, message: '' });
    assert.equal(
      count.messages.map((m) => m.n),
      [1, 2, 3],
    );

    const echo = RawStream.open(session, TestMethods.Echo.path, { token: 'tok-3' });
    echo.send({ n: 1, text: 'a' });
    await waitFor('an echo', () => echo.messages.length === 1);
    const p: Probe = probes[probes.length - 1];
    assert.is(p.ctx.token, 'tok-3');
    echo.send({ n: 2, text: 'invalid' });
    assert.equal(await echo.status, { code: 3, message: 'echo: invalid message' });
    await waitFor('onCancel', () => p.cancel !== undefined);
    assert.is(p.cancel!.code, 3, 'serve hears that its stream ended');
    assert.equal(
      p.received.map((m) => m.text),
      ['a'],
    );

    // A request message that does not decode ends the call in the gRPC layer: serve hears of it too.
    const bad = RawStream.open(session, TestMethods.Echo.path);
    bad.send({ n: 1, text: 'a' });
    await waitFor('an echo', () => bad.messages.length === 1);
    const pb = probes[probes.length - 1];
    bad.req.write(Buffer.from([0, 0, 0, 0, 2, 0xff, 0xff]));
    assert.is((await bad.status).code, 13);
    await waitFor('onCancel', () => pb.cancel !== undefined);
    assert.is(pb.cancel!.code, 13);
    assert.ok(pb.ctx.cancelled);

    const held = RawStream.open(session, TestMethods.Count.path, {}, { n: 1, text: 'hold' });
    await waitFor('a message', () => held.messages.length === 1);
    const ph = probes[probes.length - 1];
    held.req.close(h2.NGHTTP2_CANCEL);
    await waitFor('onCancel', () => ph.cancel !== undefined);
    assert.is(ph.cancel!.code, 1);
  } finally {
    session.destroy();
    await r.stop();
  }
});

test('a producer that ignores backpressure is ended with RESOURCE_EXHAUSTED and told so, in-process too', async () => {
  const r = await serve({ sendQueueBytesHigh: 64 * 1024, sendQueueBytesMax: 512 * 1024 });
  const session = await connect(r.port);
  try {
    const before = probes.length;
    const s = RawStream.open(session, TestMethods.Count.path, {}, { n: 100_000, text: 'ignore', payload: Buffer.alloc(16 * 1024, 1) });
    s.req.pause();
    await waitFor('serve', () => probes.length > before);
    const p = probes[probes.length - 1];
    await waitFor('the stream to be cut', () => p.cancel !== undefined, 10_000);
    assert.is(p.cancel!.code, 8);
    assert.ok(p.sawUnwritable);
    assert.ok(p.writes < 1000, `${p.writes} writes`);
  } finally {
    session.destroy();
    await r.stop();
  }
});

test("a verified client certificate's CN reaches serve; no certificate, no CN", async () => {
  const m = tlsMaterial('client-1');
  const grpc = new GrpcServer({ engine: (process.env.TETCD_GRPC_ENGINE || undefined) as 'raw' | 'node' | undefined });
  registerServices(grpc, FAKE_SERVER, TEST_RPCS);
  const listener = await ClientListener.listen({
    url: 'https://127.0.0.1:0',
    grpc,
    // The listener passes these on to tls.createServer (the Security issue gives them flags of their own).
    tls: { key: m.serverKey, cert: m.serverCert, ca: m.ca, requestCert: true, rejectUnauthorized: false } as SecureContextOptions,
  });
  try {
    for (const [withCert, want] of [
      [true, 'client-1'],
      [false, null],
    ] as const) {
      const session = http2.connect(
        `https://127.0.0.1:${listener.port}`,
        withCert ? { ca: m.ca, key: m.clientKey, cert: m.clientCert } : { ca: m.ca },
      );
      session.on('error', () => {});
      try {
        const s = RawStream.open(session, TestMethods.Ctx.path, {}, {});
        assert.is((await s.status).code, 0);
        const seen = JSON.parse(s.messages[0].text) as SeenContext;
        assert.is(seen.certCommonName, want);
      } finally {
        session.destroy();
      }
    }
  } finally {
    await grpc.shutdown({ graceful: false });
    await listener.close(100);
  }
});

test.run();
