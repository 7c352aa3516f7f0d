// What a member checks of the other members' certificates beyond the CA, against 3-member etcd 3.4 and tetcd
// clusters with the same certificates (made here with openssl): --peer-cert-allowed-cn, --peer-cert-allowed-
// hostname, --peer-crl-file (where tetcd is stricter than etcd: see there), and the SANs of a peer's
// certificate against the address it connects from. In each scenario two members have good certificates and
// the third one that one check refuses; what the cluster does with it is compared with etcd's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCa, makeCert, makeCrl, type CertFiles } from '../../tools/lib/certs.js';
import { runningChildren, tempDir } from '../helpers/cleanup.js';
import type { MemberKind } from '../helpers/member.js';
import { oddPeerOutcome } from '../helpers/tls_peers.js';
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

/** A 3-member cluster whose third member presents `third`; every member has `more` flags. */
function oddPeer(kind: MemberKind, third: CertFiles, more: string[]): Promise<string[]> {
  return oddPeerOutcome(kind, (i) => [...FLAGS, ...peerFlags(i === 2 ? third : good, more)], { pair: 'good', odd: 'third' });
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
