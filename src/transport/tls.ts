// TLS material for the client and peer listeners and the peer dialer, from etcd's flags: certificate, key,
// trusted CA, CRL, client-certificate authentication, the allowed CN/hostname of the other side, cipher suites
// by Go's names, TLS 1.2 minimum, and self-signed certificates for --auto-tls/--peer-auto-tls (written to
// <data-dir>/fixtures/{client,peer} and reused, as etcd does). The files are polled; a change is read again and
// handed to the listeners, so certificates rotate without a restart: new connections get the new material,
// open ones stay.
import { readFileSync, existsSync, mkdirSync, writeFileSync, watchFile, unwatchFile } from 'node:fs';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import selfsigned from 'selfsigned';
import { type Logger, silentLogger } from '../log.js';

/** The TLS flags of one side (client or peer), as etcd's TLSInfo. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
  /** Require and verify the other side's certificate (also implied by a trusted CA file, as in etcd). */
  clientCertAuth: boolean;
  crlFile: string;
  /** Required CN of a connecting client's certificate ('' = any); peers only in etcd 3.4. */
  allowedCn: string;
  /** Required hostname (SAN) of a connecting client's certificate ('' = any). */
  allowedHostname: string;
  /** Go cipher suite names (--cipher-suites); empty = Node's defaults. */
  cipherSuites: readonly string[];
  /** A self-signed certificate: the dialer does not verify the other side (etcd's auto-TLS). */
  selfSigned: boolean;
  /**
   * Peers: a client certificate's SANs must name the connecting address (an IP SAN equal to it, or a DNS SAN
   * resolving to it), as etcd's peer listener checks unless --experimental-peer-skip-client-san-verification.
   */
  checkClientSan: boolean;
}

/** How often the certificate, key, CA and CRL files are checked for changes. */
export const TLS_RELOAD_POLL_MS = 1000;

/** etcd's TLS cipher suites (Go's names) and OpenSSL's names for them. */
const CIPHER_SUITES: Readonly<Record<string, string>> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_AES_128_GCM_SHA256: 'TLS_AES_128_GCM_SHA256',
  TLS_AES_256_GCM_SHA384: 'TLS_AES_256_GCM_SHA384',
  TLS_CHACHA20_POLY1305_SHA256: 'TLS_CHACHA20_POLY1305_SHA256',
};
/** Go does not let TLS 1.3's suites be configured: they stay on whatever --cipher-suites says. */
const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/** OpenSSL's cipher string for etcd's --cipher-suites; throws etcd's error for a name it does not know. */
export function opensslCiphers(names: readonly string[]): string | undefined {
  if (names.length === 0) return undefined;
  const out = names.map((n) => {
    const o = CIPHER_SUITES[n];
    if (o === undefined) throw new Error(`unexpected TLS cipher suite "${n}"`);
    return o;
  });
  for (const s of TLS13_SUITES) if (!out.includes(s)) out.push(s);
  return out.join(':');
}

/** True when no certificate is configured (etcd's TLSInfo.Empty). */
export function tlsFilesEmpty(f: Pick<TlsFiles, 'certFile' | 'keyFile'>): boolean {
  return f.certFile === '' && f.keyFile === '';
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * One side's TLS material, read from its files and read again when they change.
 *
 *   const m = TlsMaterial.load(files, log);
 *   const server = tls.createServer(m.serverOptions(), onSocket);
 *   m.watch(() => server.setSecureContext(m.serverOptions()));
 */
export class TlsMaterial {
  private cert!: Buffer;
  private key!: Buffer;
  private ca: Buffer | undefined;
  private crl: Buffer | undefined;
  private readonly ciphers: string | undefined;
  private readonly watchers: (() => void)[] = [];

  private constructor(
    readonly files: TlsFiles,
    private readonly log: Logger,
  ) {
    if (files.allowedCn !== '' && files.allowedHostname !== '') {
      throw new Error(
        `AllowedCN and AllowedHostname are mutually exclusive (cn="${files.allowedCn}", hostname="${files.allowedHostname}")`,
      );
    }
    this.ciphers = opensslCiphers(files.cipherSuites);
    this.read();
  }

  /** Reads the files; throws naming the file that cannot be read or used. */
  static load(files: TlsFiles, log: Logger = silentLogger): TlsMaterial {
    if (files.certFile === '' || files.keyFile === '') throw new Error('TLS needs both a certificate file and a key file');
    return new TlsMaterial(files, log);
  }

  private read(): void {
    const f = this.files;
    const cert = readPem(f.certFile, 'certificate');
    const key = readPem(f.keyFile, 'key');
    const ca = f.trustedCaFile === '' ? undefined : readPem(f.trustedCaFile, 'trusted CA file');
    const crl = f.crlFile === '' ? undefined : readPem(f.crlFile, 'CRL file');
    // Fails here, at start or at reload, rather than at the first handshake.
    tls.createSecureContext({ cert, key, ca, crl });
    this.cert = cert;
    this.key = key;
    this.ca = ca;
    this.crl = crl;
  }

  /** Whether the other side must present a certificate the trusted CA signed (etcd: --client-cert-auth or a CA). */
  get verifiesClients(): boolean {
    return this.files.clientCertAuth || this.files.trustedCaFile !== '';
  }

  /** Options for a TLS server (tls.createServer, server.setSecureContext). */
  serverOptions(): tls.TlsOptions {
    const verify = this.verifiesClients;
    return {
      cert: this.cert,
      key: this.key,
      ca: this.ca,
      crl: this.crl,
      ciphers: this.ciphers,
      minVersion: 'TLSv1.2',
      requestCert: verify,
      rejectUnauthorized: verify,
    };
  }

  /**
   * Options for dialing a peer: our certificate as the client's, the CA to verify the other side, and, as
   * etcd's dialer does, the allowed CN or hostname required of the server's certificate too.
   */
  clientOptions(): tls.ConnectionOptions {
    const o: tls.ConnectionOptions = {
      cert: this.cert,
      key: this.key,
      ca: this.ca,
      ciphers: this.ciphers,
      minVersion: 'TLSv1.2',
      // etcd's auto-TLS certificates are self-signed: nothing can verify them.
      rejectUnauthorized: !this.files.selfSigned,
    };
    if (this.files.allowedCn !== '' || this.files.allowedHostname !== '') {
      o.checkServerIdentity = (host, cert) => {
        const err = tls.checkServerIdentity(host, cert);
        if (err !== undefined) return err;
        const why = this.allowedCert(new X509Certificate(cert.raw));
        return why === null ? undefined : new Error(why);
      };
    }
    return o;
  }

  /**
   * The checks OpenSSL does not make, on an accepted connection: the client certificate's CN
   * (--peer-cert-allowed-cn) or hostname (--*-cert-allowed-hostname). null = accepted, else the reason.
   * As in etcd (Go's VerifyPeerCertificate), only where client certificates are asked for.
   */
  checkClient(socket: tls.TLSSocket): string | null {
    const f = this.files;
    if ((f.allowedCn === '' && f.allowedHostname === '') || !this.verifiesClients) return null;
    const peer = socket.getPeerX509Certificate();
    return peer === undefined ? 'no client certificate' : this.allowedCert(peer);
  }

  /** Whether a certificate has the allowed CN or hostname (null = it has, or none is required). */
  private allowedCert(cert: X509Certificate): string | null {
    const f = this.files;
    if (f.allowedCn !== '') {
      const cn = commonName(cert);
      return cn === f.allowedCn ? null : `certificate CN "${cn}" is not the allowed "${f.allowedCn}"`;
    }
    if (f.allowedHostname === '') return null;
    // Go's VerifyHostname: an IP against the IP SANs, a name against the DNS SANs only (never the CN).
    const h = f.allowedHostname;
    const ok = isIP(h) !== 0 ? cert.checkIP(h) : cert.checkHost(h, { subject: 'never' });
    return ok !== undefined ? null : `certificate is not valid for the allowed hostname "${h}"`;
  }

  /**
   * checkClient, then, for peers (unless etcd's --experimental-peer-skip-client-san-verification), the SAN
   * check of checkClientSan. null = accepted, else the reason.
   */
  async checkPeerClient(socket: tls.TLSSocket): Promise<string | null> {
    const first = this.checkClient(socket);
    if (first !== null || !this.files.checkClientSan) return first;
    return checkClientSan(socket);
  }

  /** checkClient, then checkClientSan: etcd's listeners made by transport.NewListener (https metrics URLs). */
  async checkListenerClient(socket: tls.TLSSocket): Promise<string | null> {
    return this.checkClient(socket) ?? (await checkClientSan(socket));
  }

  /**
   * Polls the files and, when one changes and the new set loads, calls onChange (e.g. setSecureContext). A
   * set that does not load (a key written before its certificate) keeps the old material and is logged.
   */
  watch(onChange: () => void): void {
    const f = this.files;
    const paths = [f.certFile, f.keyFile, f.trustedCaFile, f.crlFile].filter((p) => p !== '');
    const listener = (): void => {
      try {
        this.read();
      } catch (err) {
        this.log.warn('cannot reload TLS files; keeping the previous ones', { error: (err as Error).message });
        return;
      }
      this.log.info('reloaded TLS files', { 'cert-file': f.certFile });
      onChange();
    };
    for (const p of paths) {
      watchFile(p, { interval: TLS_RELOAD_POLL_MS, persistent: false }, listener);
      this.watchers.push(() => unwatchFile(p, listener));
    }
  }

  /** Stops watching the files. */
  close(): void {
    for (const stop of this.watchers.splice(0)) stop();
  }
}

/**
 * etcd's checkSAN: a client certificate's SANs must name the address it connects from (an IP SAN equal to
 * it, or a DNS SAN resolving to it); certificates without SANs pass. null = accepted, else the reason.
 */
export async function checkClientSan(socket: tls.TLSSocket): Promise<string | null> {
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return null;
  const remote = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  const sans = (cert.subjectAltName ?? '').split(', ');
  const ips = sans.filter((n) => n.startsWith('IP Address:')).map((n) => n.slice('IP Address:'.length));
  const names = sans.filter((n) => n.startsWith('DNS:')).map((n) => n.slice('DNS:'.length));
  if (ips.length === 0 && names.length === 0) return null;
  if (ips.length > 0 && cert.checkIP(remote) !== undefined) return null;
  for (const name of names) {
    if (name.startsWith('*.')) continue; // etcd resolves only exact names
    try {
      const found = await dnsLookup(name, { all: true });
      if (found.some((a) => a.address.replace(/^::ffff:/, '') === remote)) return null;
    } catch {
      // an unresolvable name matches nothing
    }
  }
  return `tls: "${remote}" does not match the client certificate's SANs`;
}

/** The certificate's subject CN ('' when it has none). */
export function commonName(cert: X509Certificate): string {
  const m = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject);
  return m === null ? '' : m[1];
}

/** The certificate common name a TLS socket's client presented ('' without one). */
export function clientCommonName(socket: tls.TLSSocket): string {
  const cert = socket.getPeerX509Certificate();
  return cert === undefined ? '' : commonName(cert);
}

/**
 * etcd's SelfCert: a self-signed ECDSA certificate for the hosts of the listen URLs, in `dir` as cert.pem and
 * key.pem, valid `validityYears`; files already there are reused. Peers' certificates also allow client use.
 */
export async function selfCert(
  dir: string,
  hosts: readonly string[],
  validityYears: number,
  peer: boolean,
): Promise<{ certFile: string; keyFile: string }> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const altNames = hosts.map((h) => (isIP(h) !== 0 ? { type: 7 as const, ip: h } : { type: 2 as const, value: h }));
  const now = new Date();
  const pems = await selfsigned.generate([{ name: 'organizationName', value: 'etcd' }], {
    keyType: 'ec',
    curve: 'P-521',
    notBeforeDate: now,
    notAfterDate: new Date(now.getTime() + validityYears * 365 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: peer },
      ...(altNames.length > 0 ? [{ name: 'subjectAltName' as const, altNames }] : []),
    ],
  });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  writeFileSync(certFile, pems.cert, { mode: 0o644 });
  return { certFile, keyFile };
}
