// What a member checks of the other members' certificates beyond the CA, against 3-member etcd 3.4 and tetcd
// clusters with the same certificates (made here with openssl): --peer-cert-allowed-cn, --peer-cert-allowed-
// hostname, --peer-crl-file (where tetcd is stricter than etcd: see there), and the SANs of a peer's
// certificate against the address it connects from. In each scenario two members have good certificates and
// the third one that one check refuses; what the cluster does with it is compared with etcd's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCa, makeCert, makeCrl, type CertFiles } from '../../tools/lib/certs.js';
import { runningChildren, tempDir } from '../helpers/cleanup.js';
import { etcdctl } from '../helpers/etcdctl.js';
import { freePort } from '../../tools/lib/ports.js';
import { startMember, type Member, type MemberKind } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';

const dir = tempDir('tetcd-tls-peer-checks-');
const ca = makeCa(dir, 'ca');
const good = makeCert(ca, 'good', { cn: 'peer', sans: ['IP:127.0.0.1', 'DNS:peer.example'] });
const wrongCn = makeCert(ca, 'wrong-cn', { cn: 'intruder', sans: ['IP:127.0.0.1', 'DNS:peer.example'] });
const wrongHost = makeCert(ca, 'wrong-host', { cn: 'peer', sans: ['IP:127.0.0.1', 'DNS:other.example'] });
const wrongSan = makeCert(ca, 'wrong-san', { cn: 'peer', sans: ['IP:127.0.0.2'] });
const revoked = makeCert(ca, 'revoked', { cn: 'peer', sans: ['IP:127.0.0.1', 'DNS:peer.example'] });
const crl = makeCrl(ca, [revoked]);

const FLAGS = ['--heartbeat-interval', '100', '--election-timeout', '500'];
const target = compatTarget();
const t = oracleGate(test);

function peerFlags(c: CertFiles, more: string[] = []): string[] {
  return ['--peer-cert-file', c.cert, '--peer-key-file', c.key, '--peer-client-cert-auth', '--peer-trusted-ca-file', ca.cert, ...more];
}

/** Puts through the first member and reads the key serializably from the last until it is there (or 5 s pass). */
async function replicates(members: Member[]): Promise<string> {
  const put = await etcdctl(members[0].endpoint, ['put', 'p', 'v']);
  if (put.code !== 0) return `put failed: ${put.stderr.trim()}`;
  const last = members[members.length - 1];
  for (let i = 0; i < 50; i++) {
    const got = await etcdctl(last.endpoint, ['get', 'p', '--consistency=s', '--print-value-only']);
    if (got.stdout.trim() === 'v') return 'replicated';
    await new Promise((r) => setTimeout(r, 100));
  }
  return 'not replicated';
}

/** A 3-member cluster whose third member presents `third`; every member has `more` flags. */
async function oddPeer(kind: MemberKind, third: CertFiles, more: string[]): Promise<string[]> {
  const ports: { client: number; peer: number }[] = [];
  for (let i = 0; i < 3; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const names = ['a', 'b', 'c'];
  const initialCluster = names.map((n, i) => `${n}=https://127.0.0.1:${ports[i].peer}`).join(',');
  const members = await Promise.all(
    names.map((name, i) =>
      startMember(kind, {
        name,
        initialCluster,
        clientPort: ports[i].client,
        peerPort: ports[i].peer,
        peerScheme: 'https',
        waitReady: false,
        extraArgs: [...FLAGS, ...peerFlags(i === 2 ? third : good, more)],
      }),
    ),
  );
  try {
    await Promise.all(members.slice(0, 2).map((m) => m.waitReady(30_000)));
    const out = [`the two good members: ${await replicates(members.slice(0, 2))}`];
    let ready = true;
    try {
      await members[2].waitReady(3000);
    } catch {
      ready = false;
    }
    out.push(`the third becomes healthy: ${ready}`);
    const got = await etcdctl(members[2].endpoint, ['get', 'p', '--consistency=s', '--print-value-only', '--command-timeout=2s']);
    out.push(`the third has the key: ${got.stdout.trim() === 'v'}`);
    return out;
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
}

const REFUSED = ['the two good members: replicated', 'the third becomes healthy: false', 'the third has the key: false'];

for (const [what, third, more] of [
  ['--peer-cert-allowed-cn: a member whose certificate has another CN', wrongCn, ['--peer-cert-allowed-cn', 'peer']],
  [
    '--peer-cert-allowed-hostname: a member whose certificate names another host',
    wrongHost,
    ['--peer-cert-allowed-hostname', 'peer.example'],
  ],
  ['a member whose certificate names another address than its own', wrongSan, []],
] as const) {
  t(`${what}: ${target} as etcd`, async () => {
    // Both clusters at once (each scenario waits seconds for the third member): the test stays short.
    const [want, got] = await Promise.all([oddPeer('etcd', third, [...more]), oddPeer(target, third, [...more])]);
    assert.equal(want, REFUSED, 'etcd behaves as this test claims');
    assert.equal(got, want);
  });
}

// etcd 3.4 checks the CRL only on the connections a member accepts, and its members also receive over the
// connections they dial (stream readers): the others dial the revoked member, so it joins and replicates
// there. tetcd sends every message over a connection its sender dialed, so the revoked member's own
// connections are its only way to speak: it is refused, as the flag means. This divergence is deliberate.
t(`--peer-crl-file: a member whose certificate is revoked is refused by ${target} (etcd 3.4 lets it join)`, async () => {
  const flags = ['--peer-crl-file', crl];
  const [etcd, got] = await Promise.all([oddPeer('etcd', revoked, flags), oddPeer(target, revoked, flags)]);
  assert.equal(
    etcd,
    ['the two good members: replicated', 'the third becomes healthy: true', 'the third has the key: true'],
    'etcd behaves as this test claims',
  );
  assert.equal(got, REFUSED);
});

t('no member process is left running', () => {
  assert.is(runningChildren(), 0);
});

test.run();
