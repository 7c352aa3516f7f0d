// TLS on the client port, against etcd 3.4 and tetcd with the same certificates (made here with openssl):
// client-certificate authentication with a trusted CA and a CRL (no, revoked, expired and another CA's
// certificates refused), plaintext to a TLS port refused, HTTP/1.1 endpoints on the same TLS port, --auto-tls
// (a self-signed certificate kept across restarts), --cipher-suites (etcd's Go names; TLS 1.2 minimum; an
// unknown name refused with etcd's error) and rotation (certificate files replaced under a running member:
// new connections get the new certificate, an open connection keeps working).
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { join } from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCa, makeCert, makeCrl, type CertFiles } from '../../tools/lib/certs.js';
import { runningChildren, tempDir } from '../helpers/cleanup.js';
import { etcdctl, type CtlResult } from '../helpers/etcdctl.js';
import { unaryCall } from '../helpers/grpc-kv.js';
import { httpGet, startMember, type Member, type MemberKind } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { encodeRangeRequest, KV } from '../../src/proto/rpc.js';

const dir = tempDir('tetcd-tls-');
const ca = makeCa(dir, 'ca');
const other = makeCa(dir, 'other');
const server = makeCert(ca, 'server', { cn: 'server', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
const server2 = makeCert(ca, 'server2', { cn: 'server2', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
const alice = makeCert(ca, 'alice', { cn: 'alice' });
const bob = makeCert(ca, 'bob', { cn: 'bob' });
const expired = makeCert(ca, 'old', { cn: 'old', expired: true });
const eve = makeCert(other, 'eve', { cn: 'eve' });
const root = makeCert(ca, 'root', { cn: 'root' });
const carol = makeCert(ca, 'carol', { cn: 'carol' });
const crl = makeCrl(ca, [bob]);

const target = compatTarget();
const t = oracleGate(test);

/** etcdctl's result as the comparison sees it: the output when it worked, else only that it was refused. */
function seen(r: CtlResult): string {
  return r.code === 0 ? `ok ${r.stdout.trim().replace(/\n/g, ' | ')}` : 'refused';
}

function ctl(m: Member, certs: CertFiles | null, args: string[], extra: string[] = ['--cacert', ca.cert]): Promise<CtlResult> {
  const tlsArgs = certs === null ? [] : ['--cert', certs.cert, '--key', certs.key];
  return etcdctl(m.clientUrl, [...extra, ...tlsArgs, '--dial-timeout=1s', '--command-timeout=2s', ...args]);
}

/** A TLS handshake with the given options: the certificate's serial, or 'refused'. */
function handshake(port: number, o: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(ca.cert), ALPNProtocols: ['h2'], ...o });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('refused');
    }, 3000);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      const serial = s.getPeerX509Certificate()?.serialNumber ?? '?';
      s.end();
      resolve(serial);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve('refused');
    });
  });
}

const serialOf = (c: CertFiles) => new X509Certificate(readFileSync(c.cert)).serialNumber;

async function clientAuth(kind: MemberKind): Promise<string[]> {
  const m = await startMember(kind, {
    clientScheme: 'https',
    extraArgs: [
      '--cert-file',
      server.cert,
      '--key-file',
      server.key,
      '--client-cert-auth',
      '--trusted-ca-file',
      ca.cert,
      '--client-crl-file',
      crl,
    ],
    healthTls: { ca: readFileSync(ca.cert), cert: readFileSync(alice.cert), key: readFileSync(alice.key) },
  });
  const out: string[] = [];
  try {
    out.push(`put with a client certificate: ${seen(await ctl(m, alice, ['put', 'k', 'v']))}`);
    out.push(`get with a client certificate: ${seen(await ctl(m, alice, ['get', 'k']))}`);
    out.push(`no client certificate: ${seen(await ctl(m, null, ['get', 'k']))}`);
    const plain = await etcdctl(`http://127.0.0.1:${new URL(m.clientUrl).port}`, ['--dial-timeout=1s', '--command-timeout=2s', 'get', 'k']);
    out.push(`plaintext to the TLS port: ${seen(plain)}`);
    const tlsOpts = { ca: readFileSync(ca.cert), cert: readFileSync(alice.cert), key: readFileSync(alice.key) };
    const h = await httpGet(`${m.clientUrl}/health`, 3000, tlsOpts);
    out.push(`GET /health over TLS: ${h.status} ${h.text.trim()}`);
    const noCert = await httpGet(`${m.clientUrl}/health`, 3000, { ca: readFileSync(ca.cert) }).then(
      (r) => `${r.status}`,
      () => 'refused',
    );
    out.push(`GET /health without a client certificate: ${noCert}`);
    for (const [what, c] of [
      ['a revoked', bob],
      ['an expired', expired],
      ["another CA's", eve],
    ] as const) {
      const r = await httpGet(`${m.clientUrl}/health`, 3000, {
        ca: readFileSync(ca.cert),
        cert: readFileSync(c.cert),
        key: readFileSync(c.key),
      }).then(
        (x) => `${x.status}`,
        () => 'refused',
      );
      out.push(`GET /health with ${what} certificate: ${r}`);
    }
  } finally {
    await m.stop();
  }
  return out;
}

t(`client certificates, CA and CRL: ${target} answers as etcd does`, async () => {
  const want = await clientAuth('etcd');
  assert.equal(
    want,
    [
      'put with a client certificate: ok OK',
      'get with a client certificate: ok k | v',
      'no client certificate: refused',
      'plaintext to the TLS port: refused',
      'GET /health over TLS: 200 {"health":"true"}',
      'GET /health without a client certificate: refused',
      'GET /health with a revoked certificate: refused',
      'GET /health with an expired certificate: refused',
      "GET /health with another CA's certificate: refused",
    ],
    'etcd behaves as this test claims',
  );
  assert.equal(await clientAuth(target), want);
});

/** etcdctl's result with the error text: the output when it worked, else etcdctl's last error line. */
function said(r: CtlResult): string {
  if (r.code === 0) return `ok ${r.stdout.trim().replace(/\n/g, ' | ')}`;
  const errs = r.stderr.split('\n').filter((l) => l.startsWith('Error:'));
  return errs.length > 0 ? errs[errs.length - 1] : 'refused';
}

async function certIdentity(kind: MemberKind): Promise<string[]> {
  const m = await startMember(kind, {
    clientScheme: 'https',
    extraArgs: ['--cert-file', server.cert, '--key-file', server.key, '--client-cert-auth', '--trusted-ca-file', ca.cert],
    healthTls: { ca: readFileSync(ca.cert), cert: readFileSync(root.cert), key: readFileSync(root.key) },
  });
  const out: string[] = [];
  try {
    for (const args of [
      ['user', 'add', 'root:rootpw'],
      ['user', 'grant-role', 'root', 'root'],
      ['user', 'add', 'alice:alicepw'],
      ['role', 'add', 'reader'],
      ['role', 'grant-permission', 'reader', 'read', 'k', '--prefix'],
      ['user', 'grant-role', 'alice', 'reader'],
      ['put', 'k1', 'v1'],
      ['auth', 'enable'],
    ]) {
      out.push(`setup ${args.join(' ')}: ${said(await ctl(m, root, args))}`);
    }
    out.push(`alice's certificate reads: ${said(await ctl(m, alice, ['get', 'k1']))}`);
    out.push(`alice's certificate writes: ${said(await ctl(m, alice, ['put', 'k1', 'x']))}`);
    out.push(`root's certificate writes: ${said(await ctl(m, root, ['put', 'k2', 'v2']))}`);
    out.push(`root's certificate lists users: ${said(await ctl(m, root, ['user', 'list']))}`);
    out.push(`an unknown user's certificate: ${said(await ctl(m, carol, ['get', 'k1']))}`);
    out.push(`alice's certificate with root's password: ${said(await ctl(m, alice, ['put', 'k3', 'v3', '--user', 'root:rootpw']))}`);
  } finally {
    await m.stop();
  }
  return out;
}

t(`with --client-cert-auth the certificate's CN is the user: ${target} as etcd`, async () => {
  const want = await certIdentity('etcd');
  assert.equal(
    want.slice(8),
    [
      "alice's certificate reads: ok k1 | v1",
      "alice's certificate writes: Error: etcdserver: permission denied",
      "root's certificate writes: ok OK",
      "root's certificate lists users: ok alice | root",
      "an unknown user's certificate: Error: etcdserver: permission denied",
      "alice's certificate with root's password: ok OK",
    ],
    'etcd behaves as this test claims',
  );
  assert.equal(await certIdentity(target), want);
});

async function autoTls(kind: MemberKind): Promise<string[]> {
  const m = await startMember(kind, { clientScheme: 'https', extraArgs: ['--auto-tls'] });
  const out: string[] = [];
  try {
    const certFile = join(m.dataDir, 'fixtures', 'client', 'cert.pem');
    out.push(`certificate in fixtures/client: ${existsSync(certFile)}`);
    const first = existsSync(certFile) ? new X509Certificate(readFileSync(certFile)) : undefined;
    out.push(`valid for 127.0.0.1: ${first?.checkIP('127.0.0.1') === '127.0.0.1'}`);
    out.push(
      `put, not verifying the server: ${seen(await ctl(m, null, ['put', 'k', 'v'], ['--insecure-transport=false', '--insecure-skip-tls-verify']))}`,
    );
    out.push(`get, verifying it against the test CA: ${seen(await ctl(m, null, ['get', 'k']))}`);
    await m.restart();
    const again = new X509Certificate(readFileSync(certFile));
    out.push(`the same certificate after a restart: ${again.fingerprint256 === first?.fingerprint256}`);
    out.push(
      `get after the restart: ${seen(await ctl(m, null, ['get', 'k'], ['--insecure-transport=false', '--insecure-skip-tls-verify']))}`,
    );
  } finally {
    await m.stop();
  }
  return out;
}

t(`--auto-tls: ${target} makes and keeps a self-signed certificate as etcd does`, async () => {
  const want = await autoTls('etcd');
  assert.equal(
    want,
    [
      'certificate in fixtures/client: true',
      'valid for 127.0.0.1: true',
      'put, not verifying the server: ok OK',
      'get, verifying it against the test CA: refused',
      'the same certificate after a restart: true',
      'get after the restart: ok k | v',
    ],
    'etcd behaves as this test claims',
  );
  assert.equal(await autoTls(target), want);
});

async function cipherSuites(kind: MemberKind): Promise<string[]> {
  const out: string[] = [];
  const m = await startMember(kind, {
    clientScheme: 'https',
    extraArgs: ['--cert-file', server.cert, '--key-file', server.key, '--cipher-suites', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'],
  });
  const port = Number(new URL(m.clientUrl).port);
  const serial = serialOf(server);
  try {
    const tls12 = { maxVersion: 'TLSv1.2' as const };
    const allowed = await handshake(port, { ...tls12, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    out.push(`TLS 1.2 with the allowed suite: ${allowed === serial ? 'ok' : allowed}`);
    out.push(`TLS 1.2 with another suite: ${await handshake(port, { ...tls12, ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' })}`);
    out.push(`TLS 1.1: ${await handshake(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'ALL:@SECLEVEL=0' })}`);
  } finally {
    await m.stop();
  }
  const bad = await startMember(kind, {
    clientScheme: 'https',
    extraArgs: ['--cert-file', server.cert, '--key-file', server.key, '--cipher-suites', 'TLS_BOGUS'],
    waitReady: false,
  });
  try {
    const exited = await bad.exitsWithin(15_000);
    const said = /unexpected TLS cipher suite "TLS_BOGUS"/.test(bad.logs()) ? 'etcd’s error' : bad.logs();
    out.push(`unknown suite: ${exited ? 'exits' : 'still running'}, saying ${said}`);
  } finally {
    await bad.stop();
  }
  return out;
}

t(`--cipher-suites: ${target} allows what etcd allows`, async () => {
  const want = await cipherSuites('etcd');
  assert.equal(
    want,
    [
      'TLS 1.2 with the allowed suite: ok',
      'TLS 1.2 with another suite: refused',
      'TLS 1.1: refused',
      'unknown suite: exits, saying etcd’s error',
    ],
    'etcd behaves as this test claims',
  );
  assert.equal(await cipherSuites(target), want);
});

async function tlsToPlaintext(kind: MemberKind): Promise<string[]> {
  const m = await startMember(kind);
  try {
    const port = Number(new URL(m.clientUrl).port);
    return [
      `a TLS handshake with a plaintext port: ${await handshake(port, {})}`,
      `the port still serves plaintext: ${seen(await etcdctl(m.endpoint, ['put', 'k', 'v']))}`,
    ];
  } finally {
    await m.stop();
  }
}

t(`TLS to a plaintext port fails cleanly on ${target} as on etcd`, async () => {
  const want = await tlsToPlaintext('etcd');
  assert.equal(
    want,
    ['a TLS handshake with a plaintext port: refused', 'the port still serves plaintext: ok OK'],
    'etcd behaves as this test claims',
  );
  assert.equal(await tlsToPlaintext(target), want);
});

async function rotation(kind: MemberKind): Promise<string[]> {
  const live = { cert: join(dir, `${kind}-live.pem`), key: join(dir, `${kind}-live-key.pem`) };
  copyFileSync(server.cert, live.cert);
  copyFileSync(server.key, live.key);
  const m = await startMember(kind, { clientScheme: 'https', extraArgs: ['--cert-file', live.cert, '--key-file', live.key] });
  const port = Number(new URL(m.clientUrl).port);
  const out: string[] = [];
  const session = http2.connect(m.clientUrl, { ca: readFileSync(ca.cert) });
  session.on('error', () => {});
  const range = () =>
    unaryCall(session, KV.methods.Range.path, encodeRangeRequest({ key: Buffer.from('k') }), 3000).then(
      () => 'ok',
      (e: Error) => `failed: ${e.message}`,
    );
  try {
    out.push(`before: ${(await handshake(port, {})) === serialOf(server) ? 'first certificate' : 'other'}; range ${await range()}`);
    // The key first, then the certificate: a reader between the two copies sees a mismatched pair.
    copyFileSync(server2.key, live.key);
    copyFileSync(server2.cert, live.cert);
    let got = '';
    for (let i = 0; i < 50 && got !== serialOf(server2); i++) {
      got = await handshake(port, {});
      if (got !== serialOf(server2)) await new Promise((r) => setTimeout(r, 100));
    }
    out.push(`new connections after the files changed: ${got === serialOf(server2) ? 'second certificate' : got}`);
    out.push(`the connection opened before: range ${await range()}`);
  } finally {
    session.destroy();
    await m.stop();
  }
  return out;
}

t(`rotation: ${target} serves replaced certificate files to new connections and keeps open ones, as etcd`, async () => {
  const want = await rotation('etcd');
  assert.equal(
    want,
    [
      'before: first certificate; range ok',
      'new connections after the files changed: second certificate',
      'the connection opened before: range ok',
    ],
    'etcd behaves as this test claims',
  );
  assert.equal(await rotation(target), want);
  assert.is(runningChildren(), 0);
});

test.run();
