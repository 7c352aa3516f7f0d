// The oracle test for the HTTP/JSON gateway: the same raw HTTP/1.1 requests (node:http, no client library)
// sent to a fresh etcd 3.4 and a fresh tetcd, statuses, the headers clients look at and bodies compared after
// normalizing IDs, raft terms and sizes (helpers/normalize.ts). Streams (watch, keep-alive, observe) are read
// line by line while the request is open, so events must arrive as they happen. Methods tetcd does not
// serve yet must answer what their gRPC call answers (etcdctl shows that text).
import http from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { oracleGate, compatTarget } from '../helpers/oracle.js';
import { startMember, type Member } from '../helpers/member.js';
import { prepareSide, type Side } from '../helpers/scenario.js';
import { runningChildren } from '../helpers/cleanup.js';
import { GATEWAY_ROUTES } from '../../src/api/gateway/index.js';
import { RPCS } from '../../src/api/rpc.js';

const t = oracleGate(test);
const target = compatTarget();
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const REQUEST_TIMEOUT_MS = 15_000;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  trailers: NodeJS.Dict<string>;
}

function request(m: Member, method: string, path: string, body: string | Buffer, headers: http.OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: m.clientPort,
        method,
        path,
        headers: { 'content-length': Buffer.byteLength(body), ...headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            trailers: res.trailers,
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path}: no answer in ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A streaming request left open: its response lines as they come. */
class Stream {
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  private buf = '';
  private waiting: (() => void) | undefined;
  private ended = false;
  private readonly req: http.ClientRequest;
  readonly ready: Promise<void>;

  constructor(m: Member, path: string, body: string) {
    let ready!: () => void;
    this.ready = new Promise((r) => (ready = r));
    this.req = http.request({ host: '127.0.0.1', port: m.clientPort, method: 'POST', path, agent: false }, (res) => {
      this.status = res.statusCode ?? 0;
      this.headers = res.headers;
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        this.buf += c;
        this.waiting?.();
      });
      res.on('end', () => {
        this.ended = true;
        this.waiting?.();
      });
      ready();
    });
    this.req.on('error', () => {
      this.ended = true;
      this.waiting?.();
    });
    this.req.end(body);
  }

  /** The next complete line (without its newline), or what is left once the response ended. */
  async line(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl >= 0) {
        const l = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        return l;
      }
      if (this.ended) {
        const rest = this.buf;
        this.buf = '';
        return rest === '' ? '<end>' : rest;
      }
      const left = deadline - Date.now();
      if (left <= 0) return '<nothing yet>';
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.waiting = () => {
          clearTimeout(timer);
          this.waiting = undefined;
          r();
        };
      });
    }
  }

  close(): void {
    this.req.destroy();
  }
}

let oracle: Side | undefined;
let sut: Side | undefined;
const members: Member[] = [];

/** What of an answer must be the same: status, the content type, gRPC metadata/trailer headers, the body. */
function view(side: Side, a: Answer, mask?: (s: string) => string): string {
  const h = a.headers;
  const body = side.norm.normalize(mask ? mask(a.body) : a.body);
  return [
    `${a.status} ${h['content-type'] ?? '-'}`,
    `grpc-metadata-content-type: ${h['grpc-metadata-content-type'] ?? '-'}; trailer: ${h.trailer ?? '-'}; cors: ${h['access-control-allow-origin'] ?? '-'}`,
    body,
  ].join('\n');
}

/** Keys of lock/election answers name the lease in hex: different on each side. */
const maskKeys = (s: string): string => s.replace(/"key":"[^"]*"/g, '"key":"<KEY>"');

async function same(
  label: string,
  method: string,
  path: string,
  body: string | Buffer,
  opts: { mask?: (s: string) => string; headers?: http.OutgoingHttpHeaders } = {},
): Promise<void> {
  assert.ok(oracle && sut, 'members did not start');
  const a = await request(oracle.member, method, path, body, opts.headers);
  const b = await request(sut.member, method, path, body, opts.headers);
  const va = view(oracle, a, opts.mask);
  const vb = view(sut, b, opts.mask);
  if (va !== vb)
    assert.unreachable(`${label}\n--- etcd:\n${va}\n--- ${target}:\n${vb}\n--- ${target} log tail:\n${sut.member.logs().slice(-2000)}`);
}

const post = (
  label: string,
  path: string,
  body: unknown,
  opts: { mask?: (s: string) => string; headers?: http.OutgoingHttpHeaders } = {},
) => t(label, () => same(label, 'POST', path, typeof body === 'string' ? body : JSON.stringify(body), opts));

t('start a fresh etcd (oracle) and a fresh ' + target, async () => {
  const [a, b] = await Promise.all([startMember('etcd', { name: 'm1' }), startMember(target, { name: 'm1' })]);
  members.push(a!, b!);
  oracle = await prepareSide(a!);
  sut = await prepareSide(b!);
});

// ---- KV ----
post('put', '/v3/kv/put', { key: b64('foo'), value: b64('bar') });
post('put with prev_kv', '/v3/kv/put', { key: b64('foo'), value: b64('baz'), prev_kv: true });
post('put a second key', '/v3/kv/put', { key: b64('fop'), value: b64('x') });
post('range one key', '/v3/kv/range', { key: b64('foo') });
post('range a prefix, descending by key, limit 1', '/v3/kv/range', {
  key: b64('fo'),
  range_end: b64('fp'),
  sort_order: 'DESCEND',
  limit: '1',
});
post('range count only (camelCase names are accepted)', '/v3/kv/range', { key: b64('f'), rangeEnd: b64('g'), countOnly: true });
post('range keys only, serializable', '/v3/kv/range', { key: b64('foo'), keys_only: true, serializable: true });
post('range through /v3beta/', '/v3beta/kv/range', { key: b64('foo') });
post('txn: compare and swap that succeeds', '/v3/kv/txn', {
  compare: [{ key: b64('foo'), target: 'VALUE', result: 'EQUAL', value: b64('baz') }],
  success: [{ request_put: { key: b64('foo'), value: b64('qux') } }, { request_range: { key: b64('foo') } }],
  failure: [{ request_range: { key: b64('fop') } }],
});
post('txn: compare that fails', '/v3/kv/txn', {
  compare: [{ key: b64('foo'), target: 'VERSION', result: 'GREATER', version: '100' }],
  success: [{ request_delete_range: { key: b64('foo') } }],
  failure: [{ request_range: { key: b64('fop') } }],
});
post('deleterange with prev_kv', '/v3/kv/deleterange', { key: b64('fop'), prev_kv: true });
post('compaction', '/v3/kv/compaction', { revision: '3' });
post('compaction of a compacted revision', '/v3/kv/compaction', { revision: '2' });
post('range at a compacted revision', '/v3/kv/range', { key: b64('foo'), revision: '1' });
post('range at a future revision', '/v3/kv/range', { key: b64('foo'), revision: '1000' });
post('put with a missing lease', '/v3/kv/put', { key: b64('k'), value: b64('v'), lease: '12345' });

// ---- bad input: etcd's status and Go's error texts ----
post('no key', '/v3/kv/put', {});
post('empty body', '/v3/kv/range', '');
post('truncated JSON', '/v3/kv/range', '{"key":"Zm9v"');
post('trailing comma', '/v3/kv/range', '{"key":"Zm9v",}');
post('unquoted key', '/v3/kv/range', '{key:1}');
post('missing colon', '/v3/kv/range', '{"key" 1}');
post('bad escape', '/v3/kv/range', '{"key":"Zm9v\\x"}');
post('a truncated literal', '/v3/kv/range', 'nul');
post('trailing garbage after the value is ignored', '/v3/kv/range', '{"key":"Zm9v"} x');
post('a JSON array body', '/v3/kv/range', '[]');
post('a JSON string body', '/v3/kv/range', '"str"');
post('bytes given a number', '/v3/kv/range', { key: 5 });
post('bytes given an object', '/v3/kv/range', { key: {} });
post('bytes given an array of numbers', '/v3/kv/range', { key: [102, 111, 111] });
post('bad base64', '/v3/kv/range', { key: '!!!' });
post('URL-safe base64', '/v3/kv/range', { key: 'Zm9v_-' });
post('unpadded base64', '/v3/kv/range', { key: 'Zm9vYg' });
post('base64 with a line break', '/v3/kv/range', { key: 'Zm9v\nYg==' });
post('int64 given a bool', '/v3/kv/range', { key: b64('foo'), limit: true });
post('int64 given a fraction', '/v3/kv/range', { key: b64('foo'), limit: 1.5 });
post('int64 given a quoted fraction', '/v3/kv/range', { key: b64('foo'), limit: '1.5' });
post('int64 given a word', '/v3/kv/range', { key: b64('foo'), limit: 'abc' });
post('int64 given an object', '/v3/kv/range', { key: b64('foo'), limit: {} });
post('bool given a string', '/v3/kv/range', { key: b64('foo'), serializable: 'true' });
post('bool given a number', '/v3/kv/range', { key: b64('foo'), serializable: 1 });
post('unknown enum name', '/v3/kv/range', { key: b64('foo'), sort_order: 'FOO' });
post('enum given a bool', '/v3/kv/range', { key: b64('foo'), sort_order: true });
post('repeated given an object', '/v3/kv/txn', { compare: {} });
post('nested bytes given a number', '/v3/kv/txn', { success: [{ request_put: { key: 5 } }] });
post('unknown fields are ignored', '/v3/kv/range', { key: b64('foo'), nonsense: 1 });
post('a request over --max-request-bytes', '/v3/kv/put', { key: b64('big'), value: Buffer.alloc(1_600_000, 1).toString('base64') });
post('a request over the gRPC receive limit', '/v3/kv/put', { key: b64('big'), value: Buffer.alloc(2_200_000, 1).toString('base64') });
post('an unknown path under /v3/', '/v3/kv/nothing', {});
post('a path with a trailing slash', '/v3/kv/range/', {});
post('/v3alpha/ is not served by etcd 3.4', '/v3alpha/kv/range', { key: b64('foo') });
post('/v4/', '/v4/kv/range', { key: b64('foo') });
post('a query string is ignored', '/v3/kv/range?x=1', { key: b64('foo') });
t('GET on a gateway path: 405', () => same('GET', 'GET', '/v3/kv/range', ''));
t('PUT on a gateway path: 405', () => same('PUT', 'PUT', '/v3/kv/put', '{}'));
t('GET on an unknown gateway path: 404', () => same('GET unknown', 'GET', '/v3/kv/nothing', ''));
t('OPTIONS (CORS preflight): 200', () => same('OPTIONS', 'OPTIONS', '/v3/kv/range', ''));

t('a body past the gateway limit is refused with etcd status and code, the member keeps serving', async () => {
  assert.ok(oracle && sut);
  // 9 MiB: over tetcd's gateway body limit (4 x the gRPC receive limit); etcd reads it all and refuses it in gRPC.
  const body = JSON.stringify({ key: b64('huge'), value: Buffer.alloc(9 * 1024 * 1024 - 64, 7).toString('base64') });
  const [a, b] = [await request(oracle.member, 'POST', '/v3/kv/put', body), await request(sut.member, 'POST', '/v3/kv/put', body)];
  assert.is(b.status, a.status);
  assert.is(JSON.parse(b.body).code, JSON.parse(a.body).code);
  if (target === 'tetcd') assert.match(JSON.parse(b.body).error, /exceeds \d+ bytes/);
  const after = await request(sut.member, 'POST', '/v3/kv/range', JSON.stringify({ key: b64('foo') }));
  assert.is(after.status, 200);
});

// ---- lease ----
post('lease grant', '/v3/lease/grant', { TTL: '60', ID: '1000' });
post('lease grant with a TTL too large', '/v3/lease/grant', { TTL: '99999999999' });
post('lease grant of an existing ID', '/v3/lease/grant', { TTL: '60', ID: '1000' });
post('put with the lease', '/v3/kv/put', { key: b64('leased'), value: b64('v'), lease: '1000' });
post(
  'lease timetolive with keys',
  '/v3/lease/timetolive',
  { ID: '1000', keys: true },
  { mask: (s) => s.replace(/"TTL":"\d+"/, '"TTL":"<TTL>"') },
);
post(
  'lease timetolive (legacy /v3/kv/lease path)',
  '/v3/kv/lease/timetolive',
  { ID: '1000' },
  { mask: (s) => s.replace(/"TTL":"\d+"/, '"TTL":"<TTL>"') },
);
post('lease leases', '/v3/lease/leases', {});
post('lease leases (legacy path)', '/v3/kv/lease/leases', {});
post('lease timetolive of a missing lease', '/v3/lease/timetolive', { ID: '77' });

t('lease keepalive streams one answer per request, as they come', async () => {
  assert.ok(oracle && sut);
  const lines: string[][] = [];
  for (const side of [oracle, sut]) {
    const s = new Stream(side.member, '/v3/lease/keepalive', '{"ID":"1000"} {"ID":"1000"}\n{"ID":"55"}');
    await s.ready;
    const got = [`${s.status} ${s.headers['content-type']}`];
    for (let i = 0; i < 3; i++) got.push(side.norm.normalize(await s.line()));
    s.close();
    lines.push(got);
  }
  assert.equal(lines[1], lines[0]);
});

t('lease keepalive with a bad first request: 500 as etcd', () => same('keepalive bad', 'POST', '/v3/lease/keepalive', '{"ID":true}'));
post('lease revoke', '/v3/lease/revoke', { ID: '1000' });
post('the leased key is gone', '/v3/kv/range', { key: b64('leased') });
post('lease revoke again (legacy path): not found', '/v3/kv/lease/revoke', { ID: '1000' });

// ---- watch ----
t('watch streams events as they happen, in order, with prev_kv and a cancel', async () => {
  assert.ok(oracle && sut);
  const lines: string[][] = [];
  for (const side of [oracle, sut]) {
    const s = new Stream(
      side.member,
      '/v3/watch',
      JSON.stringify({ create_request: { key: b64('w'), range_end: b64('x'), prev_kv: true } }),
    );
    await s.ready;
    const got = [`${s.status} ${s.headers['content-type']} ${s.headers['grpc-metadata-content-type']}`, await s.line()];
    await request(side.member, 'POST', '/v3/kv/put', JSON.stringify({ key: b64('w1'), value: b64('a') }));
    got.push(await s.line());
    await request(side.member, 'POST', '/v3/kv/put', JSON.stringify({ key: b64('w1'), value: b64('b') }));
    got.push(await s.line());
    await request(side.member, 'POST', '/v3/kv/deleterange', JSON.stringify({ key: b64('w1') }));
    got.push(await s.line());
    s.close();
    lines.push(got.map((l) => side.norm.normalize(l)));
  }
  assert.equal(lines[1], lines[0]);
});

t('several requests in one watch body: two watchers, then a cancel', async () => {
  assert.ok(oracle && sut);
  const body = `${JSON.stringify({ create_request: { key: b64('a') } })}${JSON.stringify({ create_request: { key: b64('b') } })}\n${JSON.stringify({ cancel_request: { watch_id: '0' } })}`;
  const lines: string[][] = [];
  for (const side of [oracle, sut]) {
    const s = new Stream(side.member, '/v3/watch', body);
    await s.ready;
    const got = [await s.line(), await s.line(), await s.line()];
    s.close();
    lines.push(got.map((l) => side.norm.normalize(l)));
  }
  assert.equal(lines[1], lines[0]);
});

t('a watch from a compacted revision is canceled with the compact revision', async () => {
  assert.ok(oracle && sut);
  const lines: string[][] = [];
  for (const side of [oracle, sut]) {
    const s = new Stream(side.member, '/v3/watch', JSON.stringify({ create_request: { key: b64('foo'), start_revision: '1' } }));
    await s.ready;
    const got = [await s.line(), await s.line()];
    s.close();
    lines.push(got.map((l) => side.norm.normalize(l)));
  }
  assert.equal(lines[1], lines[0]);
});

t('watch with a bad first request: 500, code 2, as etcd', () =>
  same('watch bad', 'POST', '/v3/watch', JSON.stringify({ create_request: { key: 5 } })),
);

// ---- cluster and maintenance ----
post('member list', '/v3/cluster/member/list', {});
post('status', '/v3/maintenance/status', {});
post('alarm list (none)', '/v3/maintenance/alarm', { action: 'GET' });

// ---- lock and election ----
post('lease for lock and election', '/v3/lease/grant', { TTL: '60', ID: '2000' });
post('lock', '/v3/lock/lock', { name: b64('lk'), lease: '2000' }, { mask: maskKeys });
post('election leader without a leader', '/v3/election/leader', { name: b64('el') });
post('campaign', '/v3/election/campaign', { name: b64('el'), lease: '2000', value: b64('v1') }, { mask: maskKeys });
post('election leader', '/v3/election/leader', { name: b64('el') }, { mask: maskKeys });

t('observe streams the leader, then each proclaim', async () => {
  assert.ok(oracle && sut);
  const lines: string[][] = [];
  for (const side of [oracle, sut]) {
    const s = new Stream(side.member, '/v3/election/observe', JSON.stringify({ name: b64('el') }));
    await s.ready;
    const got = [await s.line()];
    const leader = JSON.parse((await request(side.member, 'POST', '/v3/election/leader', JSON.stringify({ name: b64('el') }))).body).kv;
    const proclaimed = await request(
      side.member,
      'POST',
      '/v3/election/proclaim',
      JSON.stringify({ leader: { name: b64('el'), key: leader.key, rev: leader.create_revision, lease: leader.lease }, value: b64('v2') }),
    );
    got.push(`${proclaimed.status} ${proclaimed.body}`, await s.line());
    const resigned = await request(
      side.member,
      'POST',
      '/v3/election/resign',
      JSON.stringify({ leader: { name: b64('el'), key: leader.key, rev: leader.create_revision, lease: leader.lease } }),
    );
    got.push(`${resigned.status} ${resigned.body}`);
    s.close();
    lines.push(got.map((l) => side.norm.normalize(maskKeys(l))));
  }
  assert.equal(lines[1], lines[0]);
});

t('unlock', async () => {
  assert.ok(oracle && sut);
  const got: string[] = [];
  for (const side of [oracle, sut]) {
    const r = await request(
      side.member,
      'POST',
      '/v3/kv/range',
      JSON.stringify({ key: b64('lk/'), range_end: b64('lk0'), keys_only: true }),
    );
    const key = JSON.parse(r.body).kvs[0].key as string;
    got.push(view(side, await request(side.member, 'POST', '/v3/lock/unlock', JSON.stringify({ key }))));
  }
  assert.is(got[1], got[0]);
});

// ---- auth token ----
t('the Authorization header reaches the call as its token (etcd: invalid token while auth is off)', async () => {
  assert.ok(oracle && sut);
  const a = await request(oracle.member, 'POST', '/v3/kv/range', JSON.stringify({ key: b64('foo') }), { authorization: 'not-a-token' });
  assert.is(a.status, 401);
  const b = await request(sut.member, 'POST', '/v3/kv/range', JSON.stringify({ key: b64('foo') }), { authorization: 'not-a-token' });
  assert.is(b.status, 401);
  assert.is(b.body, a.body);
});

// ---- methods tetcd does not serve yet answer through the gateway what their gRPC call answers ----
t('every gateway path reaches a method tetcd serves', () => {
  assert.ok(sut);
  if (target === 'etcd') return;
  // Every service method etcd 3.4's gateway routes is served now; a route to an unserved one would answer 501.
  const served = new Set(RPCS.map((r) => r.desc.path));
  const unserved = [...GATEWAY_ROUTES].filter(([, desc]) => !served.has(desc.path)).map(([path]) => path);
  assert.equal(unserved, []);
  assert.ok(GATEWAY_ROUTES.size > 40, `only ${GATEWAY_ROUTES.size} gateway routes`);
});

t('stop both members', async () => {
  await Promise.all(members.map((m) => m.stop()));
  assert.is(runningChildren(), 0);
});

t('with --enable-grpc-gateway=false, /v3/ paths are not served (404 as etcd)', async () => {
  const off = await Promise.all([
    startMember('etcd', { name: 'm1', extraArgs: ['--enable-grpc-gateway=false'] }),
    startMember(target, { name: 'm1', extraArgs: ['--enable-grpc-gateway=false'] }),
  ]);
  try {
    const [a, b] = await Promise.all(off.map((m) => request(m, 'POST', '/v3/kv/range', JSON.stringify({ key: b64('foo') }))));
    assert.is(a.status, 404);
    assert.is(`${b.status} ${b.body}`, `${a.status} ${a.body}`);
  } finally {
    await Promise.all(off.map((m) => m.stop()));
  }
});

test.run();
