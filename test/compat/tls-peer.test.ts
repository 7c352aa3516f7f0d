// TLS between members, against 3-member etcd 3.4 and tetcd clusters with the same certificates: peers with
// certificates of the trusted CA and --peer-client-cert-auth form a cluster and replicate; a member whose
// certificate another CA signed cannot join (the other two serve, it never becomes healthy); --peer-auto-tls
// clusters form on self-signed certificates.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCa, makeCert, type CertFiles } from '../../tools/lib/certs.js';
import { runningChildren, tempDir } from '../helpers/cleanup.js';
import { startCluster, type MemberKind } from '../helpers/member.js';
import { oddPeerOutcome, replicates } from '../helpers/tls_peers.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';

const dir = tempDir('tetcd-tls-peer-');
const ca = makeCa(dir, 'ca');
const other = makeCa(dir, 'other');
const peer = makeCert(ca, 'peer', { cn: 'peer', sans: ['IP:127.0.0.1'] });
const stranger = makeCert(other, 'stranger', { cn: 'stranger', sans: ['IP:127.0.0.1'] });

const FLAGS = ['--heartbeat-interval', '100', '--election-timeout', '500'];
const target = compatTarget();
const t = oracleGate(test);

function peerFlags(c: CertFiles, trusted: string): string[] {
  return ['--peer-cert-file', c.cert, '--peer-key-file', c.key, '--peer-client-cert-auth', '--peer-trusted-ca-file', trusted];
}

async function trustedPeers(kind: MemberKind): Promise<string> {
  const members = await startCluster(kind, ['a', 'b', 'c'], { peerScheme: 'https', extraArgs: [...FLAGS, ...peerFlags(peer, ca.cert)] });
  try {
    return await replicates(members);
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
}

t(`peers with the trusted CA's certificates form a cluster on ${target} as on etcd`, async () => {
  const want = await trustedPeers('etcd');
  assert.is(want, 'replicated', 'etcd behaves as this test claims');
  assert.is(await trustedPeers(target), want);
});

// The third member presents (and trusts) another CA's certificate.
function strangerPeer(kind: MemberKind): Promise<string[]> {
  return oddPeerOutcome(kind, (i) => [...FLAGS, ...(i === 2 ? peerFlags(stranger, other.cert) : peerFlags(peer, ca.cert))], {
    pair: 'trusted',
    odd: 'stranger',
  });
}

t(`a member with another CA's peer certificate cannot join, on ${target} as on etcd`, async () => {
  const want = await strangerPeer('etcd');
  assert.equal(
    want,
    ['the two trusted members: replicated', 'the stranger becomes healthy: false', 'the stranger has the key: false'],
    'etcd behaves as this test claims',
  );
  assert.equal(await strangerPeer(target), want);
});

async function peerAutoTls(kind: MemberKind): Promise<string[]> {
  const members = await startCluster(kind, ['a', 'b', 'c'], { peerScheme: 'https', extraArgs: [...FLAGS, '--peer-auto-tls'] });
  try {
    return [
      `certificates in fixtures/peer: ${members.every((m) => existsSync(join(m.dataDir, 'fixtures', 'peer', 'cert.pem')))}`,
      await replicates(members),
    ];
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
}

t(`--peer-auto-tls clusters form on ${target} as on etcd`, async () => {
  const want = await peerAutoTls('etcd');
  assert.equal(want, ['certificates in fixtures/peer: true', 'replicated'], 'etcd behaves as this test claims');
  assert.equal(await peerAutoTls(target), want);
  assert.is(runningChildren(), 0);
});

test.run();
