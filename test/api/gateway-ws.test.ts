// The gateway's WebSockets and their limits, each hit: a message larger than the body limit ends the
// connection, a client that does not read is cut once its queued responses pass the streaming limit, the
// streams-open limit counts WebSockets too; frames split across TCP writes, fragmented messages and pings
// are read as RFC 6455 says. A gRPC server with test handlers stands behind it (no member needed).
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GrpcServer, type ServerWriter, type ServerCall, type BidiStream } from '../../src/api/grpc/server.js';
import { ClientListener } from '../../src/api/listener.js';
import { Gateway, gatewayUpgrade, withGateway } from '../../src/api/gateway/index.js';
import { Election } from '../../src/proto/v3election.js';
import { Watch, type WatchRequest } from '../../src/proto/rpc.js';
import { WsClient, wsConnect, type WsOpen } from '../helpers/ws.js';

const BIG_VALUE = Buffer.alloc(48 * 1024, 1);

interface Setup {
  gw: Gateway;
  listener: ClientListener;
  grpc: GrpcServer;
  cancelled: string[];
  url: string;
}

/** Observe answers `responses` big messages at once (ignoring backpressure), then stays open; Watch echoes. */
async function setup(opts: ConstructorParameters<typeof Gateway>[1], responses = 0): Promise<Setup> {
  const grpc = new GrpcServer();
  const cancelled: string[] = [];
  grpc.serverStream(Election.methods.Observe, (_req: unknown, out: ServerWriter<unknown>, call: ServerCall) => {
    call.onCancel((reason) => cancelled.push(reason.message));
    for (let i = 0; i < responses && !out.done; i++) out.write({ kv: { key: Buffer.from('k'), value: BIG_VALUE } });
  });
  grpc.bidi(Watch.methods.Watch, (stream: BidiStream<WatchRequest, unknown>, call: ServerCall) => {
    call.onCancel((reason) => cancelled.push(reason.message));
    stream.onMessage = (m) => stream.write({ created: true, watch_id: m.create_request?.key?.length ?? 0 });
  });
  const gw = new Gateway(grpc, opts);
  const next = withGateway(gw, (_q, s) => s.end());
  const listener = await ClientListener.listen({
    url: 'http://127.0.0.1:0',
    grpc,
    http1: next,
    upgrade: gatewayUpgrade(gw, (_q, s) => s.end('plain')),
  });
  return { gw, listener, grpc, cancelled, url: `http://127.0.0.1:${listener.port}` };
}

async function teardown(s: Setup): Promise<void> {
  await s.grpc.shutdown({ graceful: false });
  await s.listener.destroy();
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

function opened(w: WsClient | WsOpen): WsClient {
  if (!(w instanceof WsClient)) throw new Error(`handshake refused: ${w.status} ${w.body}`);
  return w;
}

const create = (key: string) => JSON.stringify({ create_request: { key: Buffer.from(key).toString('base64') } });

test('watch over a WebSocket: one text message per request, one per response', async () => {
  const s = await setup({});
  try {
    const ws = opened(await wsConnect(`${s.url}/v3/watch`));
    ws.send(create('abc'));
    assert.is(await ws.next(3000), '{"result":{"watch_id":"3","created":true}}');
    // Two requests in one message, and one message in three fragments.
    ws.send(`${create('a')} ${create('ab')}`);
    assert.is(await ws.next(3000), '{"result":{"watch_id":"1","created":true}}');
    assert.is(await ws.next(3000), '{"result":{"watch_id":"2","created":true}}');
    const m = Buffer.from(create('abcd'));
    ws.send(m.subarray(0, 5), 1, false);
    ws.send(m.subarray(5, 10), 0, false);
    ws.send(m.subarray(10), 0, true);
    assert.is(await ws.next(3000), '{"result":{"watch_id":"4","created":true}}');
    ws.close();
    await until(() => s.gw.streamsOpen === 0 && s.cancelled.length === 1, 5000, 'the watch to be cancelled');
  } finally {
    await teardown(s);
  }
});

test('a frame split across TCP writes, a fragmented message and a ping between its fragments: one message and a pong', async () => {
  const s = await setup({});
  try {
    const sock = net.connect(s.listener.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const key = randomBytes(16).toString('base64');
    sock.write(
      `GET /v3/watch HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    let got = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
    });
    await until(() => got.includes('\r\n\r\n'), 3000, 'the 101');
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    assert.ok(got.toString('latin1').includes(`Sec-WebSocket-Accept: ${accept}`));
    got = got.subarray(got.indexOf('\r\n\r\n') + 4);
    const frame = (opcode: number, payload: Buffer, fin = true): Buffer => {
      const mask = randomBytes(4);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]));
      return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length]), mask, masked]);
    };
    // The message in two fragments, a ping between them, the first fragment split across four writes.
    const msg = Buffer.from(create('xy'));
    const first = frame(1, msg.subarray(0, 12), false);
    const parts = [first.subarray(0, 1), first.subarray(1, 4), first.subarray(4, 9), first.subarray(9)];
    for (const part of [...parts, frame(9, Buffer.from('hi')), frame(0, msg.subarray(12))]) {
      sock.write(part);
      await new Promise((r) => setTimeout(r, 20));
    }
    const want = '{"result":{"watch_id":"2","created":true}}';
    await until(() => got.includes(want), 3000, 'the answer');
    // The pong (0x8a, "hi") came first: the ping arrived before the rest of the message.
    assert.equal([...got.subarray(0, 4)], [0x8a, 2, 0x68, 0x69]);
    assert.equal([...got.subarray(4, 6)], [0x81, want.length]);
    sock.destroy();
  } finally {
    await teardown(s);
  }
});

test('a message of many TCP segments (300 KiB within a 1 MiB limit) arrives whole', async () => {
  const s = await setup({ bodyBytesMax: 1024 * 1024 });
  try {
    const ws = opened(await wsConnect(`${s.url}/v3/watch`));
    ws.send(create('k'.repeat(300 * 1024)));
    assert.is(await ws.next(5000), `{"result":{"watch_id":"${300 * 1024}","created":true}}`);
    ws.close();
  } finally {
    await teardown(s);
  }
});

test('a message larger than bodyBytesMax ends the connection and cancels the call', async () => {
  const s = await setup({ bodyBytesMax: 1024 });
  try {
    const ws = opened(await wsConnect(`${s.url}/v3/watch`));
    ws.send(create('a'));
    assert.is(await ws.next(3000), '{"result":{"watch_id":"1","created":true}}');
    ws.send(create('x'.repeat(4096)));
    assert.is(await ws.ended(3000), 'connection ended without a close frame');
    await until(() => s.gw.streamsOpen === 0 && s.cancelled.length === 1, 5000, 'the watch to be cancelled');
  } finally {
    await teardown(s);
  }
});

test('a WebSocket client that does not read is cut past streamBufferedBytesMax', async () => {
  // 400 responses of ~64 KiB of JSON each (25 MiB), far past the 1 MiB limit plus what the kernel buffers.
  const s = await setup({ streamBufferedBytesMax: 1024 * 1024 }, 400);
  try {
    const sock = net.connect(s.listener.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.on('error', () => {});
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.write(
      `GET /v3/election/observe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const payload = Buffer.from(JSON.stringify({ name: 'ZWw=' }));
    const mask = Buffer.alloc(4);
    sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload]));
    sock.pause(); // never read
    await until(() => s.cancelled.length === 1, 10_000, 'the observe call to be cancelled');
    // Reading again, the client finds the end of the connection the server cut.
    let ended = false;
    void closed.then(() => (ended = true));
    sock.resume();
    await until(() => ended, 10_000, 'the connection to end');
    assert.is(s.gw.streamsOpen, 0);
  } finally {
    await teardown(s);
  }
});

test('WebSockets count against streamsMax: past it the message is the 429 error body', async () => {
  const s = await setup({ streamsMax: 1 });
  try {
    const first = opened(await wsConnect(`${s.url}/v3/watch`));
    const second = opened(await wsConnect(`${s.url}/v3/watch`));
    assert.is(await second.next(3000), '{"error":"etcdserver: too many requests","message":"etcdserver: too many requests","code":8}');
    assert.is(await second.ended(3000), 'connection ended without a close frame');
    first.close();
    await until(() => s.gw.streamsOpen === 0, 5000, 'the slot to be freed');
    const third = opened(await wsConnect(`${s.url}/v3/watch`));
    third.send(create('a'));
    assert.is(await third.next(3000), '{"result":{"watch_id":"1","created":true}}');
    third.close();
  } finally {
    await teardown(s);
  }
});

test('an unmasked client frame is a protocol error: the connection ends', async () => {
  const s = await setup({});
  try {
    const ws = opened(await wsConnect(`${s.url}/v3/watch`));
    // Reach under the client: write an unmasked text frame on its socket.
    const raw = (ws as unknown as { socket: net.Socket }).socket;
    const payload = Buffer.from(create('a'));
    raw.write(Buffer.concat([Buffer.from([0x81, payload.length]), payload]));
    assert.is(await ws.ended(3000), 'connection ended without a close frame');
    await until(() => s.gw.streamsOpen === 0, 5000, 'the slot to be freed');
  } finally {
    await teardown(s);
  }
});

test.run();
