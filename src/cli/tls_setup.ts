// The member's TLS from etcd's flags, decided as etcd's embed package decides it: auto-TLS only when no
// certificate is given (written to <data-dir>/fixtures/{client,peer}), an https:// URL without a certificate
// refused with etcd's message, certificate files and client-certificate authentication on an http:// URL
// ignored with etcd's warning.
import { join } from 'node:path';
import type { Config, TlsConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { TlsMaterial, selfCert, tlsFilesEmpty, type TlsFiles } from '../transport/tls.js';
import type { PeerTls } from '../transport/transport.js';

/** One side's material, or none when every URL of that side is http://. */
export interface SideTls {
  material: TlsMaterial | undefined;
  files: TlsFiles | undefined;
}

function filesOf(t: TlsConfig, cipherSuites: readonly string[], peer: boolean): TlsFiles {
  return {
    certFile: t.certFile,
    keyFile: t.keyFile,
    trustedCaFile: t.trustedCaFile,
    clientCertAuth: t.clientCertAuth,
    crlFile: t.crlFile,
    allowedCn: t.allowedCn,
    allowedHostname: t.allowedHostname,
    cipherSuites,
    selfSigned: false,
    checkClientSan: peer && !t.skipClientSanVerify,
  };
}

async function side(c: Config, log: Logger, peer: boolean): Promise<SideTls> {
  const t = peer ? c.peerTls : c.clientTls;
  const urls = peer ? c.listenPeerUrls : c.listenClientUrls;
  const what = peer ? 'peer' : 'client';
  let files = filesOf(t, c.cipherSuites, peer);
  if (t.autoTls) {
    if (!tlsFilesEmpty(files)) log.warn(`ignoring ${what} auto TLS since certs given`);
    else {
      const hosts = urls.map((u) => u.hostname.replace(/^\[|\]$/g, ''));
      const dir = join(c.dataDir, 'fixtures', what);
      const made = await selfCert(dir, hosts, c.selfSignedCertValidityYears, peer);
      files = { ...files, ...made, selfSigned: true };
    }
  }
  const empty = tlsFilesEmpty(files);
  for (const u of urls) {
    if (u.scheme === 'https' && empty) {
      const flags = peer ? '--peer-cert-file, --peer-key-file' : '--cert-file, --key-file';
      throw new Error(`TLS key/cert (${flags}) must be provided for ${what} url ${u.href} with HTTPS scheme`);
    }
    if (u.scheme === 'http') {
      const key = `${what}-url`;
      if (!empty) log.warn('scheme is HTTP while key and cert files are present; ignoring key and cert files', { [key]: u.href });
      if (t.clientCertAuth) {
        const flag = peer ? '--peer-client-cert-auth' : '--client-cert-auth';
        log.warn(`scheme is HTTP while ${flag} is enabled; ignoring client cert auth for this URL`, { [key]: u.href });
      }
    }
  }
  if (empty) return { material: undefined, files: undefined };
  const material = TlsMaterial.load(files, log);
  log.info(`starting with ${what} TLS`, {
    'cert-file': files.certFile,
    'key-file': files.keyFile,
    'trusted-ca-file': files.trustedCaFile,
    'client-cert-auth': files.clientCertAuth,
    'crl-file': files.crlFile,
    'cipher-suites': files.cipherSuites,
  });
  return { material, files };
}

/** The client side's TLS (listeners of https:// client URLs). */
export function clientTls(c: Config, log: Logger): Promise<SideTls> {
  return side(c, log, false);
}

/** The peer side's TLS (listeners of https:// peer URLs, and dialing https:// peers). */
export function peerTls(c: Config, log: Logger): Promise<SideTls> {
  return side(c, log, true);
}

/** What the peer transport takes from the peer material. */
export function transportTls(m: TlsMaterial): PeerTls {
  return { server: m.serverOptions(), client: m.clientOptions(), verifyClient: (s) => m.checkPeerClient(s) };
}
