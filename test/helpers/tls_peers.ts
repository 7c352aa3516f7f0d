// Three-member TLS clusters for the peer certificate tests: two members whose certificates pass and a third whose
// certificate one check refuses, and what the cluster then does (the two replicate; the third neither becomes
// healthy nor gets their data), as lines an etcd 3.4 run and a tetcd run can be compared by.
import { etcdctl } from './etcdctl.js';
import { freePort } from '../../tools/lib/ports.js';
import { startMember, type Member, type MemberKind } from './member.js';

/** Puts through the first member and reads the key serializably from the last until it is there (or 5 s pass). */
export async function replicates(members: Member[]): Promise<string> {
  const put = await etcdctl(members[0]!.endpoint, ['put', 'p', 'v']);
  if (put.code !== 0) return `put failed: ${put.stderr.trim()}`;
  const last = members[members.length - 1]!;
  for (let i = 0; i < 50; i++) {
    const got = await etcdctl(last.endpoint, ['get', 'p', '--consistency=s', '--print-value-only']);
    if (got.stdout.trim() === 'v') return 'replicated';
    await new Promise((r) => setTimeout(r, 100));
  }
  return 'not replicated';
}

/**
 * Starts members a, b and c over https peer URLs, member i with `flagsOf(i)`, and reports: whether a and b
 * replicate, whether c becomes healthy within 3 s, and whether c has their key. `labels` name the two kinds of
 * member in the lines ("the two trusted members: replicated", "the stranger becomes healthy: false", ...).
 */
export async function oddPeerOutcome(
  kind: MemberKind,
  flagsOf: (i: number) => string[],
  labels: { pair: string; odd: string },
): Promise<string[]> {
  const ports: { client: number; peer: number }[] = [];
  for (let i = 0; i < 3; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const names = ['a', 'b', 'c'];
  const initialCluster = names.map((n, i) => `${n}=https://127.0.0.1:${ports[i]!.peer}`).join(',');
  const members = await Promise.all(
    names.map((name, i) =>
      startMember(kind, {
        name,
        initialCluster,
        clientPort: ports[i]!.client,
        peerPort: ports[i]!.peer,
        peerScheme: 'https',
        waitReady: false,
        extraArgs: flagsOf(i),
      }),
    ),
  );
  try {
    await Promise.all(members.slice(0, 2).map((m) => m.waitReady(30_000)));
    const out = [`the two ${labels.pair} members: ${await replicates(members.slice(0, 2))}`];
    let ready = true;
    try {
      await members[2]!.waitReady(3000);
    } catch {
      ready = false;
    }
    out.push(`the ${labels.odd} becomes healthy: ${ready}`);
    const got = await etcdctl(members[2]!.endpoint, ['get', 'p', '--consistency=s', '--print-value-only', '--command-timeout=2s']);
    out.push(`the ${labels.odd} has the key: ${got.stdout.trim() === 'v'}`);
    return out;
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
}
