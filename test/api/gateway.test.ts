// The gateway's own limits, each hit: streaming requests open at once, bytes a streaming response may hold
// for a client that does not read, and the size of a streaming request's undecoded body. A gRPC server with
// test handlers stands behind it (no member needed).
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GrpcServer, type ServerWriter, type ServerCall } from '../../src/api/grpc/server.js';
import { ClientListener } from '../../src/api/listener.js';
import { Gateway, withGateway } from '../../src/api/gateway/index.js';
import { startDecodePool } from '../../src/api/gateway/decode_pool.js';
import { Election } from '../../src/proto/v3election.js';
import { KV, Watch, type WatchRequest, type RangeRequest, type PutRequest } from '../../src/proto/rpc.js';
import type { BidiStream } from '../../src/api/grpc/server.js';

const BIG_VALUE = Buffer.alloc(48 * 1024, 1);

interface Setup {
  gw: Gateway;
  listener: ClientListener;
  grpc: GrpcServer;
  cancelled: string[];
  port: number;
}

/** Observe answers `responses` big messages at once (ignoring backpressure), then stays open; Watch stays open. */
async function setup(opts: ConstructorParameters<typeof Gateway>[1], responses = 0): Promise<Setup> {
  const grpc = new GrpcServer();
  const cancelled: string[] = [];
  grpc.serverStream(Election.methods.Observe, (_req: unknown, out: ServerWriter<unknown>, call: ServerCall) => {
    call.onCancel((reason) => cancelled.push(reason.message));
    for (let i = 0; i < responses && !out.done; i++) out.write({ kv: { key: Buffer.from('k'), value: BIG_VALUE } });
  });
  grpc.bidi(Watch.methods.Watch, (stream: BidiStream<WatchRequest, unknown>, call: ServerCall) => {
    call.onCancel((reason) => cancelled.push(reason.message));
    stream.onMessage = () => stream.write({ created: true });
  });
  const gw = new Gateway(grpc, opts);
  const listener = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc, http1: withGateway(gw, (_q, s) => s.end()) });
  return { gw, listener, grpc, cancelled, port: listener.port };
}

async function teardown(s: Setup): Promise<void> {
  await s.grpc.shutdown({ graceful: false });
  await s.listener.destroy();
}

/** A streaming POST whose response is read until its first line; returns the request to close later. */
function openStream(port: number, path: string, body: string): Promise<{ status: number; first: string; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        if (text.includes('\n') || res.statusCode !== 200) resolve({ status: res.statusCode ?? 0, first: text, req });
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, first: text, req }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

test('streaming requests past streamsMax get 429 ErrTooManyRequests; a closed one frees its slot', async () => {
  const s = await setup({ streamsMax: 2 });
  try {
    const watch = JSON.stringify({ create_request: { key: 'YQ==' } });
    const a = await openStream(s.port, '/v3/watch', watch);
    const b = await openStream(s.port, '/v3/watch', watch);
    assert.is(a.status, 200);
    assert.is(b.status, 200);
    assert.is(s.gw.streamsOpen, 2);
    const c = await openStream(s.port, '/v3/watch', watch);
    assert.is(c.status, 429);
    assert.equal(JSON.parse(c.first), { error: 'etcdserver: too many requests', message: 'etcdserver: too many requests', code: 8 });
    a.req.destroy();
    await until(() => s.gw.streamsOpen === 1, 5000, 'the slot to be freed');
    await until(() => s.cancelled.length === 1, 5000, 'the closed watch to be cancelled');
    const d = await openStream(s.port, '/v3/watch', watch);
    assert.is(d.status, 200);
    b.req.destroy();
    d.req.destroy();
    await until(() => s.gw.streamsOpen === 0, 5000, 'every slot to be freed');
  } finally {
    await teardown(s);
  }
});

test('a streaming response that holds more than streamBufferedBytesMax for a client that does not read is cut', async () => {
  // 400 responses of ~64 KiB of JSON each (25 MiB), far past the 1 MiB limit plus what the kernel buffers.
  const s = await setup({ streamBufferedBytesMax: 1024 * 1024 }, 400);
  try {
    const sock = net.connect(s.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const body = JSON.stringify({ name: 'ZWw=' });
    sock.write(`POST /v3/election/observe HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    sock.pause(); // never read
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('error', () => {});
    await until(() => s.cancelled.length === 1, 10_000, 'the observe call to be cancelled');
    await closed;
    assert.is(s.gw.streamsOpen, 0);
  } finally {
    await teardown(s);
  }
});

test('a streaming request body with more than bodyBytesMax undecoded bytes is refused', async () => {
  const s = await setup({ bodyBytesMax: 1024 });
  try {
    // The first value never completes within the limit: refused before any call.
    const r = await openStream(s.port, '/v3/watch', `{"create_request":{"key":"${'A'.repeat(4096)}`);
    assert.is(r.status, 429);
    assert.is(JSON.parse(r.first).code, 8);
    assert.is(s.cancelled.length, 0);
    await until(() => s.gw.streamsOpen === 0, 5000, 'the slot to be freed');
  } finally {
    await teardown(s);
  }
});

test("the Authorization header is the call's token, Grpc-Metadata-* headers its metadata", async () => {
  const grpc = new GrpcServer();
  const seen: { token: string | undefined; requireLeader: boolean; key: string }[] = [];
  grpc.unary(KV.methods.Range, (req: RangeRequest, call: ServerCall) => {
    seen.push({ token: call.token, requireLeader: call.requireLeader, key: Buffer.from(req.key).toString() });
    return { count: 7 };
  });
  const gw = new Gateway(grpc);
  const listener = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc, http1: withGateway(gw, (_q, s) => s.end()) });
  try {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: listener.port,
          path: '/v3/kv/range',
          method: 'POST',
          agent: false,
          headers: { authorization: 'tok-123', 'grpc-metadata-hasleader': 'true' },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ key: Buffer.from('k1').toString('base64') }));
    });
    assert.equal(answer, { status: 200, body: '{"count":"7"}' });
    assert.equal(seen, [{ token: 'tok-123', requireLeader: true, key: 'k1' }]);
  } finally {
    await grpc.shutdown({ graceful: false });
    await listener.destroy();
  }
});

test('over TLS (ALPN http/1.1) the gateway answers as in cleartext', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tetcd-gw-tls-'));
  const grpc = new GrpcServer();
  grpc.unary(KV.methods.Range, () => ({ count: 1 }));
  let listener: ClientListener | undefined;
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem')].concat([
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ]),
      { stdio: 'ignore' },
    );
    const cert = readFileSync(join(dir, 'cert.pem'));
    listener = await ClientListener.listen({
      url: 'https://127.0.0.1:0',
      grpc,
      http1: withGateway(new Gateway(grpc), (_q, s) => s.end()),
      tls: { key: readFileSync(join(dir, 'key.pem')), cert },
    });
    const port = listener.port;
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path: '/v3/kv/range', method: 'POST', ca: cert, agent: false }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => (t += c.toString()));
        res.on('end', () => resolve(`${res.statusCode} ${t}`));
      });
      req.on('error', reject);
      req.end('{"key":"YQ=="}');
    });
    assert.is(body, '200 {"count":"1"}');
  } finally {
    await grpc.shutdown({ graceful: false });
    await listener?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

function post(port: number, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (res) => {
      let t = '';
      res.on('data', (c: Buffer) => (t += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: t }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('bodies of --gateway-pool-min-bytes or more are decoded on the pool, with the same answers; past its limits, inline', async () => {
  const grpc = new GrpcServer();
  const values: number[] = [];
  grpc.unary(KV.methods.Put, (req: PutRequest) => {
    values.push(req.value.length);
    return {};
  });
  const decoder = startDecodePool(1, 4096);
  const tight = startDecodePool(1, 4096, { tasksInflightMax: 64, bytesInflightMax: 1024 });
  const gw = new Gateway(grpc, { decoder });
  const gwTight = new Gateway(grpc, { decoder: tight });
  const l1 = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc, http1: withGateway(gw, (_q, s) => s.end()) });
  const l2 = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc, http1: withGateway(gwTight, (_q, s) => s.end()) });
  try {
    const big = JSON.stringify({ key: 'YQ==', value: Buffer.alloc(30_000, 9).toString('base64') });
    const badBig = JSON.stringify({ key: 'YQ==', value: `${Buffer.alloc(30_000, 9).toString('base64')}!` });
    assert.equal(await post(l1.port, '/v3/kv/put', big), { status: 200, body: '{}' });
    assert.is(gw.pooledBodies, 1);
    assert.equal(await post(l1.port, '/v3/kv/put', '{"key":"YQ==","value":"Yg=="}'), { status: 200, body: '{}' });
    assert.is(gw.pooledBodies, 1, 'a small body stays inline');
    const viaPool = await post(l1.port, '/v3/kv/put', badBig);
    assert.is(gw.pooledBodies, 2);
    const inline = await post(l2.port, '/v3/kv/put', badBig);
    assert.is(gwTight.pooledBodies, 0, 'a body past the bytes in flight limit is decoded inline');
    assert.equal(viaPool, inline);
    assert.is(viaPool.status, 400);
    assert.match(viaPool.body, /illegal base64 data at input byte 40000/);
    assert.equal(values, [30_000, 1]);
  } finally {
    await grpc.shutdown({ graceful: false });
    await l1.destroy();
    await l2.destroy();
    await decoder.close();
    await tight.close();
  }
});

test('a route to a method the server does not serve answers 501 with the gRPC status text (unary and streaming)', async () => {
  // setup() serves only Election.Observe and Watch: the KV service and Election.Campaign are unknown to it.
  const s = await setup({});
  try {
    const post = (path: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: s.port, path, method: 'POST', agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end('{}');
      });
    const kv = await post('/v3/kv/range');
    assert.is(kv.status, 501);
    const t1 = 'unknown service etcdserverpb.KV';
    assert.equal(JSON.parse(kv.body), { error: t1, message: t1, code: 12 });
    const campaign = await post('/v3/election/campaign');
    assert.is(campaign.status, 501);
    const t2 = 'unknown method Campaign for service v3electionpb.Election';
    assert.equal(JSON.parse(campaign.body), { error: t2, message: t2, code: 12 });
    const lease = await post('/v3/lease/keepalive');
    assert.is(lease.status, 501);
    const t3 = 'unknown service etcdserverpb.Lease';
    assert.equal(JSON.parse(lease.body.trim()), { error: { grpc_code: 12, http_code: 501, message: t3, http_status: 'Not Implemented' } });
  } finally {
    await teardown(s);
  }
});

test.run();
