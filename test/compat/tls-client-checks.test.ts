// The client side's checks beyond the CA, against etcd 3.4 and tetcd with the same certificates (made here
// with openssl): https --listen-metrics-urls (served with the client TLS material: /metrics and /health,
// the CA, the CRL, and, as etcd's listeners made by transport.NewListener, the client certificate's SANs
// against the address it connects from), --client-cert-allowed-hostname (on the client URL and the
// metrics URL alike) and the gateway's WebSockets over TLS.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCa, makeCert, makeCrl, type CertFiles } from '../../tools/lib/certs.js';
import { runningChildren, tempDir } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { freePort } from '../../tools/lib/ports.js';
import { httpGet, startMember, type MemberKind } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { WsClient, wsConnect } from '../helpers/ws.js';

const dir = tempDir('tetcd-tls-client-checks-');
const ca = makeCa(dir, 'ca');
const server = makeCert(ca, 'server', { cn: 'server', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
const alice = makeCert(ca, 'alice', { cn: 'alice' });
const bob = makeCert(ca, 'bob', { cn: 'bob' });
const far = makeCert(ca, 'far', { cn: 'far', sans: ['IP:127.0.0.2'] });
const named = makeCert(ca, 'named', { cn: 'named', sans: ['DNS:client.example', 'IP:127.0.0.1'] });
const crl = makeCrl(ca, [bob]);

const target = compatTarget();
const t = oracleGate(test);

/** GET over TLS presenting `c` (or no certificate): status and body's first line, or 'refused'. */
function get(url: string, c: CertFiles | null): Promise<string> {
  const o = c === null ? {} : { cert: readFileSync(c.cert), key: readFileSync(c.key) };
  return httpGet(url, 3000, { ca: readFileSync(ca.cert), agent: false, ...o }).then(
    (r) => `${r.status} ${r.text.split('\n')[0].slice(0, 40)}`,
    () => 'refused',
  );
}

const healthTls = () => ({ ca: readFileSync(ca.cert), cert: readFileSync(alice.cert), key: readFileSync(alice.key) });

async function metricsUrl(kind: MemberKind): Promise<string[]> {
  const port = await freePort();
  const murl = `https://127.0.0.1:${port}`;
  const m = await startMember(kind, {
    clientScheme: 'https',
    extraArgs: [
      ...['--cert-file', server.cert, '--key-file', server.key, '--client-cert-auth', '--trusted-ca-file', ca.cert],
      ...['--client-crl-file', crl, '--listen-metrics-urls', murl],
    ],
    healthTls: healthTls(),
  });
  const out: string[] = [];
  try {
    out.push(`GET /health: ${await get(`${murl}/health`, alice)}`);
    const metrics = await get(`${murl}/metrics`, alice);
    out.push(`GET /metrics: ${metrics.startsWith('200 ') ? '200' : metrics}`);
    const body = await httpGet(`${murl}/metrics`, 3000, { ...healthTls(), agent: false }).then(
      (r) => r.text,
      () => '',
    );
    out.push(`etcd_server_has_leader 1 in it: ${/^etcd_server_has_leader 1$/m.test(body)}`);
    out.push(`GET /version: ${(await get(`${murl}/version`, alice)).split(' ')[0]}`);
    out.push(`no client certificate: ${await get(`${murl}/health`, null)}`);
    out.push(`a revoked certificate: ${await get(`${murl}/health`, bob)}`);
    out.push(
      `plaintext: ${await httpGet(`http://127.0.0.1:${port}/health`, 3000).then(
        (r) => `${r.status}`,
        () => 'refused',
      )}`,
    );
    out.push(`a certificate naming another address, metrics URL: ${await get(`${murl}/health`, far)}`);
    out.push(`the same certificate, client URL: ${await get(`${m.clientUrl}/health`, far)}`);
    // The gateway's WebSockets on the TLS client port (wss), with a client certificate.
    const ws = await wsConnect(`${m.clientUrl}/v3/watch`, { tls: healthTls() });
    if (ws instanceof WsClient) {
      ws.send(JSON.stringify({ create_request: { key: Buffer.from('k').toString('base64') } }));
      const first = (await ws.next(5000)) ?? `<${ws.state}>`;
      out.push(`a watch over wss: ${/"created":true/.test(first) ? 'created' : first}`);
      ws.close();
    } else out.push(`a watch over wss: refused ${ws.status}`);
  } finally {
    await m.stop();
  }
  return out;
}

t(`https --listen-metrics-urls: ${target} serves and refuses as etcd does`, async () => {
  const want = await metricsUrl('etcd');
  assert.equal(
    want,
    [
      'GET /health: 200 {"health":"true"}',
      'GET /metrics: 200',
      'etcd_server_has_leader 1 in it: true',
      'GET /version: 404',
      'no client certificate: refused',
      'a revoked certificate: refused',
      'plaintext: refused',
      'a certificate naming another address, metrics URL: refused',
      'the same certificate, client URL: 200 {"health":"true"}',
      'a watch over wss: created',
    ],
    'etcd behaves as this test claims',
  );
  assert.equal(await metricsUrl(target), want);
});

async function allowedHostname(kind: MemberKind): Promise<string[]> {
  const murl = `https://127.0.0.1:${await freePort()}`;
  const m = await startMember(kind, {
    clientScheme: 'https',
    extraArgs: [
      ...['--cert-file', server.cert, '--key-file', server.key, '--client-cert-auth', '--trusted-ca-file', ca.cert],
      ...['--client-cert-allowed-hostname', 'client.example', '--listen-metrics-urls', murl],
    ],
    healthTls: { ca: readFileSync(ca.cert), cert: readFileSync(named.cert), key: readFileSync(named.key) },
  });
  const out: string[] = [];
  const ctl = (c: CertFiles) =>
    etcdctl(m.clientUrl, [
      '--cacert',
      ca.cert,
      '--cert',
      c.cert,
      '--key',
      c.key,
      '--dial-timeout=1s',
      '--command-timeout=2s',
      'put',
      'k',
      'v',
    ]);
  try {
    out.push(`the allowed host's certificate, client URL: ${await get(`${m.clientUrl}/health`, named)}`);
    out.push(`the allowed host's certificate, etcdctl put: ${(await ctl(named)).code === 0 ? 'ok' : 'refused'}`);
    out.push(`another certificate of the CA, client URL: ${await get(`${m.clientUrl}/health`, alice)}`);
    out.push(`another certificate of the CA, etcdctl put: ${(await ctl(alice)).code === 0 ? 'ok' : 'refused'}`);
    out.push(`the allowed host's certificate, metrics URL: ${await get(`${murl}/health`, named)}`);
    out.push(`another certificate of the CA, metrics URL: ${await get(`${murl}/health`, alice)}`);
  } finally {
    await m.stop();
  }
  return out;
}

t(`--client-cert-allowed-hostname: ${target} refuses other certificates as etcd does`, async () => {
  const want = await allowedHostname('etcd');
  assert.equal(
    want,
    [
      'the allowed host\'s certificate, client URL: 200 {"health":"true"}',
      "the allowed host's certificate, etcdctl put: ok",
      'another certificate of the CA, client URL: refused',
      'another certificate of the CA, etcdctl put: refused',
      'the allowed host\'s certificate, metrics URL: 200 {"health":"true"}',
      'another certificate of the CA, metrics URL: refused',
    ],
    'etcd behaves as this test claims',
  );
  assert.equal(await allowedHostname(target), want);
  assert.is(runningChildren(), 0);
});

test.run();
