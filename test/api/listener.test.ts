// ClientListener: gRPC and HTTP/1.1 on one port (cleartext sniffing and TLS ALPN), sniff timeouts, close().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcServer } from '../../src/api/grpc/server.js';
import { ClientListener } from '../../src/api/listener.js';
import { EchoService, callUnary, grpc, grpcClient, sleep, waitFor } from './helpers.js';

function makeGrpc(): GrpcServer {
  const s = new GrpcServer();
  s.unary(EchoService.Unary, (req) => ({ n: req.n + 1 }));
  return s;
}

// Echoes method, path and the body's length and checksum, so split/pipelined bodies are verified.
function http1Handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    const body = Buffer.concat(parts);
    let sum = 0;
    for (const b of body) sum = (sum * 31 + b) >>> 0;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ method: req.method, url: req.url, bytes: body.length, sum }));
  });
}

function httpRequest(
  port: number,
  method: string,
  path: string,
  body?: Buffer[],
  agent?: http.Agent,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    if (body === undefined) {
      req.end();
      return;
    }
    // Write the body in pieces with pauses, so it arrives in several TCP reads after the sniff.
    void (async () => {
      for (const part of body) {
        req.write(part);
        await sleep(5);
      }
      req.end();
    })();
  });
}

async function rejects(p: Promise<unknown>, re?: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (re !== undefined) assert.match(String(err), re);
    return;
  }
  assert.unreachable('expected a rejection');
}

function checksum(b: Buffer): number {
  let sum = 0;
  for (const x of b) sum = (sum * 31 + x) >>> 0;
  return sum;
}

test('gRPC (grpc-js) and HTTP/1.1 share one cleartext port', async () => {
  const grpcServer = makeGrpc();
  const l = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc: grpcServer, http1: http1Handler });
  assert.match(l.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const client = grpcClient(`127.0.0.1:${l.port}`);
  const r = await callUnary(client, EchoService.Unary.path, { n: 41 });
  assert.is(r.err, null);
  assert.is(r.res!.n, 42);
  const g = await httpRequest(l.port, 'GET', '/health');
  assert.is(g.status, 200);
  assert.equal(JSON.parse(g.body), { method: 'GET', url: '/health', bytes: 0, sum: 0 });
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
  const parts = [big.subarray(0, 1), big.subarray(1, 1000), big.subarray(1000, 150_000), big.subarray(150_000)];
  const p = await httpRequest(l.port, 'POST', '/v3/kv/put', parts);
  assert.equal(JSON.parse(p.body), { method: 'POST', url: '/v3/kv/put', bytes: big.length, sum: checksum(big) });
  // Interleave: gRPC still fine.
  assert.is((await callUnary(client, EchoService.Unary.path, { n: 1 })).res!.n, 2);
  client.close();
  await grpcServer.shutdown({ graceful: false });
  await l.close();
});

test('HTTP/1.1: pipelined requests in the first packet, keep-alive reuse, throwing handler, default 404 handler', async () => {
  const grpcServer = makeGrpc();
  const l = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc: grpcServer, http1: http1Handler });
  const sock = net.connect(l.port, '127.0.0.1');
  await new Promise((resolve) => sock.once('connect', resolve));
  let text = '';
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => {
    text += d;
  });
  sock.write(
    'GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  );
  await new Promise((resolve) => sock.once('close', resolve));
  const bodies = [...text.matchAll(/\{[^}]*\}/g)].map((m) => JSON.parse(m[0]) as { url: string; bytes: number });
  assert.equal(
    bodies.map((b) => [b.url, b.bytes]),
    [
      ['/a', 0],
      ['/b', 3],
      ['/c', 0],
    ],
  );

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 5; i++) assert.is((await httpRequest(l.port, 'GET', `/k${i}`, undefined, agent)).status, 200);
  assert.is(l.connections, 1, 'one kept-alive connection served all five');
  agent.destroy();

  const lThrow = await ClientListener.listen({
    url: 'http://127.0.0.1:0',
    grpc: grpcServer,
    http1: () => {
      throw new Error('handler bug');
    },
  });
  const thrown = await httpRequest(lThrow.port, 'GET', '/boom');
  assert.is(thrown.status, 500);
  assert.is(thrown.body, 'handler bug\n');
  await lThrow.close();

  const l404 = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc: grpcServer });
  const nf = await httpRequest(l404.port, 'GET', '/metrics');
  assert.is(nf.status, 404);
  assert.is(nf.body, '404 page not found\n');
  await grpcServer.shutdown({ graceful: false });
  await l.close();
  await l404.close();
});

test('sniffing is bounded: silent clients and half prefaces are closed after sniffTimeoutMs', async () => {
  const grpcServer = makeGrpc();
  const l = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc: grpcServer, sniffTimeoutMs: 150 });
  const closedAfter = async (first: string): Promise<number> => {
    const sock = net.connect(l.port, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise((resolve) => sock.once('connect', resolve));
    const t0 = Date.now();
    if (first !== '') sock.write(first);
    await new Promise((resolve) => sock.once('close', resolve));
    return Date.now() - t0;
  };
  const silent = await closedAfter('');
  assert.ok(silent >= 100 && silent < 1500, `silent client closed after ${silent} ms`);
  const half = await closedAfter('PRI * HTTP/2.0\r\n');
  assert.ok(half >= 100 && half < 1500, `half preface closed after ${half} ms`);
  await waitFor(() => l.connections === 0, 1000, 'sockets forgotten');
  await grpcServer.shutdown({ graceful: false });
  await l.close();
});

test('close(): stops accepting, drops idle HTTP/1.1 connections; bad URLs are refused', async () => {
  const grpcServer = makeGrpc();
  const l = await ClientListener.listen({ url: 'http://localhost:0', grpc: grpcServer, http1: http1Handler });
  assert.is(l.host, '127.0.0.1', 'localhost binds 127.0.0.1 as etcd does');
  const agent = new http.Agent({ keepAlive: true });
  assert.is((await httpRequest(l.port, 'GET', '/x', undefined, agent)).status, 200);
  assert.is(l.connections, 1);
  const t0 = Date.now();
  await l.close(2000);
  assert.ok(Date.now() - t0 < 1000, 'idle keep-alive connection did not hold close() up');
  await rejects(httpRequest(l.port, 'GET', '/y'));
  agent.destroy();
  await grpcServer.shutdown({ graceful: false });
  for (const url of ['unix:///tmp/x', 'http://127.0.0.1:1/path', 'https://127.0.0.1:0']) {
    let failed = false;
    try {
      await ClientListener.listen({ url, grpc: grpcServer });
    } catch {
      failed = true;
    }
    assert.ok(failed, `${url} refused`);
  }
  const busy = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc: makeGrpc() });
  await rejects(ClientListener.listen({ url: busy.url, grpc: makeGrpc() }), /EADDRINUSE/);
  await busy.close();
});

test('https: ALPN routes h2 to gRPC (grpc-js over TLS) and http/1.1 to the HTTP handler', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tetcd-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    const key = readFileSync(join(dir, 'key.pem'));
    const cert = readFileSync(join(dir, 'cert.pem'));
    const grpcServer = makeGrpc();
    let sawCert = false;
    grpcServer.unary({ ...EchoService.Unary, path: '/test.Echo/Tls' }, (req, call) => {
      sawCert = call.peerCertificate === undefined; // no client cert was presented
      return { n: req.n };
    });
    const l = await ClientListener.listen({ url: 'https://127.0.0.1:0', grpc: grpcServer, http1: http1Handler, tls: { key, cert } });
    assert.match(l.url, /^https:/);
    const client = new grpc.Client(`127.0.0.1:${l.port}`, grpc.credentials.createSsl(cert));
    const r = await callUnary(client, EchoService.Unary.path, { n: 9 });
    assert.is(r.err, null);
    assert.is(r.res!.n, 10);
    assert.is((await callUnary(client, '/test.Echo/Tls', { n: 1 })).err, null);
    assert.ok(sawCert);
    client.close();
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', servername: 'localhost', port: l.port, path: '/version', ca: cert, agent: false }, (res) => {
          let t = '';
          res.on('data', (d: Buffer) => {
            t += d.toString();
          });
          res.on('end', () => resolve(t));
        })
        .on('error', reject);
    });
    assert.equal(JSON.parse(body), { method: 'GET', url: '/version', bytes: 0, sum: 0 });
    await grpcServer.shutdown({ graceful: false });
    await l.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a connection handed over before listen() returns is served (node:cluster can do that in one turn)', async () => {
  // A server-side socket from elsewhere, ready to be handed in as node:cluster hands a worker one.
  const side = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) => side.once('connection', resolve));
  await new Promise<void>((resolve) => side.listen(0, '127.0.0.1', resolve));
  const client = net.connect((side.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => {
    /* a dropped connection shows as the missing answer */
  });
  const handed = await accepted;
  // The listen callback is followed at once, in the same turn, by a connection: the microtask that finishes
  // ClientListener.listen has not run yet.
  const realListen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
    net.Server.prototype.listen = realListen;
    const cb = args.pop() as () => void;
    return (realListen as (...a: unknown[]) => net.Server).call(this, ...args, () => {
      cb();
      this.emit('connection', handed);
    });
  } as typeof realListen;
  const l = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc: makeGrpc(), http1: http1Handler });
  try {
    const answer = new Promise<string>((resolve) => {
      let text = '';
      client.setEncoding('utf8');
      client.on('data', (d: string) => {
        text += d;
        if (text.includes('"method":"GET"')) resolve(text);
      });
      client.on('close', () => resolve(text));
    });
    client.write('GET /early HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(await answer, /HTTP\/1.1 200[\s\S]*"url":"\/early"/, 'the early connection was dropped');
  } finally {
    net.Server.prototype.listen = realListen;
    client.destroy();
    await l.destroy();
    side.close();
  }
});

test.run();
