// The raw HTTP/2 client and the load generator built on it, against node:http2 servers: statuses,
// bodies, multi-frame bodies under connection flow control, resets, GOAWAY, rotation and target spread.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2, { type ServerHttp2Stream, type Http2Server } from 'node:http2';
import { RawH2Connection, frameBody, type RawLane, type RawCallSink } from '../../bench/lib/h2-raw.js';
import { runLoad } from '../../bench/grpc/loadgen.js';

interface TestServer {
  server: Http2Server;
  port: number;
  bodies: Buffer[];
  sessions: number;
  close(): Promise<void>;
}

/** A gRPC-ish server: /t.S/Ok echoes OK (with a varying header to exercise HPACK's dynamic table), /t.S/Fail answers status 5 trailers-only, /t.S/Rst resets. */
async function startServer(): Promise<TestServer> {
  const bodies: Buffer[] = [];
  const server = http2.createServer();
  const t: TestServer = { server, port: 0, bodies, sessions: 0, close: () => new Promise((r) => server.close(() => r())) };
  let n = 0;
  server.on('session', (s) => {
    t.sessions++;
    s.on('error', () => {});
  });
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('error', () => {});
    stream.on('end', () => {
      const all = Buffer.concat(chunks);
      bodies.push(all.subarray(5, 5 + all.readUInt32BE(1)));
      const path = headers[':path'];
      if (path === '/t.S/Rst') {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      if (path === '/t.S/Fail') {
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'not found' },
          { endStream: true },
        );
        return;
      }
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'x-seq': String(n++ % 7),
          'x-fixed': 'a fairly long header value that will be indexed',
        },
        { waitForTrailers: true },
      );
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-trailer': 'yes' }));
      const resp = Buffer.alloc(5 + 3);
      resp.writeUInt32BE(3, 1);
      resp.write('abc', 5);
      stream.end(resp);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.port = (server.address() as { port: number }).port;
  return t;
}

class Collect implements RawCallSink<RawLane> {
  ended: RawLane[] = [];
  waiters: (() => void)[] = [];
  want = 0;
  callEnded(lane: RawLane): void {
    this.ended.push({ ...lane });
    if (this.ended.length >= this.want) for (const w of this.waiters.splice(0)) w();
  }
  until(n: number): Promise<void> {
    this.want = n;
    if (this.ended.length >= n) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }
}

test('raw client: OK, failed and reset calls end with the right status; bodies arrive intact', async () => {
  const srv = await startServer();
  try {
    const bodies = [Buffer.from('first'), Buffer.alloc(40_000, 7), Buffer.from('third')].map(frameBody);
    const sink = new Collect();
    const target = `127.0.0.1:${srv.port}`;
    const ok = await RawH2Connection.connect({ target, path: '/t.S/Ok', metadata: { token: 'abc' }, bodies, connectTimeoutMs: 5000 }, sink);
    // 60 concurrent calls, 20 of them 40 kB: far beyond the 64 kB connection window, so flow control must work.
    for (let i = 0; i < 60; i++) ok.call({ conn: ok as RawH2Connection, bodyIndex: i % 3, streamId: 0, status: '', message: '' });
    await sink.until(60);
    assert.ok(
      sink.ended.every((l) => l.status === '0'),
      JSON.stringify(sink.ended.map((l) => l.status)),
    );
    assert.is(new Set(sink.ended.map((l) => l.streamId)).size, 60);
    assert.is(srv.bodies.filter((b) => b.length === 40_000 && b.every((x) => x === 7)).length, 20);
    assert.is(srv.bodies.filter((b) => b.toString() === 'first').length, 20);
    const fail = await RawH2Connection.connect({ target, path: '/t.S/Fail', metadata: {}, bodies, connectTimeoutMs: 5000 }, sink);
    fail.call({ conn: fail as RawH2Connection, bodyIndex: 0, streamId: 0, status: '', message: '' });
    await sink.until(61);
    assert.is(sink.ended[60].status, '5');
    assert.is(sink.ended[60].message, 'not found');
    const rst = await RawH2Connection.connect({ target, path: '/t.S/Rst', metadata: {}, bodies, connectTimeoutMs: 5000 }, sink);
    rst.call({ conn: rst as RawH2Connection, bodyIndex: 0, streamId: 0, status: '', message: '' });
    await sink.until(62);
    assert.is(sink.ended[61].status, 'rst');
    ok.destroy();
    fail.destroy();
    rst.destroy();
    assert.is(ok.usable, false);
  } finally {
    await srv.close();
  }
});

test('raw client: after GOAWAY no new calls go out and they end as goaway', async () => {
  const srv = await startServer();
  try {
    const sessions: http2.ServerHttp2Session[] = [];
    srv.server.on('session', (s) => sessions.push(s));
    const sink = new Collect();
    const c = await RawH2Connection.connect(
      { target: `127.0.0.1:${srv.port}`, path: '/t.S/Ok', metadata: {}, bodies: [frameBody(Buffer.from('x'))], connectTimeoutMs: 5000 },
      sink,
    );
    c.call({ conn: c as RawH2Connection, bodyIndex: 0, streamId: 0, status: '', message: '' });
    await sink.until(1);
    sessions[0].goaway();
    for (let i = 0; i < 50 && c.usable; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(c.usable, false);
    c.call({ conn: c as RawH2Connection, bodyIndex: 0, streamId: 0, status: '', message: '' });
    await sink.until(2);
    assert.ok(sink.ended[1].status === 'goaway' || sink.ended[1].status === 'rst');
    c.destroy();
    // A node:http2 server session that sent GOAWAY does not keep the loop alive nor always notice the close.
    for (const s of sessions) s.destroy();
  } finally {
    await srv.close();
  }
});

for (const engine of ['raw', 'http2'] as const) {
  test(`loadgen (${engine}): rotates bodies, spreads connections over targets, counts statuses and its own CPU`, async () => {
    const a = await startServer();
    const b = await startServer();
    try {
      const bodies = [Buffer.from('b0'), Buffer.from('b1'), Buffer.from('b2')];
      const r = await runLoad({
        target: `127.0.0.1:${a.port}`,
        targets: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
        path: '/t.S/Ok',
        bodies,
        connections: 4,
        concurrency: 8,
        durationMs: 600,
        warmupMs: 200,
        workers: 2,
        engine,
      });
      assert.is(r.engine, engine);
      assert.is(r.errors, 0);
      assert.ok(r.requests > 50, `requests ${r.requests}`);
      assert.is(r.statuses['0'], r.requests);
      assert.ok(r.latencyMs.p50 > 0 && r.latencyMs.p99 >= r.latencyMs.p50);
      assert.ok(r.clientCpuCores > 0 && r.clientCpuUsPerRequest > 0);
      // Calls counted are at most the calls the servers saw (warm-up and tail are not counted).
      assert.ok(a.bodies.length + b.bodies.length >= r.requests);
      assert.is(a.sessions, 2);
      assert.is(b.sessions, 2);
      const seen = new Set([...a.bodies, ...b.bodies].map((x) => x.toString()));
      assert.equal([...seen].sort(), ['b0', 'b1', 'b2']);
      const f = await runLoad({
        target: `127.0.0.1:${a.port}`,
        path: '/t.S/Fail',
        body: Buffer.from('z'),
        connections: 1,
        concurrency: 2,
        durationMs: 300,
        warmupMs: 100,
        workers: 1,
        engine,
      });
      assert.is(f.requests, 0);
      assert.ok(f.errors > 0 && f.statuses['5'] === f.errors, JSON.stringify(f.statuses));
      assert.equal(f.errorMessages, { 5: 'not found' });
    } finally {
      await a.close();
      await b.close();
    }
  });
}

test('loadgen: measure hooks fire in order around the window', async () => {
  const a = await startServer();
  try {
    const marks: [string, number][] = [];
    const t0 = Date.now();
    await runLoad({
      target: `127.0.0.1:${a.port}`,
      path: '/t.S/Ok',
      body: Buffer.from('x'),
      connections: 1,
      concurrency: 1,
      durationMs: 400,
      warmupMs: 200,
      workers: 1,
      onMeasureStart: () => marks.push(['start', Date.now() - t0]),
      onMeasureEnd: () => marks.push(['end', Date.now() - t0]),
    });
    assert.equal(
      marks.map((m) => m[0]),
      ['start', 'end'],
    );
    const gap = marks[1][1] - marks[0][1];
    assert.ok(gap >= 380 && gap < 700, `window ${gap} ms`);
  } finally {
    await a.close();
  }
});

test.run();
