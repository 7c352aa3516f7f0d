// --peer-cert-allowed-cn and --*-cert-allowed-hostname on both ends of a connection, as etcd's TLSInfo
// applies them (its VerifyPeerCertificate sits in the config both its listener and its dialer use): a
// dialing member refuses a server certificate without the allowed CN or hostname; a listener checks them
// only where it asks for client certificates; a hostname is matched against the SANs only, never the CN.
import tls from 'node:tls';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCa, makeCert, type CertFiles } from '../../tools/lib/certs.js';
import { tempDir } from '../helpers/cleanup.js';
import { TlsMaterial, type TlsFiles } from '../../src/transport/tls.js';

const dir = tempDir('tetcd-tls-allowed-');
const ca = makeCa(dir, 'ca');
const good = makeCert(ca, 'good', { cn: 'peer', sans: ['IP:127.0.0.1', 'DNS:peer.example'] });
const wrongCn = makeCert(ca, 'wrong-cn', { cn: 'intruder', sans: ['IP:127.0.0.1', 'DNS:peer.example'] });
const cnOnly = makeCert(ca, 'cn-only', { cn: 'peer.example', sans: ['IP:127.0.0.1'] });

function material(cert: CertFiles, o: Partial<TlsFiles>): TlsMaterial {
  return TlsMaterial.load({
    certFile: cert.cert,
    keyFile: cert.key,
    trustedCaFile: ca.cert,
    clientCertAuth: true,
    crlFile: '',
    allowedCn: '',
    allowedHostname: '',
    cipherSuites: [],
    selfSigned: false,
    checkClientSan: false,
    ...o,
  });
}

/** Dials a TLS server presenting `serverCert` with the dialer's material: 'ok' or the error. */
async function dial(serverCert: CertFiles, dialer: TlsMaterial): Promise<string> {
  const server = tls.createServer(material(serverCert, { clientCertAuth: false, trustedCaFile: '' }).serverOptions(), (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<string>((resolve) => {
      const s = tls.connect({ ...dialer.clientOptions(), host: '127.0.0.1', port });
      s.once('secureConnect', () => {
        s.destroy();
        resolve('ok');
      });
      s.once('error', (e) => resolve(e.message));
    });
  } finally {
    server.close();
  }
}

test('a dialer with --peer-cert-allowed-cn refuses a server certificate with another CN', async () => {
  const dialer = material(good, { allowedCn: 'peer' });
  assert.is(await dial(good, dialer), 'ok');
  assert.is(await dial(wrongCn, dialer), 'certificate CN "intruder" is not the allowed "peer"');
  assert.is(await dial(wrongCn, material(good, {})), 'ok', 'without the flag any certificate of the CA will do');
});

test('a dialer with --peer-cert-allowed-hostname matches the SANs, not the CN', async () => {
  assert.is(await dial(good, material(good, { allowedHostname: 'peer.example' })), 'ok');
  assert.is(
    await dial(cnOnly, material(good, { allowedHostname: 'peer.example' })),
    'certificate is not valid for the allowed hostname "peer.example"',
  );
  assert.is(await dial(good, material(good, { allowedHostname: '127.0.0.1' })), 'ok');
});

test('a listener checks the allowed CN only where it asks for client certificates (as Go does)', async () => {
  const asking = material(good, { allowedCn: 'peer' });
  const notAsking = material(good, { allowedCn: 'peer', clientCertAuth: false, trustedCaFile: '' });
  const server = tls.createServer(notAsking.serverOptions(), (s) => {
    results.push(notAsking.checkClient(s) ?? 'accepted');
    s.end();
  });
  const results: string[] = [];
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  try {
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      s.once('secureConnect', () => resolve());
      s.once('error', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(results, ['accepted']);
    assert.ok(asking.verifiesClients && !notAsking.verifiesClients);
  } finally {
    server.close();
  }
});

test.run();
