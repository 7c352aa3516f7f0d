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
import { etcdctl } from '../helpers/etcdctl.js';
import { freePort } from '../../tools/lib/ports.js';
import { startCluster, startMember, type Member, type MemberKind } from '../helpers/member.js';
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

async function strangerPeer(kind: MemberKind): Promise<string[]> {
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
        // The third member presents (and trusts) another CA's certificate.
        extraArgs: [...FLAGS, ...(i === 2 ? peerFlags(stranger, other.cert) : peerFlags(peer, ca.cert))],
      }),
    ),
  );
  try {
    await Promise.all(members.slice(0, 2).map((m) => m.waitReady(30_000)));
    const out = [`the two trusted members: ${await replicates(members.slice(0, 2))}`];
    let strangerReady = true;
    try {
      await members[2].waitReady(3000);
    } catch {
      strangerReady = false;
    }
    out.push(`the stranger becomes healthy: ${strangerReady}`);
    const got = await etcdctl(members[2].endpoint, ['get', 'p', '--consistency=s', '--print-value-only', '--command-timeout=2s']);
    out.push(`the stranger has the key: ${got.stdout.trim() === 'v'}`);
    return out;
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
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
