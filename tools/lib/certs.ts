// Certificates made with openssl at test and bench time (nothing private is checked in): a CA, certificates it
// signs for servers and clients (CN, SANs, validity), and a CRL revoking some of them.
//
//   const ca = makeCa(dir, 'ca');
//   const server = makeCert(ca, 'server', { cn: 'server', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
//   const crl = makeCrl(ca, [client]);
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A certificate and its key on disk. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** A CA on disk, with openssl's database for revocations. */
export interface Ca extends CertFiles {
  dir: string;
}

function openssl(args: string[], cwd?: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA (EC P-256) named `name` under dir/name. */
export function makeCa(dir: string, name: string): Ca {
  const d = join(dir, name);
  mkdirSync(join(d, 'db'), { recursive: true });
  writeFileSync(join(d, 'db', 'index.txt'), '');
  writeFileSync(join(d, 'db', 'crlnumber'), '01\n');
  const key = join(d, 'ca-key.pem');
  const cert = join(d, 'ca.pem');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    key,
    '-out',
    cert,
    '-days',
    '30',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { dir: d, cert, key };
}

/** What a leaf certificate says. */
export interface CertOptions {
  cn: string;
  /** openssl subjectAltName entries, e.g. 'IP:127.0.0.1', 'DNS:localhost'. */
  sans?: string[];
  /** Days valid from now (default 30). */
  days?: number;
  /** Already expired: valid from 3 days ago to yesterday. */
  expired?: boolean;
}

/** A leaf certificate `name` signed by the CA, good for both server and client use. */
export function makeCert(ca: Ca, name: string, o: CertOptions): CertFiles {
  const key = join(ca.dir, `${name}-key.pem`);
  const csr = join(ca.dir, `${name}.csr`);
  const cert = join(ca.dir, `${name}.pem`);
  const ext = join(ca.dir, `${name}.ext`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${o.cn}`]);
  const lines = ['basicConstraints=CA:FALSE', 'keyUsage=digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth'];
  if (o.sans !== undefined && o.sans.length > 0) lines.push(`subjectAltName=${o.sans.join(',')}`);
  writeFileSync(ext, `${lines.join('\n')}\n`);
  // `openssl ca` records the certificate in the CA's database, which a CRL needs.
  const conf = caConfig(ca);
  const dates = o.expired === true ? ['-startdate', ymd(-3), '-enddate', ymd(-1)] : ['-days', String(o.days ?? 30)];
  openssl(['ca', '-batch', '-config', conf, '-in', csr, '-out', cert, '-extfile', ext, '-notext', ...dates]);
  return { cert, key };
}

/** A CRL of the CA revoking the given certificates. */
export function makeCrl(ca: Ca, revoked: CertFiles[]): string {
  const conf = caConfig(ca);
  for (const c of revoked) openssl(['ca', '-batch', '-config', conf, '-revoke', c.cert]);
  const crl = join(ca.dir, 'crl.pem');
  openssl(['ca', '-batch', '-config', conf, '-gencrl', '-out', crl, '-crldays', '7']);
  return crl;
}

function ymd(daysFromNow: number): string {
  const d = new Date(Date.now() + daysFromNow * 86_400_000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}000000Z`;
}

function caConfig(ca: Ca): string {
  const conf = join(ca.dir, 'ca.cnf');
  writeFileSync(
    conf,
    [
      '[ca]',
      'default_ca = test_ca',
      '[test_ca]',
      `dir = ${ca.dir}`,
      'database = $dir/db/index.txt',
      'new_certs_dir = $dir/db',
      'rand_serial = yes',
      'crlnumber = $dir/db/crlnumber',
      `certificate = ${ca.cert}`,
      `private_key = ${ca.key}`,
      'default_md = sha256',
      'default_crl_days = 7',
      'policy = any',
      'unique_subject = no',
      'copy_extensions = none',
      '[any]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  return conf;
}
