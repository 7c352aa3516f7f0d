// GrpcServer.shutdown: graceful (GOAWAY, unary calls finish, streams get UNAVAILABLE, bounded wait) and immediate.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type EtcdError, GrpcCode } from '../../../src/errors.js';
import type { GrpcServer } from '../../../src/api/grpc/server.js';
import { EchoService, callBidi, callUnary, connectRaw, grpcClient, sleep, startServer, statusOf, type Echo } from '../helpers.js';

const aborts: unknown[] = [];
function register(s: GrpcServer): void {
  s.unary(EchoService.Slow, async (req, call) => {
    const signal = call.signal;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, req.n);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        aborts.push(signal.reason);
        resolve();
      });
    });
    return { n: req.n, text: 'finished' };
  });
  s.unary(EchoService.Unary, (req) => ({ n: req.n }));
  s.bidi(EchoService.Bidi, (stream, call) => {
    call.signal.addEventListener('abort', () => aborts.push(call.signal.reason));
    stream.onMessage = (m: Echo) => stream.write({ n: m.n });
  });
}

/** Waits until the slow call has reached its handler (a fixed sleep was too short on a loaded machine). */
async function callRunning(server: GrpcServer, calls = 1): Promise<void> {
  for (let i = 0; i < 500 && server.activeCalls < calls; i++) await sleep(10);
  assert.is(server.activeCalls, calls, 'the calls never all reached the server');
}

test.before.each(() => {
  aborts.length = 0;
});

test('graceful: in-flight unary calls finish, streams end UNAVAILABLE, new connections are refused', async () => {
  const srv = await startServer({}, register);
  const client = grpcClient(srv.address);
  const warm = await callUnary(client, EchoService.Unary.path, { n: 1 });
  assert.is(warm.err, null);
  const bidi = callBidi(client, EchoService.Bidi.path);
  bidi.on('data', () => {});
  bidi.on('error', () => {});
  const bidiStatus = statusOf(bidi);
  bidi.write({ n: 1 });
  const slow = Array.from({ length: 5 }, () => callUnary(client, EchoService.Slow.path, { n: 300 }));
  await callRunning(srv.server, 6);
  const t0 = Date.now();
  await srv.server.shutdown({ graceful: true, timeoutMs: 3000 });
  const tookMs = Date.now() - t0;
  assert.ok(tookMs >= 200 && tookMs < 2000, `shutdown took ${tookMs} ms`);
  for (const r of await Promise.all(slow)) {
    assert.is(r.err, null);
    assert.is(r.res!.text, 'finished');
  }
  const st = await bidiStatus;
  assert.is(st.code, GrpcCode.Unavailable);
  assert.is(st.details, 'grpc: the server has been stopped');
  assert.is((aborts[0] as EtcdError).code, GrpcCode.Unavailable);
  assert.is(srv.server.activeCalls, 0);
  assert.is(srv.server.connections, 0);
  const late = await callUnary(grpcClient(srv.address), EchoService.Unary.path, { n: 2 }, undefined, { deadline: Date.now() + 500 });
  assert.ok(late.err !== null, 'no service after shutdown');
  client.close();
  await srv.listener.destroy();
});

test('graceful with a deadline: calls still running at timeoutMs are cut and their handlers aborted', async () => {
  const srv = await startServer({}, register);
  const s = await connectRaw(srv.port);
  const client = grpcClient(srv.address);
  const slow = callUnary(client, EchoService.Slow.path, { n: 10_000 });
  await callRunning(srv.server);
  const t0 = Date.now();
  await srv.server.shutdown({ graceful: true, timeoutMs: 200 });
  const tookMs = Date.now() - t0;
  assert.ok(tookMs >= 150 && tookMs < 1500, `shutdown took ${tookMs} ms`);
  const r = await slow;
  assert.ok(r.err !== null);
  assert.is(aborts.length, 1);
  assert.is((aborts[0] as EtcdError).code, GrpcCode.Unavailable);
  assert.ok(s.destroyed || s.closed, 'idle raw connection closed too');
  client.close();
  await srv.listener.destroy();
});

test('during a graceful drain: a second graceful call waits for it; an immediate one cuts at once', async () => {
  const srv = await startServer({}, register);
  const client = grpcClient(srv.address);
  const slow = callUnary(client, EchoService.Slow.path, { n: 10_000 });
  await callRunning(srv.server);
  const t0 = Date.now();
  let firstDoneMs = 0,
    secondDoneMs = 0;
  const first = srv.server.shutdown({ graceful: true, timeoutMs: 5000 }).then(() => {
    firstDoneMs = Date.now() - t0;
  });
  const second = srv.server.shutdown({ graceful: true }).then(() => {
    secondDoneMs = Date.now() - t0;
  });
  await sleep(100);
  assert.is(secondDoneMs, 0, 'second graceful call still waiting');
  await srv.server.shutdown({ graceful: false });
  await Promise.all([first, second]);
  assert.ok(firstDoneMs < 1000 && secondDoneMs < 1000, `drain ended by the immediate shutdown (${firstDoneMs}, ${secondDoneMs} ms)`);
  assert.ok((await slow).err !== null);
  assert.is(aborts.length, 1);
  client.close();
  await srv.listener.destroy();
});

test('immediate: everything is cut at once', async () => {
  const srv = await startServer({}, register);
  const client = grpcClient(srv.address);
  const slow = Array.from({ length: 3 }, () => callUnary(client, EchoService.Slow.path, { n: 10_000 }));
  await callRunning(srv.server, 3);
  const t0 = Date.now();
  await srv.server.shutdown({ graceful: false });
  assert.ok(Date.now() - t0 < 100);
  for (const r of await Promise.all(slow)) assert.ok(r.err !== null);
  assert.is(aborts.length, 3);
  assert.is(srv.server.activeCalls, 0);
  client.close();
  await srv.listener.destroy();
});

test.run();
