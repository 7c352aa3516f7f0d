// tetcd's backend tables in etcd 3.4's bbolt encodings: which buckets etcd's backend has, and how each
// record of tetcd's side tables becomes the record etcd keeps in that bucket (leases as leasepb.Lease,
// members as etcd's JSON under their hex ID, alarms as a marshalled AlarmMember key). The KeyValues of
// the "key" bucket and the authpb users and roles are byte-identical already.
import { encodeAlarmMember } from '../proto/rpc.js';
import { decodeLeaseRecord } from '../lease/persist.js';
import { parseMemberRecord } from '../server/membership.js';

/** Every bucket etcd 3.4's backend creates (mvcc, lessor, auth store, membership, alarms). */
export const ETCD_BUCKETS = [
  'alarm',
  'auth',
  'authRoles',
  'authUsers',
  'cluster',
  'key',
  'lease',
  'members',
  'members_removed',
  'meta',
] as const;

/** The keys of etcd 3.4's meta bucket; tetcd's own (term, its committed revision) stay out of the file. */
export const ETCD_META_KEYS: readonly string[] = ['consistent_index', 'finishedCompactRev', 'scheduledCompactRev'];

/** A record in etcd's encoding. */
export type BucketEntry = [key: Uint8Array, value: Uint8Array];

/** Appends v as a protobuf varint of its 64-bit two's complement (Go's int64 fields). */
function pushVarint64(out: number[], v: bigint): void {
  let u = BigInt.asUintN(64, v);
  while (u >= 0x80n) {
    out.push(Number(u & 0x7fn) | 0x80);
    u >>= 7n;
  }
  out.push(Number(u));
}

/** leasepb.Lease{ID, TTL, RemainingTTL} (zero fields omitted, as gogo proto marshals proto3). */
export function encodeLeasepb(id: bigint, ttlSec: number, remainingTtlSec: number): Uint8Array {
  const out: number[] = [];
  for (const [field, v] of [
    [1, id],
    [2, BigInt(ttlSec)],
    [3, BigInt(remainingTtlSec)],
  ] as const) {
    if (v === 0n) continue;
    out.push(field << 3);
    pushVarint64(out, v);
  }
  return Uint8Array.from(out);
}

/** A lease record of tetcd's lease bucket as etcd's: same key (the ID, 8 bytes big-endian), leasepb value. */
export function leaseEntry(key: Uint8Array, value: Uint8Array): BucketEntry {
  const r = decodeLeaseRecord(value);
  return [key, encodeLeasepb(r.id, r.ttlSec, r.remainingTtlSec)];
}

/** Go's encoding/json string: escapes what Go escapes (quotes, backslash, controls, <, >, &, U+2028/9). */
function goJsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || ch === '<' || ch === '>' || ch === '&' || c === 0x2028 || c === 0x2029) {
      out += `\\u${c.toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return `${out}"`;
}

function goJsonStrings(a: readonly string[]): string {
  return `[${a.map(goJsonString).join(',')}]`;
}

/**
 * A member of tetcd's members table as etcd's backend keeps it: key = the ID in hex, value = etcd's
 * membership.Member as encoding/json writes it ({"id":<uint64>,"peerURLs":[…],"isLearner":true?,
 * "name":…?,"clientURLs":[…]?}, the optional ones omitted when empty).
 */
export function memberEntry(value: Uint8Array): BucketEntry {
  const m = parseMemberRecord(value);
  let json = `{"id":${m.ID.toString(10)},"peerURLs":${m.peerURLs.length === 0 ? 'null' : goJsonStrings(m.peerURLs)}`;
  if (m.isLearner) json += ',"isLearner":true';
  if (m.name !== '') json += `,"name":${goJsonString(m.name)}`;
  if (m.clientURLs.length > 0) json += `,"clientURLs":${goJsonStrings(m.clientURLs)}`;
  json += '}';
  return [Buffer.from(m.ID.toString(16)), Buffer.from(json)];
}

/** A removed member's ID (8 bytes big-endian in tetcd) as etcd's members_removed record. */
export function removedMemberEntry(key: Uint8Array): BucketEntry {
  if (key.length !== 8) throw new Error(`members_removed: a key of ${key.length} bytes`);
  return [Buffer.from(Buffer.from(key).readBigUInt64BE(0).toString(16)), Buffer.from('removed')];
}

/** An alarm of tetcd's alarm table (member ID, type) as etcd's: the marshalled AlarmMember is the key. */
export function alarmEntry(key: Uint8Array): BucketEntry | undefined {
  if (key.length !== 12) return undefined;
  const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return [encodeAlarmMember({ memberID: b.readBigUInt64BE(0), alarm: b.readUInt32BE(8) }), new Uint8Array(0)];
}

/** Sorts a small bucket's records by key, as bbolt keeps them. */
export function sortEntries(entries: BucketEntry[]): BucketEntry[] {
  return entries.sort((a, b) => Buffer.compare(a[0], b[0]));
}
