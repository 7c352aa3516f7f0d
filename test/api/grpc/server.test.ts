// GrpcServer against a real gRPC client (grpc-js) and a raw HTTP/2 client sending malformed input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gzipSync } from 'node:zlib';
import { EtcdError, Errors, GrpcCode } from '../../../src/errors.js';
import type { GrpcServer, ServerCall } from '../../../src/api/grpc/server.js';
import {
  EchoService,
  callBidi,
  callServerStream,
  callUnary,
  connectRaw,
  decodeEcho,
  encodeEcho,
  frame,
  grpc,
  grpcClient,
  rawRequest,
  sleep,
  startServer,
  statusOf,
  unframe,
  waitFor,
  type Echo,
  type Running,
} from '../helpers.js';

// Handlers shared by most tests. `Slow` waits until its signal aborts or `n` ms pass.
const seen: { calls: ServerCall[]; aborts: unknown[] } = { calls: [], aborts: [] };
function registerEcho(s: GrpcServer): void {
  s.unary(EchoService.Unary, (req, call) => {
    seen.calls.push(call);
    return { payload: req.payload, n: req.n, text: call.metadata.get('token') ?? '' };
  });
  s.unary(EchoService.Slow, async (req, call) => {
    seen.calls.push(call);
    const signal = call.signal;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, req.n);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        seen.aborts.push(signal.reason);
        resolve();
      });
    });
    return { text: 'slow done' };
  });
  s.unary(EchoService.Fail, (req) => {
    if (req.n === 1) throw Errors.EmptyKey();
    if (req.n === 2) throw new EtcdError(GrpcCode.FailedPrecondition, req.text);
    if (req.n === 3) return Promise.reject(new Error('plain failure'));
    if (req.n === 4) return undefined as unknown as Partial<Echo>; // encodeEcho throws on it
    throw new TypeError('sync plain failure');
  });
  s.serverStream(EchoService.Stream, async (req, stream, call) => {
    seen.calls.push(call);
    for (let i = 0; i < req.n; i++) {
      if (!stream.write({ n: i, payload: req.payload })) await stream.drained();
      if (call.done) return;
    }
    if (req.text === 'hang')
      await new Promise<void>((resolve) =>
        call.signal.addEventListener('abort', () => {
          seen.aborts.push(call.signal.reason);
          resolve();
        }),
      );
  });
  s.bidi(EchoService.Bidi, (stream, call) => {
    seen.calls.push(call);
    stream.onMessage = (m) => {
      if (m.text === 'fail') throw Errors.LeaseNotFound();
      stream.write({ n: m.n * 2, text: m.text });
    };
    stream.onHalfClose = () => stream.end();
  });
}

let srv: Running;
let client: grpc.Client;

test.before(async () => {
  srv = await startServer({ maxRecvMessageBytes: 64 * 1024 }, registerEcho);
  client = grpcClient(srv.address);
});
test.after(async () => {
  client.close();
  await srv.stop();
});
test.before.each(() => {
  seen.calls.length = 0;
  seen.aborts.length = 0;
});

test('unary round trip through grpc-js; metadata token and -bin keys reach the handler', async () => {
  const md = new grpc.Metadata();
  md.set('token', 'tok123');
  md.set('trace-bin', Buffer.from([0, 1, 2, 255]));
  const { err, res } = await callUnary(client, EchoService.Unary.path, { payload: Buffer.from('hello'), n: 42 }, md);
  assert.is(err, null);
  assert.is(Buffer.from(res!.payload).toString(), 'hello');
  assert.is(res!.n, 42);
  assert.is(res!.text, 'tok123');
  const call = seen.calls[0];
  assert.equal([...call.metadata.getBinary('trace-bin')!], [0, 1, 2, 255]);
  assert.is(call.metadata.get('content-type'), undefined, 'protocol headers are not metadata');
  assert.is(call.peerAddress, '127.0.0.1');
  assert.ok(call.peerPort > 0);
  assert.is(call.peerCertificate, undefined);
  assert.is(call.deadlineMs, Infinity);
  assert.is(call.method, '/test.Echo/Unary');
});

test('EtcdError keeps code and message (percent-encoded on the wire); other errors are UNKNOWN', async () => {
  let r = await callUnary(client, EchoService.Fail.path, { n: 1 });
  assert.is(r.err!.code, GrpcCode.InvalidArgument);
  assert.is(r.err!.details, 'etcdserver: key is not provided');
  const odd = '100% ünïcødé\r\nline two ~';
  r = await callUnary(client, EchoService.Fail.path, { n: 2, text: odd });
  assert.is(r.err!.code, GrpcCode.FailedPrecondition);
  assert.is(r.err!.details, odd);
  r = await callUnary(client, EchoService.Fail.path, { n: 3 });
  assert.is(r.err!.code, GrpcCode.Unknown);
  assert.is(r.err!.details, 'plain failure');
  r = await callUnary(client, EchoService.Fail.path, { n: 4 });
  assert.is(r.err!.code, GrpcCode.Internal);
  assert.match(r.err!.details, /^grpc: error while marshaling: /);
  r = await callUnary(client, EchoService.Fail.path, { n: 5 });
  assert.is(r.err!.code, GrpcCode.Unknown);
  assert.is(r.err!.details, 'sync plain failure');
  // Raw check of the wire form of grpc-message.
  const s = await connectRaw(srv.port);
  const raw = await rawRequest(s, { path: EchoService.Fail.path, chunks: [frame(encodeEcho({ n: 2, text: '50% é' }))] });
  s.close();
  assert.is(raw.headers['grpc-message'], '50%25 %C3%A9');
  assert.is(raw.headers[':status'], 200);
});

test('unknown service and unknown method get UNIMPLEMENTED with grpc-go texts', async () => {
  let r = await callUnary(client, '/nope.Svc/Do', {});
  assert.is(r.err!.code, GrpcCode.Unimplemented);
  assert.is(r.err!.details, 'unknown service nope.Svc');
  r = await callUnary(client, '/test.Echo/Nope', {});
  assert.is(r.err!.code, GrpcCode.Unimplemented);
  assert.is(r.err!.details, 'unknown method Nope for service test.Echo');
  const s = await connectRaw(srv.port);
  const raw = await rawRequest(s, { path: '/garbage', chunks: [frame(new Uint8Array(0))] });
  s.close();
  assert.is(raw.grpcStatus, GrpcCode.Unimplemented);
  assert.is(raw.grpcMessage, 'malformed method name: "/garbage"');
});

test('server streaming: N messages then OK', async () => {
  const call = callServerStream(client, EchoService.Stream.path, { n: 50, payload: Buffer.from('x') });
  const got: number[] = [];
  call.on('data', (m: Echo) => got.push(m.n));
  const st = await statusOf(call);
  assert.is(st.code, GrpcCode.OK);
  assert.equal(
    got,
    Array.from({ length: 50 }, (_, i) => i),
  );
});

test('bidi: interleaved request/response, half-close ends with OK; a throw in onMessage becomes the status', async () => {
  const call = callBidi(client, EchoService.Bidi.path);
  const st = statusOf(call);
  const next = (): Promise<Echo> => new Promise((resolve) => call.once('data', resolve));
  for (let i = 1; i <= 20; i++) {
    const p = next();
    call.write({ n: i, text: `m${i}` });
    const m = await p;
    assert.is(m.n, i * 2);
    assert.is(m.text, `m${i}`);
  }
  call.end();
  assert.is((await st).code, GrpcCode.OK);

  const bad = callBidi(client, EchoService.Bidi.path);
  bad.on('data', () => {});
  bad.on('error', () => {});
  const st2 = statusOf(bad);
  bad.write({ n: 1 });
  bad.write({ text: 'fail' });
  const s2 = await st2;
  assert.is(s2.code, GrpcCode.NotFound);
  assert.is(s2.details, 'etcdserver: requested lease not found');
});

test('deadline: client gets DEADLINE_EXCEEDED, handler signal aborts with it', async () => {
  const t0 = Date.now();
  const r = await callUnary(client, EchoService.Slow.path, { n: 5000 }, new grpc.Metadata(), { deadline: Date.now() + 150 });
  assert.is(r.err!.code, GrpcCode.DeadlineExceeded);
  assert.ok(Date.now() - t0 < 2000);
  await waitFor(() => seen.aborts.length === 1, 2000, 'handler abort');
  // grpc-js enforces the deadline too and resets the stream (CANCEL) when it passes; whichever of the two
  // timers fires first ends the call on the server, so the handler sees its own deadline or the client's
  // cancel (grpc-go's server behaves the same). The raw client below, which never cancels, pins the former.
  const reason = seen.aborts[0] as EtcdError;
  assert.ok(reason.code === GrpcCode.DeadlineExceeded || reason.code === GrpcCode.Canceled, `handler aborted with ${reason.code}`);
  const call = seen.calls[0];
  assert.ok(call.deadlineMs > t0 && call.deadlineMs < t0 + 1000, 'deadlineMs from grpc-timeout');
  assert.ok(call.cancelled);
  // The server side sends the status itself: check with a raw client that does not cancel on its own.
  const s = await connectRaw(srv.port);
  const raw = await rawRequest(s, {
    path: EchoService.Slow.path,
    headers: { 'grpc-timeout': '50m' },
    chunks: [frame(encodeEcho({ n: 5000 }))],
  });
  s.close();
  assert.is(raw.grpcStatus, GrpcCode.DeadlineExceeded);
  assert.is(raw.grpcMessage, 'context deadline exceeded');
  await waitFor(() => seen.aborts.length === 2, 2000, 'handler abort (raw client)');
  assert.is(
    (seen.aborts[1] as EtcdError).code,
    GrpcCode.DeadlineExceeded,
    "the server's own deadline aborts the handler with DeadlineExceeded",
  );
});

test('client cancel mid-stream aborts the handler and counts as Canceled', async () => {
  const stats = srv.server.stats.find((m) => m.method === 'Stream')!;
  const canceledBefore = stats.handled[GrpcCode.Canceled];
  const call = callServerStream(client, EchoService.Stream.path, { n: 3, text: 'hang' });
  call.on('error', () => {});
  let got = 0;
  await new Promise<void>((resolve) =>
    call.on('data', () => {
      if (++got === 3) resolve();
    }),
  );
  call.cancel();
  await waitFor(() => seen.aborts.length === 1, 2000, 'handler abort on cancel');
  assert.is((seen.aborts[0] as EtcdError).code, GrpcCode.Canceled);
  await waitFor(() => stats.handled[GrpcCode.Canceled] === canceledBefore + 1, 2000, 'canceled counted');
  assert.ok(seen.calls[0].cancelled);
  await waitFor(() => srv.server.activeCalls === 0, 2000, 'no active calls');
});

test('many concurrent streams on one connection', async () => {
  const n = 2000;
  const results = await Promise.all(Array.from({ length: n }, (_, i) => callUnary(client, EchoService.Unary.path, { n: i + 1 })));
  for (let i = 0; i < n; i++) {
    assert.is(results[i].err, null);
    assert.is(results[i].res!.n, i + 1);
  }
  // Concurrent slow calls really overlap (not serialized by the server).
  const t0 = Date.now();
  const slow = await Promise.all(Array.from({ length: 200 }, () => callUnary(client, EchoService.Slow.path, { n: 200 })));
  assert.ok(slow.every((r) => r.err === null));
  assert.ok(Date.now() - t0 < 1500, `200 overlapping 200 ms calls took ${Date.now() - t0} ms`);
});

test('raw: wrong content-type gets HTTP 415 and INVALID_ARGUMENT', async () => {
  const s = await connectRaw(srv.port);
  const r = await rawRequest(s, {
    path: EchoService.Unary.path,
    headers: { 'content-type': 'application/json' },
    chunks: [Buffer.from('{}')],
  });
  assert.is(r.headers[':status'], 415);
  assert.is(r.grpcStatus, GrpcCode.InvalidArgument);
  assert.is(r.grpcMessage, 'invalid gRPC request content-type "application/json"');
  const r2 = await rawRequest(s, {
    path: EchoService.Unary.path,
    headers: { 'content-type': 'application/grpc+proto' },
    chunks: [frame(encodeEcho({ n: 7 }))],
  });
  assert.is(r2.grpcStatus, 0, 'application/grpc+proto is fine');
  const r3 = await rawRequest(s, { path: EchoService.Unary.path, headers: { ':method': 'PUT' }, chunks: [frame(encodeEcho({ n: 7 }))] });
  assert.is(r3.headers[':status'], 405);
  assert.is(r3.grpcStatus, GrpcCode.Internal);
  s.close();
});

test('raw: truncated prefix, truncated body, no message at all: INTERNAL, no crash', async () => {
  const s = await connectRaw(srv.port);
  let r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [Buffer.from([0, 0, 0])] });
  assert.is(r.grpcStatus, GrpcCode.Internal);
  assert.match(r.grpcMessage, /unexpected EOF/);
  r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(Buffer.from('abc'), 0, 10)] });
  assert.is(r.grpcStatus, GrpcCode.Internal);
  r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [] });
  assert.is(r.grpcStatus, GrpcCode.Internal);
  assert.match(r.grpcMessage, /EOF/);
  // Two messages on a unary method.
  r = await rawRequest(s, {
    path: EchoService.Slow.path,
    chunks: [Buffer.concat([frame(encodeEcho({ n: 50 })), frame(encodeEcho({ n: 1 }))])],
  });
  assert.is(r.grpcStatus, GrpcCode.Internal);
  s.close();
});

test('raw: a prefix claiming 4 GiB and a real message over the limit get RESOURCE_EXHAUSTED (grpc-go text)', async () => {
  const s = await connectRaw(srv.port);
  // No END_STREAM: the server must answer without waiting for the (never coming) body.
  let r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(new Uint8Array(0), 0, 0xffffffff)], end: false });
  assert.is(r.grpcStatus, GrpcCode.ResourceExhausted);
  assert.is(r.grpcMessage, `grpc: received message larger than max (4294967295 vs. ${64 * 1024})`);
  const big = encodeEcho({ payload: Buffer.alloc(64 * 1024) });
  r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(big)] });
  assert.is(r.grpcStatus, GrpcCode.ResourceExhausted);
  assert.is(r.grpcMessage, `grpc: received message larger than max (${big.length} vs. ${64 * 1024})`);
  // The connection is still fine.
  r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(encodeEcho({ n: 3 }))] });
  assert.is(r.grpcStatus, 0);
  s.close();
  const viaClient = await callUnary(client, EchoService.Unary.path, { payload: Buffer.alloc(70 * 1024) });
  assert.is(viaClient.err!.code, GrpcCode.ResourceExhausted);
});

test('raw: garbage protobuf gets INTERNAL "grpc: error unmarshalling request: ..."', async () => {
  const s = await connectRaw(srv.port);
  const r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(Buffer.from([0x0a, 0xff, 0xff, 0x01]))] });
  assert.is(r.grpcStatus, GrpcCode.Internal);
  assert.match(r.grpcMessage, /^grpc: error unmarshalling request: /);
  const r2 = await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(Buffer.from([0x0f]))] });
  assert.is(r2.grpcStatus, GrpcCode.Internal);
  // Still served afterwards, and on a stream the client keeps open too.
  const r3 = await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(Buffer.from([0x0f]))], end: false });
  assert.is(r3.grpcStatus, GrpcCode.Internal);
  s.close();
});

test('raw: compression: flag without encoding is INTERNAL, gzip works, unknown encoding UNIMPLEMENTED, bombs bounded', async () => {
  const s = await connectRaw(srv.port);
  const body = Buffer.from(encodeEcho({ n: 9, payload: Buffer.alloc(1000, 7) }));
  let r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(body, 1)] });
  assert.is(r.grpcStatus, GrpcCode.Internal);
  assert.is(r.grpcMessage, 'grpc: compressed flag set with identity or empty encoding');
  r = await rawRequest(s, { path: EchoService.Unary.path, headers: { 'grpc-encoding': 'gzip' }, chunks: [frame(gzipSync(body), 1)] });
  assert.is(r.grpcStatus, 0);
  assert.is(decodeEcho(unframe(r.data)[0]).n, 9);
  r = await rawRequest(s, { path: EchoService.Unary.path, headers: { 'grpc-encoding': 'gzip' }, chunks: [frame(body, 0)] });
  assert.is(r.grpcStatus, 0, 'uncompressed message on a gzip stream is fine');
  r = await rawRequest(s, { path: EchoService.Unary.path, headers: { 'grpc-encoding': 'snappy' }, chunks: [frame(body, 1)] });
  assert.is(r.grpcStatus, GrpcCode.Unimplemented);
  assert.is(r.grpcMessage, 'grpc: Decompressor is not installed for grpc-encoding "snappy"');
  const bomb = gzipSync(Buffer.alloc(10 << 20)); // 10 MiB of zeros in ~10 KiB
  r = await rawRequest(s, { path: EchoService.Unary.path, headers: { 'grpc-encoding': 'gzip' }, chunks: [frame(bomb, 1)] });
  assert.is(r.grpcStatus, GrpcCode.ResourceExhausted);
  assert.is(r.grpcMessage, `grpc: received message larger than max (${64 * 1024 + 1} vs. ${64 * 1024})`);
  r = await rawRequest(s, {
    path: EchoService.Unary.path,
    headers: { 'grpc-encoding': 'gzip' },
    chunks: [frame(Buffer.from('not gzip'), 1)],
  });
  assert.is(r.grpcStatus, GrpcCode.Internal);
  assert.match(r.grpcMessage, /^grpc: failed to decompress the received message/);
  r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [frame(body, 2)] });
  assert.is(r.grpcStatus, GrpcCode.Internal);
  assert.is(r.grpcMessage, 'grpc: received unexpected payload format 2');
  s.close();
  const viaClient = await callUnary(grpcClient(srv.address, { 'grpc.default_compression_algorithm': 2 }), EchoService.Unary.path, {
    n: 5,
    payload: Buffer.alloc(5000, 1),
  });
  assert.is(viaClient.err, null);
  assert.is(viaClient.res!.n, 5);
});

test('raw: a message split into 1-byte DATA frames is reassembled; many messages in one frame are split', async () => {
  const s = await connectRaw(srv.port);
  const f = frame(encodeEcho({ n: 77, payload: Buffer.from('split me') }));
  const r = await rawRequest(s, { path: EchoService.Unary.path, chunks: [...f].map((b) => Buffer.from([b])) });
  assert.is(r.grpcStatus, 0);
  assert.is(decodeEcho(unframe(r.data)[0]).n, 77);
  const many = Buffer.concat(Array.from({ length: 10 }, (_, i) => frame(encodeEcho({ n: i + 1 }))));
  const b = await rawRequest(s, { path: EchoService.Bidi.path, chunks: [many.subarray(0, 13), many.subarray(13)] });
  assert.is(b.grpcStatus, 0);
  assert.equal(
    unframe(b.data).map((m) => decodeEcho(m).n),
    Array.from({ length: 10 }, (_, i) => (i + 1) * 2),
  );
  s.close();
});

test('raw: malformed grpc-timeout is rejected; grpc-timeout 0 expires at once', async () => {
  const s = await connectRaw(srv.port);
  let r = await rawRequest(s, { path: EchoService.Unary.path, headers: { 'grpc-timeout': '12x' }, chunks: [frame(encodeEcho({}))] });
  assert.is(r.headers[':status'], 400);
  assert.is(r.grpcStatus, GrpcCode.Internal);
  assert.is(r.grpcMessage, 'malformed grpc-timeout: transport: timeout unit is not recognized: "12x"');
  r = await rawRequest(s, { path: EchoService.Unary.path, headers: { 'grpc-timeout': '0m' }, chunks: [frame(encodeEcho({}))] });
  assert.is(r.grpcStatus, GrpcCode.DeadlineExceeded);
  s.close();
});

test('metrics: started, handled by code, messages', async () => {
  const before = JSON.parse(JSON.stringify(srv.server.stats.find((m) => m.method === 'Fail')));
  await callUnary(client, EchoService.Fail.path, { n: 1 });
  await callUnary(client, EchoService.Fail.path, { n: 1 });
  await callUnary(client, EchoService.Fail.path, { n: 3 });
  await callUnary(client, EchoService.Fail.path, { n: 4 });
  const after = srv.server.stats.find((m) => m.method === 'Fail')!;
  assert.is(after.service, 'test.Echo');
  assert.is(after.type, 'unary');
  assert.is(after.started - before.started, 4);
  assert.is(after.handled[GrpcCode.InvalidArgument] - before.handled[GrpcCode.InvalidArgument], 2);
  assert.is(after.handled[GrpcCode.Unknown] - before.handled[GrpcCode.Unknown], 1);
  assert.is(after.handled[GrpcCode.Internal] - before.handled[GrpcCode.Internal], 1);
  assert.is(after.msgReceived - before.msgReceived, 4);
  assert.is(after.msgSent - before.msgSent, 0);
  const unary = srv.server.stats.find((m) => m.method === 'Unary')!;
  const u0 = { ...unary, handled: [...unary.handled] };
  await callUnary(client, EchoService.Unary.path, { n: 1 });
  assert.is(unary.handled[GrpcCode.OK] - u0.handled[GrpcCode.OK], 1);
  assert.is(unary.msgSent - u0.msgSent, 1);
  const bidi = srv.server.stats.find((m) => m.method === 'Bidi')!;
  assert.is(bidi.type, 'bidi_stream');
  assert.is(srv.server.stats.find((m) => m.method === 'Stream')!.type, 'server_stream');
});

test('maxSendMessageBytes: both encode paths refuse an oversized response with RESOURCE_EXHAUSTED', async () => {
  const small = await startServer({ maxSendMessageBytes: 100 }, registerEcho);
  const c = grpcClient(small.address);
  let r = await callUnary(c, EchoService.Unary.path, { payload: Buffer.alloc(200) }); // sizeResponse/writeResponse path
  assert.is(r.err!.code, GrpcCode.ResourceExhausted);
  assert.is(r.err!.details, 'grpc: trying to send message larger than max (203 vs. 100)');
  r = await callUnary(c, EchoService.Unary.path, { payload: Buffer.alloc(50) });
  assert.is(r.err, null);
  const st = callServerStream(c, EchoService.Stream.path, { n: 2, payload: Buffer.alloc(200) }); // encodeResponse path
  st.on('data', () => {});
  st.on('error', () => {});
  const status = await statusOf(st);
  assert.is(status.code, GrpcCode.ResourceExhausted);
  assert.is(status.details, 'trying to send message larger than max (203 vs. 100)');
  c.close();
  await small.stop();
});

test('a connection that sends the preface and then garbage is dropped; the server keeps serving', async () => {
  const { connect } = await import('node:net');
  for (const junk of [
    Buffer.alloc(64, 0xff),
    Buffer.from([0, 0, 4, 1, 5, 0, 0, 0, 2, 1, 2, 3, 4]),
    Buffer.from('GET / HTTP/1.1\r\n\r\n'),
  ]) {
    const sock = connect(srv.port, '127.0.0.1');
    sock.on('error', () => {});
    sock.on('data', () => {});
    await new Promise((resolve) => sock.once('connect', resolve));
    sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), junk]));
    await new Promise((resolve) => sock.once('close', resolve));
  }
  assert.is((await callUnary(client, EchoService.Unary.path, { n: 8 })).res!.n, 8);
});

test('maxConcurrentStreams is advertised and respected: grpc-js queues the excess calls', async () => {
  const limited = await startServer({ maxConcurrentStreams: 2 }, registerEcho);
  const c = grpcClient(limited.address);
  assert.is((await callUnary(c, EchoService.Unary.path, {})).err, null); // SETTINGS seen
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, limited.server.activeCalls);
  }, 5);
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: 6 }, () => callUnary(c, EchoService.Slow.path, { n: 150 })));
  clearInterval(timer);
  assert.ok(rs.every((r) => r.err === null));
  assert.is(peak, 2);
  assert.ok(Date.now() - t0 >= 400, 'three waves of two');
  c.close();
  await limited.stop();
});

test('fuzz: random frames, lengths, flags and half-closes never crash the server', async () => {
  let seed = 12345;
  const rnd = (n: number): number => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
  const s = await connectRaw(srv.port);
  const statuses = new Set<number | undefined>();
  let open = 0;
  for (let round = 0; round < 20; round++) {
    const finished: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      const chunks: Buffer[] = [];
      const parts = rnd(4);
      for (let p = 0; p < parts; p++) {
        const kind = rnd(4);
        if (kind === 0) chunks.push(frame(encodeEcho({ n: rnd(1000), payload: Buffer.alloc(rnd(100)) })));
        else if (kind === 1) chunks.push(Buffer.from(Array.from({ length: rnd(40) }, () => rnd(256))));
        else if (kind === 2) chunks.push(frame(Buffer.from(Array.from({ length: rnd(30) }, () => rnd(256))), rnd(3)));
        else chunks.push(frame(Buffer.alloc(0), 0, rnd(0x7fffffff)));
      }
      const path = [EchoService.Unary.path, EchoService.Bidi.path, EchoService.Stream.path, EchoService.Fail.path][rnd(4)];
      const end = rnd(5) !== 0;
      const p = rawRequest(s, { path, chunks, end, headers: rnd(6) === 0 ? { 'grpc-encoding': 'gzip' } : {} }).then((r) => {
        statuses.add(r.grpcStatus);
      });
      // A half-closed request always gets its answer; an open one may legitimately wait (bidi).
      if (end) finished.push(p);
      else open++;
    }
    await Promise.race([
      Promise.all(finished),
      sleep(3000).then(() => {
        throw new Error('a half-closed request got no answer');
      }),
    ]);
  }
  assert.ok(open > 0);
  s.destroy();
  assert.ok(statuses.size >= 3, `saw statuses ${[...statuses].join(',')}`);
  const ok = await callUnary(client, EchoService.Unary.path, { n: 5 });
  assert.is(ok.err, null);
  await waitFor(() => srv.server.activeCalls === 0, 3000, 'every fuzzed call cleaned up');
});

test('registration rejects shape mismatches and duplicates', () => {
  const s = srv.server;
  assert.throws(() => s.unary(EchoService.Unary, () => ({})), /registered twice/);
  assert.throws(() => s.unary(EchoService.Stream, () => ({})), /server_stream, not registrable as unary/);
  assert.throws(() => s.bidi({ ...EchoService.Unary, path: 'x' }, () => {}), /bad method path/);
});

test.run();
