// The cluster's members as the state machine knows them: changed only by applied Raft entries
// (conf changes, attribute publications) and stored in the backend's meta tables in the same
// transaction as the applied index, so a restart sees exactly the membership of the applied prefix.
import type { Member } from '../proto/rpc.js';

/** The side tables the membership lives in (implemented by the MVCC store's meta buckets). */
export interface MetaStore {
  metaGet(bucket: string, key: Uint8Array): Uint8Array | undefined;
  metaPut(bucket: string, key: Uint8Array, value: Uint8Array): void;
  metaDelete(bucket: string, key: Uint8Array): void;
  metaScan(bucket: string): Iterable<[Uint8Array, Uint8Array]>;
}

const MEMBERS = 'members';
const REMOVED = 'members_removed';

/** The JSON a member is stored as, and what a conf change's context carries. */
export interface MemberRecord {
  id: string; // hex
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

function idKey(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(id, 0);
  return b;
}

function toRecord(m: Member): MemberRecord {
  return { id: m.ID.toString(16), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner };
}

/** Parses a stored or proposed member record; throws on anything malformed. */
export function parseMemberRecord(bytes: Uint8Array): Member {
  const r = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<MemberRecord>;
  if (typeof r.id !== 'string' || !/^[0-9a-f]{1,16}$/.test(r.id)) throw new Error('member record: bad id');
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (!strings(r.peerURLs) || !strings(r.clientURLs ?? [])) throw new Error('member record: bad URLs');
  return {
    ID: BigInt('0x' + r.id),
    name: typeof r.name === 'string' ? r.name : '',
    peerURLs: r.peerURLs as string[],
    clientURLs: (r.clientURLs as string[] | undefined) ?? [],
    isLearner: r.isLearner === true,
  };
}

export function encodeMemberRecord(m: Member): Uint8Array {
  return Buffer.from(JSON.stringify(toRecord(m)));
}

/**
 * Members by ID.
 *
 *   const ms = Membership.load(store);
 *   ms.add(member, store);  // inside an apply batch; committed with the applied index
 */
export class Membership {
  private readonly members = new Map<bigint, Member>();
  private readonly removed = new Set<bigint>();

  /** Loads what the backend holds (empty for a new member). */
  static load(store: MetaStore): Membership {
    const ms = new Membership();
    ms.reload(store);
    return ms;
  }

  /** Replaces what is known with what `store` holds (after the backend was swapped). */
  reload(store: MetaStore): void {
    this.members.clear();
    this.removed.clear();
    for (const [, v] of store.metaScan(MEMBERS)) {
      const m = parseMemberRecord(v);
      this.members.set(m.ID, m);
    }
    for (const [k] of store.metaScan(REMOVED)) this.removed.add(Buffer.from(k).readBigUInt64BE(0));
  }

  /** Members sorted by ID (etcd lists them so). */
  list(): Member[] {
    return [...this.members.values()].sort((a, b) => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0));
  }

  get(id: bigint): Member | undefined {
    return this.members.get(id);
  }

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  get size(): number {
    return this.members.size;
  }

  add(m: Member, store: MetaStore): void {
    this.members.set(m.ID, m);
    store.metaPut(MEMBERS, idKey(m.ID), encodeMemberRecord(m));
  }

  remove(id: bigint, store: MetaStore): void {
    this.members.delete(id);
    this.removed.add(id);
    store.metaDelete(MEMBERS, idKey(id));
    store.metaPut(REMOVED, idKey(id), new Uint8Array(0));
  }

  /** Applies a published name and client URLs (MemberAttrSetRequest); unknown members are ignored as etcd does. */
  setAttributes(id: bigint, name: string, clientURLs: string[], store: MetaStore): void {
    const m = this.members.get(id);
    if (!m) return;
    this.add({ ...m, name, clientURLs }, store);
  }

  updatePeerURLs(id: bigint, peerURLs: string[], store: MetaStore): void {
    const m = this.members.get(id);
    if (!m) return;
    this.add({ ...m, peerURLs }, store);
  }

  promote(id: bigint, store: MetaStore): void {
    const m = this.members.get(id);
    if (!m) return;
    this.add({ ...m, isLearner: false }, store);
  }
}
