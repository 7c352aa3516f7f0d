// The gateway's WebSockets and redirects against etcd 3.4's (grpc-websocket-proxy in front of grpc-gateway,
// under Go's ServeMux), the same steps on a fresh etcd and a fresh tetcd, transcripts compared after
// normalizing IDs and raft terms: watch and lease keep-alive as bidi streams of text messages (requests in,
// `{"result":…}` out), a unary call over a WebSocket, an unknown path, a bad first request, /v3beta/, the
// handshakes gorilla refuses (405, 400), an Upgrade header on a path that is not the gateway's, a bearer
// token in Sec-WebSocket-Protocol; then `/v3` and unclean paths, which Go's ServeMux redirects (301).
import http from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runningChildren } from '../helpers/cleanup.js';
import { startMember, type Member } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { prepareSide, type Side } from '../helpers/scenario.js';
import { WsClient, wsConnect, type WsConnectOptions } from '../helpers/ws.js';

const target = compatTarget();
const t = oracleGate(test);
const b64 = (s: string) => Buffer.from(s).toString('base64');
const create = (key: string, extra: object = {}) => JSON.stringify({ create_request: { key: b64(key), ...extra } });

function post(m: Member, path: string, body: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: m.clientPort, method: 'POST', path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** A WebSocket session's transcript: the handshake, the messages, how it ended. */
async function session(
  side: Side,
  path: string,
  steps: (ws: WsClient, out: string[]) => Promise<void>,
  o: WsConnectOptions = {},
): Promise<string[]> {
  const ws = await wsConnect(`${side.member.clientUrl}${path}`, o);
  if (!(ws instanceof WsClient)) return [`refused ${ws.status} ${ws.headers['content-type']} ${JSON.stringify(ws.body)}`];
  const out = [`101 protocol=${ws.open.headers['sec-websocket-protocol'] ?? '-'}`];
  try {
    await steps(ws, out);
  } finally {
    ws.close();
  }
  return out.map((l) => side.norm.normalize(l));
}

const read = async (ws: WsClient, out: string[], n: number) => {
  for (let i = 0; i < n; i++) out.push((await ws.next(5000)) ?? `<${ws.state}>`);
};
const readToEnd = async (ws: WsClient, out: string[]) => {
  for (let m = await ws.next(5000); m !== null; m = await ws.next(5000)) out.push(m);
  out.push(`<${ws.state}>`);
};

async function wsTranscript(side: Side): Promise<string[]> {
  const m = side.member;
  const out: string[] = [];
  out.push(
    '-- watch',
    ...(await session(side, '/v3/watch', async (ws, o) => {
      ws.send(create('wk', { prev_kv: true }));
      await read(ws, o, 1);
      await post(m, '/v3/kv/put', { key: b64('wk'), value: b64('v1') });
      await post(m, '/v3/kv/put', { key: b64('wk'), value: b64('v2') });
      await read(ws, o, 2);
      // Two requests in one message, then one message in two fragments.
      ws.send(`${create('a')} ${create('b')}`);
      await read(ws, o, 2);
      const c = Buffer.from(JSON.stringify({ cancel_request: { watch_id: '1' } }));
      ws.send(c.subarray(0, 10), 1, false);
      ws.send(c.subarray(10), 0, true);
      await read(ws, o, 1);
      // A bad request after the first ends the requests; the watches stay.
      ws.send('[1]');
      await post(m, '/v3/kv/put', { key: b64('b'), value: b64('x') });
      await read(ws, o, 1);
    })),
  );
  const lease = JSON.parse(await post(m, '/v3/lease/grant', { TTL: 60 })) as { ID: string };
  out.push(
    '-- lease keepalive',
    ...(await session(side, '/v3/lease/keepalive', async (ws, o) => {
      ws.send(JSON.stringify({ ID: lease.ID }));
      await read(ws, o, 1);
      ws.send(JSON.stringify({ ID: lease.ID }));
      await read(ws, o, 1);
      ws.send(JSON.stringify({ ID: '12345' }));
      await read(ws, o, 1);
    })),
  );
  out.push(
    '-- unary range',
    ...(await session(side, '/v3/kv/range', async (ws, o) => {
      ws.send(JSON.stringify({ key: b64('wk') }));
      await readToEnd(ws, o);
    })),
  );
  for (const [label, path, first] of [
    ['unknown path', '/v3/kv/nothing', '{}'],
    ['bad first watch request', '/v3/watch', '{"create_request":{"key":5}}'],
    ['v3beta watch', '/v3beta/watch', create('wk', { start_revision: '2' })],
  ] as const) {
    out.push(
      `-- ${label}`,
      ...(await session(side, path, async (ws, o) => {
        ws.send(first);
        await read(ws, o, label === 'v3beta watch' ? 3 : 1);
        if (label !== 'v3beta watch') await readToEnd(ws, o);
      })),
    );
  }
  const none = async () => {};
  out.push('-- POST upgrade', ...(await session(side, '/v3/watch', none, { method: 'POST' })));
  out.push('-- version 12', ...(await session(side, '/v3/watch', none, { headers: { 'Sec-WebSocket-Version': '12' } })));
  out.push('-- upgrade to /health', ...(await session(side, '/health', none)));
  out.push(
    '-- bearer token (auth off)',
    ...(await session(
      side,
      '/v3/watch',
      async (ws, o) => {
        ws.send(create('wk'));
        await read(ws, o, 1);
      },
      { headers: { 'Sec-WebSocket-Protocol': 'Bearer, not-a-token' } },
    )),
  );
  return out;
}

/** A raw HTTP request's status, Location, Content-Type and body. */
function raw(m: Member, method: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: m.clientPort, method, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () =>
        resolve(
          `${res.statusCode} location=${res.headers.location ?? '-'} type=${res.headers['content-type'] ?? '-'} ${JSON.stringify(text)}`,
        ),
      );
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

const REDIRECTS: readonly [string, string][] = [
  ['POST', '/v3'],
  ['GET', '/v3'],
  ['HEAD', '/v3'],
  ['POST', '/v3?x=1'],
  ['POST', '/v3/'],
  ['POST', '/v3//kv/range'],
  ['POST', '/v3/kv/../kv/range'],
  ['POST', '/v3beta//kv/range'],
  ['GET', '//health'],
  ['POST', '/v3beta'],
  ['POST', '/v3alpha/kv/range'],
  ['POST', '/v3/kv/range/'],
];

let oracle: Side | undefined;
let sut: Side | undefined;
const members: Member[] = [];

t(`start a fresh etcd (oracle) and a fresh ${target}`, async () => {
  const [a, b] = await Promise.all([startMember('etcd'), startMember(target)]);
  members.push(a, b);
  [oracle, sut] = await Promise.all([prepareSide(a), prepareSide(b)]);
});

t(`WebSockets on the gateway: ${target}'s transcript is etcd's`, async () => {
  assert.ok(oracle && sut, 'members did not start');
  const want = await wsTranscript(oracle);
  assert.ok(
    want.some((l) => l.includes('"events":[{"type":"PUT"') || l.includes('"events":[{"kv"')),
    'etcd sent the watch events',
  );
  assert.equal(await wsTranscript(sut), want);
});

t(`/v3 and unclean paths: ${target} redirects (301) as etcd's ServeMux does`, async () => {
  assert.ok(oracle && sut, 'members did not start');
  const want: string[] = [];
  const got: string[] = [];
  for (const [method, path] of REDIRECTS) {
    want.push(`${method} ${path}: ${await raw(oracle.member, method, path)}`);
    got.push(`${method} ${path}: ${await raw(sut.member, method, path)}`);
  }
  assert.ok(want[0].startsWith('POST /v3: 301 location=/v3/'), 'etcd redirects POST /v3');
  assert.equal(got, want);
});

t('stop both members', async () => {
  await Promise.all(members.map((m) => m.stop()));
  assert.is(runningChildren(), 0);
});

test.run();
