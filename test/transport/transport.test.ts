import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { Transport } from '../../src/transport/transport.js';
import { PEER_MAGIC } from '../../src/transport/frame.js';
import { freePort } from '../../tools/lib/ports.js';

interface Node {
  t: Transport;
  got: Array<[bigint, string]>;
  unreachable: bigint[];
  url: string;
}

async function node(id: bigint, clusterId = 0xc1n, port?: number, backoffMaxMs = 50): Promise<Node> {
  const p = port ?? (await freePort());
  const url = `http://127.0.0.1:${p}`;
  const n: Node = { got: [], unreachable: [], url, t: undefined as unknown as Transport };
  n.t = new Transport({
    memberId: id,
    clusterId,
    listenUrls: [url],
    onMessage: (from, payload) => n.got.push([from, payload.toString()]),
    onPeerUnreachable: (peer) => n.unreachable.push(peer),
    backoffMinMs: 10,
    backoffMaxMs,
    pingIntervalMs: 50,
    idleTimeoutMs: 1000,
  });
  await n.t.listen();
  return n;
}

async function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('messages flow both ways in order', async () => {
  const a = await node(1n),
    b = await node(2n);
  a.t.addPeer(2n, [b.url]);
  b.t.addPeer(1n, [a.url]);
  await until(() => a.t.isActive(2n) && b.t.isActive(1n));
  for (let i = 0; i < 1000; i++) a.t.send(2n, Buffer.from(`m${i}`));
  b.t.send(1n, Buffer.from('back'));
  await until(() => b.got.length === 1000 && a.got.length === 1);
  assert.equal(
    b.got.map((g) => g[1]),
    Array.from({ length: 1000 }, (_, i) => `m${i}`),
  );
  assert.ok(b.got.every((g) => g[0] === 1n));
  assert.equal(a.got, [[2n, 'back']]);
  await a.t.stop();
  await b.t.stop();
});

test('a stream from another cluster is refused', async () => {
  const a = await node(1n, 0xaan),
    b = await node(2n, 0xbbn);
  a.t.addPeer(2n, [b.url]);
  await until(() => a.t.isActive(2n));
  a.t.send(2n, Buffer.from('x'));
  await new Promise((r) => setTimeout(r, 100));
  assert.is(b.got.length, 0);
  await a.t.stop();
  await b.t.stop();
});

test('a restarted peer is redialed; drops are reported as unreachable', async () => {
  const port = await freePort();
  const a = await node(1n);
  let b = await node(2n, 0xc1n, port);
  a.t.addPeer(2n, [b.url]);
  await until(() => a.t.isActive(2n));
  await b.t.stop();
  await until(() => !a.t.isActive(2n));
  assert.ok(a.unreachable.includes(2n));
  assert.is(a.t.send(2n, Buffer.from('lost')), false);
  b = await node(2n, 0xc1n, port);
  await until(() => a.t.isActive(2n));
  a.t.send(2n, Buffer.from('after'));
  await until(() => b.got.length === 1);
  assert.equal(b.got, [[1n, 'after']]);
  await a.t.stop();
  await b.t.stop();
});

test('a peer that dials in is dialed back at once, not after the backoff', async () => {
  const port = await freePort();
  const a = await node(1n, 0xc1n, undefined, 60_000);
  a.t.addPeer(2n, [`http://127.0.0.1:${port}`]);
  // Refused dials at 0, 10, 30, 70, ..., 1270 ms; the next one comes at 2550 ms.
  await new Promise((r) => setTimeout(r, 1400));
  const b = await node(2n, 0xc1n, port);
  try {
    const t0 = Date.now();
    b.t.addPeer(1n, [a.url]);
    await until(() => a.t.isActive(2n), 10_000);
    assert.ok(Date.now() - t0 < 600, `a dialed b back after ${Date.now() - t0} ms`);
    a.t.send(2n, Buffer.from('hello'));
    await until(() => b.got.length === 1);
  } finally {
    await a.t.stop();
    await b.t.stop();
  }
});

test('the send queue is bounded', async () => {
  const a = new Transport({ memberId: 1n, clusterId: 1n, listenUrls: [], onMessage() {}, queueMessagesMax: 10 });
  const b = await node(2n, 1n);
  a.addPeer(2n, [b.url]);
  await until(() => a.isActive(2n));
  let accepted = 0;
  for (let i = 0; i < 100; i++) if (a.send(2n, Buffer.from('x'))) accepted++;
  assert.is(accepted, 10); // nothing is flushed within one synchronous turn
  assert.is(a.stats.droppedMessages, 90);
  await a.stop();
  await b.t.stop();
});

test('garbage and oversized frames close only that connection', async () => {
  const b = await node(2n, 1n);
  const port = Number(new URL(b.url).port);
  for (const bytes of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.concat([PEER_MAGIC, Buffer.from([0xff, 0xff, 0xff, 0xff, 2])])]) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.write(bytes);
    await new Promise<void>((resolve) => s.on('close', () => resolve()));
  }
  const a = await node(1n, 1n);
  a.t.addPeer(2n, [b.url]);
  await until(() => a.t.isActive(2n));
  a.t.send(2n, Buffer.from('still works'));
  await until(() => b.got.length === 1);
  await a.t.stop();
  await b.t.stop();
});

test.run();
