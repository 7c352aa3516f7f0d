// Keepalive: the server pings idle connections and drops ones that do not answer; clients that ping
// too often get GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings") as grpc-go sends it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import type { ClientHttp2Session } from 'node:http2';
import type { GrpcServer } from '../../../src/api/grpc/server.js';
import { EchoService, callUnary, connectRaw, encodeEcho, frame, grpcClient, rawRequest, sleep, startServer, waitFor } from '../helpers.js';

function register(s: GrpcServer): void {
  s.unary(EchoService.Unary, (req) => ({ n: req.n }));
  s.unary(EchoService.Slow, async (req) => {
    await sleep(req.n);
    return {};
  });
}

function ping(s: ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => s.ping(() => resolve()));
}

interface GoAway {
  code: number;
  data: string;
}
function watchGoaway(s: ClientHttp2Session): { got: GoAway | undefined } {
  const box: { got: GoAway | undefined } = { got: undefined };
  s.on('goaway', (code: number, _last: number, data?: Buffer) => {
    box.got = { code, data: data?.toString() ?? '' };
  });
  s.on('error', () => {});
  return box;
}

test('pings without any call: the third strike earns GOAWAY ENHANCE_YOUR_CALM "too_many_pings"', async () => {
  const srv = await startServer({ keepaliveMinTimeMs: 1000 }, register);
  const s = await connectRaw(srv.port);
  const goaway = watchGoaway(s);
  for (let i = 0; i < 6 && goaway.got === undefined && !s.destroyed; i++) {
    await ping(s);
    await sleep(20);
  }
  await waitFor(() => goaway.got !== undefined, 2000, 'GOAWAY');
  assert.equal(goaway.got, { code: 11, data: 'too_many_pings' });
  await waitFor(() => s.destroyed || s.closed, 2000, 'connection closed');
  await srv.stop();
});

test('pings spaced by keepaliveMinTimeMs during a call, or each after a response, are fine', async () => {
  const srv = await startServer({ keepaliveMinTimeMs: 100 }, register);
  const s = await connectRaw(srv.port);
  const goaway = watchGoaway(s);
  const call = rawRequest(s, { path: EchoService.Slow.path, chunks: [frame(encodeEcho({ n: 900 }))] });
  for (let i = 0; i < 5; i++) {
    await sleep(150);
    await ping(s);
  }
  assert.is((await call).grpcStatus, 0);
  // Rapid pings, but the server sent a response between each: strikes are reset (grpc-go's rule).
  for (let i = 0; i < 6; i++) {
    assert.is((await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(encodeEcho({ n: i + 1 }))] })).grpcStatus, 0);
    await ping(s);
  }
  await sleep(50);
  assert.is(goaway.got, undefined);
  assert.not.ok(s.destroyed);
  s.close();
  await srv.stop();
});

test('the server pings an idle connection; a client that answers stays connected', async () => {
  const srv = await startServer({ keepaliveIntervalMs: 100, keepaliveTimeoutMs: 200 }, register);
  const s = await connectRaw(srv.port);
  let pings = 0;
  s.on('ping', () => {
    pings++;
  });
  await sleep(700);
  assert.ok(pings >= 2, `client saw ${pings} pings`);
  assert.not.ok(s.destroyed);
  assert.is((await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(encodeEcho({ n: 5 }))] })).grpcStatus, 0);
  s.close();
  // grpc-js also keeps working across server pings.
  const client = grpcClient(srv.address);
  assert.is((await callUnary(client, EchoService.Unary.path, { n: 1 })).err, null);
  await sleep(400);
  assert.is((await callUnary(client, EchoService.Unary.path, { n: 2 })).err, null);
  client.close();
  await srv.stop();
});

test('a peer that never acknowledges the keepalive ping is disconnected after keepaliveTimeoutMs', async () => {
  const srv = await startServer({ keepaliveIntervalMs: 100, keepaliveTimeoutMs: 150 }, register);
  const sock = net.connect(srv.port, '127.0.0.1');
  await new Promise((resolve) => sock.once('connect', resolve));
  // Preface and an empty SETTINGS frame, then silence: no SETTINGS ack, no PING ack.
  sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
  let sawPing = false;
  sock.on('data', (d: Buffer) => {
    if (d.includes(Buffer.from([0, 0, 8, 6, 0]))) sawPing = true;
  });
  const t0 = Date.now();
  await new Promise((resolve) => sock.once('close', resolve));
  const tookMs = Date.now() - t0;
  assert.ok(sawPing, 'server sent a PING');
  assert.ok(tookMs >= 200 && tookMs < 2000, `closed after ${tookMs} ms`);
  await waitFor(() => srv.server.connections === 0, 1000, 'session dropped');
  await srv.stop();
});

test.run();
