// Member and cluster IDs derived exactly as etcd 3.4 derives them (etcdserver/api/membership), so a tetcd
// cluster bootstrapped with the same --initial-cluster and --initial-cluster-token gets etcd's IDs.
import { createHash } from 'node:crypto';

/** The first 8 bytes of SHA-1(data) as an unsigned big-endian integer. */
function sha1Prefix64(data: Buffer): bigint {
  return createHash('sha1').update(data).digest().readBigUInt64BE(0);
}

/**
 * A member's ID: SHA-1 over its peer URLs (sorted, concatenated with no separator), then the cluster token,
 * then, when given, a Unix time in seconds as decimal text. `peerUrls` must be in etcd's normalized form
 * (GoUrl.href from src/config). Bootstrapped members use (urls, token); see runtimeMemberId for MemberAdd.
 *
 *   memberId(['http://127.0.0.1:2380'], 'etcd-cluster') // bootstrapped member
 */
export function memberId(peerUrls: readonly string[], clusterToken: string, addedAtUnixS?: number): bigint {
  if (addedAtUnixS !== undefined && !Number.isSafeInteger(addedAtUnixS)) {
    throw new RangeError(`memberId: addedAtUnixS must be an integer, got ${addedAtUnixS}`);
  }
  // Sorted as Go's sort.Strings does (byte order); JS string order matches it for the ASCII URLs are made of.
  const sorted = [...peerUrls].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const parts = [...sorted, clusterToken];
  if (addedAtUnixS !== undefined) parts.push(String(addedAtUnixS));
  return sha1Prefix64(Buffer.from(parts.join(''), 'utf8'));
}

/**
 * The ID MemberAdd gives a new member (voter or learner): etcd hashes the peer URLs with an EMPTY cluster token
 * and the server's clock at the add, in whole seconds.
 *
 *   runtimeMemberId(['http://10.0.0.4:2380'], Math.floor(Date.now() / 1000))
 */
export function runtimeMemberId(peerUrls: readonly string[], addedAtUnixS: number): bigint {
  return memberId(peerUrls, '', addedAtUnixS);
}

/**
 * The cluster ID: SHA-1 over the member IDs sorted ascending, each as 8 big-endian bytes; first 8 bytes.
 *
 *   clusterId([memberId(['http://127.0.0.1:2380'], 'etcd-cluster')])
 */
export function clusterId(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const buf = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => {
    if (id < 0n || id > 0xffff_ffff_ffff_ffffn) throw new RangeError(`clusterId: ${id} is not a uint64`);
    buf.writeBigUInt64BE(id, 8 * i);
  });
  return sha1Prefix64(buf);
}

/** One bootstrapped member with its derived ID. */
export interface InitialMember {
  id: bigint;
  name: string;
  peerUrls: string[];
}

/**
 * IDs for a cluster bootstrapped from --initial-cluster (etcd's NewClusterFromURLsMap): members sorted by ID.
 * Throws etcd's errors when two members hash to the same ID or a member's ID is 0 (raft's "no node").
 *
 *   const { clusterId, members } = bootstrapIds([{ name: 'n1', peerUrls: ['http://127.0.0.1:2380'] }], 'etcd-cluster');
 */
export function bootstrapIds(
  members: ReadonlyArray<{ name: string; peerUrls: readonly string[] }>,
  clusterToken: string,
): { clusterId: bigint; members: InitialMember[] } {
  const out: InitialMember[] = [];
  const seen = new Set<bigint>();
  for (const m of members) {
    const id = memberId(m.peerUrls, clusterToken);
    if (seen.has(id)) throw new Error(`member exists with identical ID ${formatId(id)} (name ${m.name})`);
    if (id === 0n) throw new Error('cannot use 0 as member id');
    seen.add(id);
    out.push({ id, name: m.name, peerUrls: [...m.peerUrls].sort() });
  }
  out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { clusterId: clusterId(out.map((m) => m.id)), members: out };
}

/** etcd's types.ID.String(): lower-case hex without padding ("8e9e05c52164694d"). */
export function formatId(id: bigint): string {
  return id.toString(16);
}

/** Parses etcd's hex ID text (as `etcdctl member remove <id>` takes it); throws on anything else. */
export function parseId(hex: string): bigint {
  if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) throw new RangeError(`invalid member ID ${JSON.stringify(hex)}`);
  return BigInt('0x' + hex);
}
