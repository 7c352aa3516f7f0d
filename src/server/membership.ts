// The cluster's members as the state machine knows them: changed only by applied Raft entries
// (conf changes, attribute publications) and stored in the backend's meta tables in the same
// transaction as the applied index, so a restart sees exactly the membership of the applied prefix.
import type { Member } from '../proto/rpc.js';
import { Errors, type EtcdError } from '../errors.js';

/** The side tables the membership lives in (implemented by the MVCC store's meta buckets). */
export interface MetaStore {
  metaGet(bucket: string, key: Uint8Array): Uint8Array | undefined;
  metaPut(bucket: string, key: Uint8Array, value: Uint8Array): void;
  metaDelete(bucket: string, key: Uint8Array): void;
  metaScan(bucket: string): Iterable<[Uint8Array, Uint8Array]>;
}

const MEMBERS = 'members';
const REMOVED = 'members_removed';
/** Indexes of conf change entries refused at apply (Raft's configuration did not change there). */
const REFUSED = 'confchange_refused';

/** Learners a cluster may hold at once (etcd 3.4's maxLearners). */
export const LEARNERS_MAX = 1;

/** A conf change as membership sees it: what kind, which member, and the member record it carries. */
export type MemberChange =
  | { kind: 'add'; member: Member }
  | { kind: 'promote'; id: bigint }
  | { kind: 'remove'; id: bigint }
  | { kind: 'update'; id: bigint; peerURLs: string[] };

/** The JSON a member is stored as, and what a conf change's context carries. */
export interface MemberRecord {
  id: string; // hex
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
  /** A conf change context that promotes the learner `id` (etcd's ConfigChangeContext.IsPromote). */
  isPromote?: boolean;
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

/** The context of a promote conf change: the learner's ID with isPromote set (etcd's ConfigChangeContext). */
export function encodePromoteRecord(id: bigint): Uint8Array {
  const r: MemberRecord = { id: id.toString(16), name: '', peerURLs: [], clientURLs: [], isLearner: false, isPromote: true };
  return Buffer.from(JSON.stringify(r));
}

/** Whether a conf change context is a promote's. */
export function isPromoteRecord(bytes: Uint8Array): boolean {
  return (JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<MemberRecord>).isPromote === true;
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

  /** Members that vote (not learners). */
  voters(): Member[] {
    return this.list().filter((m) => !m.isLearner);
  }

  /**
   * etcd's ValidateConfigurationChange: whether a change may apply to the current members; the error it
   * fails with otherwise. Every member decides the same from the same applied prefix.
   */
  validate(c: MemberChange, learnersMax = LEARNERS_MAX): EtcdError | undefined {
    const id = c.kind === 'add' ? c.member.ID : c.id;
    if (this.removed.has(id)) return Errors.MemberNotFound();
    switch (c.kind) {
      case 'add': {
        if (this.members.has(id)) return Errors.MemberExist();
        if (this.peerUrlTaken(c.member.peerURLs)) return Errors.PeerURLExist();
        if (c.member.isLearner && this.list().filter((m) => m.isLearner).length + 1 > learnersMax) return Errors.TooManyLearners();
        return undefined;
      }
      case 'promote': {
        const m = this.members.get(id);
        if (m === undefined) return Errors.MemberNotFound();
        if (!m.isLearner) return Errors.MemberNotLearner();
        return undefined;
      }
      case 'remove':
        return this.members.has(id) ? undefined : Errors.MemberNotFound();
      case 'update':
        if (!this.members.has(id)) return Errors.MemberNotFound();
        return this.peerUrlTaken(c.peerURLs, id) ? Errors.PeerURLExist() : undefined;
    }
  }

  private peerUrlTaken(urls: readonly string[], except?: bigint): boolean {
    for (const m of this.members.values()) {
      if (m.ID === except) continue;
      for (const u of m.peerURLs) if (urls.includes(u)) return true;
    }
    return false;
  }

  /** etcd's IsReadyToAddVotingMember: a quorum of the voters after the add have published themselves. */
  isReadyToAddVoter(): boolean {
    const voters = this.voters();
    const members = voters.length + 1;
    const started = voters.filter(isStarted).length;
    // Adding a second member to a one-member cluster (restoring a cluster from one member's data).
    if (started === 1 && members === 2) return true;
    return started >= Math.floor(members / 2) + 1;
  }

  /** etcd's IsReadyToRemoveVotingMember: a quorum of the voters left have published themselves. */
  isReadyToRemoveVoter(id: bigint): boolean {
    const rest = this.voters().filter((m) => m.ID !== id);
    return rest.filter(isStarted).length >= Math.floor(rest.length / 2) + 1;
  }

  /** etcd's IsReadyToPromoteMember: counting the learner as a started voter, a quorum has started. */
  isReadyToPromote(): boolean {
    const voters = this.voters();
    const members = voters.length + 1;
    const started = voters.filter(isStarted).length + 1;
    return started >= Math.floor(members / 2) + 1;
  }

  /** Records that the conf change entry at `index` was refused (so a replay does not apply it to Raft). */
  static markRefused(index: number, store: MetaStore): void {
    store.metaPut(REFUSED, indexKey(index), new Uint8Array(0));
  }

  static wasRefused(index: number, store: MetaStore): boolean {
    return store.metaGet(REFUSED, indexKey(index)) !== undefined;
  }
}

/** A member has started once it published its name (etcd's Member.IsStarted). */
function isStarted(m: Member): boolean {
  return m.name !== '';
}

function indexKey(index: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(index), 0);
  return b;
}
