// Streaming calls: send-queue limits against a client that does not read, bidi delivery/queueing,
// server-stream ending rules.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EtcdError, GrpcCode } from '../../../src/errors.js';
import type { GrpcServer } from '../../../src/api/grpc/server.js';
import {
  EchoService,
  callBidi,
  callServerStream,
  connectRaw,
  decodeEcho,
  encodeEcho,
  frame,
  grpcClient,
  sleep,
  startServer,
  statusOf,
  unframe,
  waitFor,
  type Echo,
  type Running,
} from '../helpers.js';

const MSG_BYTES = 16 * 1024;
const HIGH = 256 * 1024;
const MAX = 1024 * 1024;

interface Probe {
  written: number;
  stalled: boolean;
  abortReason: unknown;
  done: boolean;
  received: number[];
}
const probe: Probe = { written: 0, stalled: false, abortReason: undefined, done: false, received: [] };

function register(s: GrpcServer): void {
  // Well behaved: waits for drained() whenever write() says so.
  s.serverStream(EchoService.Stream, async (req, stream, call) => {
    const payload = Buffer.alloc(MSG_BYTES, 1);
    for (let i = 0; i < req.n; i++) {
      probe.written++;
      if (!stream.write({ n: i, payload })) {
        probe.stalled = true;
        await stream.drained();
      }
      if (call.done) return;
    }
    probe.done = true;
  });
  // Misbehaving: ignores backpressure entirely.
  s.serverStream({ ...EchoService.Stream, path: '/test.Echo/Flood' }, (_req, stream, call) => {
    const payload = Buffer.alloc(MSG_BYTES, 2);
    call.signal.addEventListener('abort', () => {
      probe.abortReason = call.signal.reason;
    });
    const pump = (): void => {
      for (let i = 0; i < 16 && !call.done; i++) {
        stream.write({ n: probe.written++, payload });
      }
      if (!call.done) setImmediate(pump);
    };
    pump();
  });
  // Sets onMessage late: earlier messages must queue (and pause the stream past the bound), in order.
  s.bidi(EchoService.Bidi, (stream) => {
    setTimeout(() => {
      stream.onMessage = (m: Echo) => {
        probe.received.push(m.n);
        stream.write({ n: m.n });
      };
      stream.onHalfClose = () => stream.end();
    }, 150);
  });
  // Async bidi: the call ends when the handler's promise settles.
  s.bidi({ ...EchoService.Bidi, path: '/test.Echo/AsyncBidi' }, async (stream) => {
    await new Promise<void>((resolve) => {
      let sum = 0;
      stream.onMessage = (m: Echo) => {
        sum += m.n;
      };
      stream.onHalfClose = () => {
        stream.write({ n: sum });
        resolve();
      };
    });
  });
  s.serverStream({ ...EchoService.Stream, path: '/test.Echo/Reject' }, async (_req, stream) => {
    stream.write({ n: 1 });
    await sleep(10);
    throw new EtcdError(GrpcCode.Aborted, 'gave up');
  });
  s.serverStream({ ...EchoService.Stream, path: '/test.Echo/Empty' }, (_req, stream) => {
    stream.end();
  });
}

let srv: Running;
test.before(async () => {
  srv = await startServer({ sendQueueBytesHigh: HIGH, sendQueueBytesMax: MAX, inboundQueueMessagesMax: 4 }, register);
});
test.after(async () => {
  await srv.stop();
});
test.before.each(() => {
  probe.written = 0;
  probe.stalled = false;
  probe.abortReason = undefined;
  probe.done = false;
  probe.received = [];
});

test('a client that does not read: a well-behaved handler stalls with bounded queue, then finishes when read', async () => {
  const s = await connectRaw(srv.port);
  const req = s.request({ ':method': 'POST', ':path': EchoService.Stream.path, 'content-type': 'application/grpc', te: 'trailers' });
  req.pause(); // never read (yet)
  req.end(frame(encodeEcho({ n: 500 }))); // 500 × 16 KiB = 8 MiB if nothing held it back
  await waitFor(() => probe.stalled, 3000, 'handler stalled');
  await sleep(300);
  const writtenWhileStalled = probe.written;
  // queue high-water + the client's HTTP/2 window + a message; far below the 8 MiB it wanted
  assert.ok(
    writtenWhileStalled * MSG_BYTES <= HIGH + 65535 * 2 + 2 * MSG_BYTES,
    `wrote ${writtenWhileStalled} messages while the client read nothing`,
  );
  assert.not.ok(probe.done);
  // Now read everything.
  const parts: Buffer[] = [];
  let trailers: Record<string, unknown> = {};
  req.on('trailers', (t) => {
    trailers = t;
  });
  const closed = new Promise<void>((resolve) => req.on('close', () => resolve()));
  req.on('data', (d: Buffer) => parts.push(d));
  req.resume();
  await closed;
  s.close();
  assert.ok(probe.done);
  assert.is(trailers['grpc-status'], '0');
  const msgs = unframe(Buffer.concat(parts));
  assert.is(msgs.length, 500);
  assert.is(decodeEcho(msgs[499]).n, 499);
});

test('a handler that ignores backpressure is cut at sendQueueBytesMax (RESOURCE_EXHAUSTED, stream reset)', async () => {
  const s = await connectRaw(srv.port);
  const req = s.request({ ':method': 'POST', ':path': '/test.Echo/Flood', 'content-type': 'application/grpc', te: 'trailers' });
  req.pause();
  req.on('error', () => {});
  const closed = new Promise<number>((resolve) => req.on('close', () => resolve(req.rstCode ?? -1)));
  req.end(frame(encodeEcho({})));
  const rst = await closed;
  s.close();
  assert.is(rst, 11, 'RST_STREAM ENHANCE_YOUR_CALM');
  assert.ok(probe.abortReason instanceof EtcdError);
  assert.is((probe.abortReason as EtcdError).code, GrpcCode.ResourceExhausted);
  assert.ok(probe.written * MSG_BYTES <= MAX + 65535 * 2 + 2 * MSG_BYTES, `wrote ${probe.written} messages before the cut`);
  const stats = srv.server.stats.find((m) => m.method === 'Flood')!;
  assert.is(stats.handled[GrpcCode.ResourceExhausted], 1);
  await waitFor(() => srv.server.activeCalls === 0, 2000, 'call cleaned up');
});

test('bidi: messages sent before onMessage is set are queued (stream paused past the bound) and delivered in order', async () => {
  const client = grpcClient(srv.address);
  const call = callBidi(client, EchoService.Bidi.path);
  const got: number[] = [];
  call.on('data', (m: Echo) => got.push(m.n));
  const st = statusOf(call);
  for (let i = 1; i <= 300; i++) call.write({ n: i });
  call.end();
  const status = await st;
  client.close();
  assert.is(status.code, GrpcCode.OK);
  const expected = Array.from({ length: 300 }, (_, i) => i + 1);
  assert.equal(probe.received, expected);
  assert.equal(got, expected);
});

test('async bidi handler: the call ends when its promise resolves', async () => {
  const client = grpcClient(srv.address);
  const call = callBidi(client, '/test.Echo/AsyncBidi');
  const got: number[] = [];
  call.on('data', (m: Echo) => got.push(m.n));
  const st = statusOf(call);
  for (let i = 1; i <= 10; i++) call.write({ n: i });
  call.end();
  assert.is((await st).code, GrpcCode.OK);
  client.close();
  assert.equal(got, [55]);
});

test('server stream: a rejection after messages becomes the trailer status; an immediate end is trailers-only OK', async () => {
  const client = grpcClient(srv.address);
  const call = callServerStream(client, '/test.Echo/Reject', {});
  const got: number[] = [];
  call.on('data', (m: Echo) => got.push(m.n));
  call.on('error', () => {});
  const st = await statusOf(call);
  assert.is(st.code, GrpcCode.Aborted);
  assert.is(st.details, 'gave up');
  assert.equal(got, [1]);
  const empty = callServerStream(client, '/test.Echo/Empty', {});
  empty.on('data', () => assert.unreachable('no messages expected'));
  assert.is((await statusOf(empty)).code, GrpcCode.OK);
  client.close();
  const s = await connectRaw(srv.port);
  const req = s.request({ ':method': 'POST', ':path': '/test.Echo/Empty', 'content-type': 'application/grpc', te: 'trailers' });
  const response = new Promise<Record<string, unknown>>((resolve) => req.on('response', resolve));
  req.end(frame(encodeEcho({})));
  req.resume();
  const headers = await response;
  await new Promise((resolve) => req.on('close', resolve));
  s.close();
  assert.is(headers['grpc-status'], '0', 'trailers-only');
});

test.run();
