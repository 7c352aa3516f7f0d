// Corruption checks (etcd's corrupt.go): members compare their HashKV at one revision. The initial check
// (--experimental-initial-corrupt-check) runs before the member serves clients and refuses to start it when
// a peer at the same compact revision has another hash; the periodic one (--experimental-corrupt-check-time)
// runs on the leader and raises the CORRUPT alarm through Raft for a member whose hash differs.
//
// Peers are asked over the peer streams (FrameType.Hash), as etcd 3.4 asks their peer URLs (/members/hashkv):
// peer TLS authenticates the members, and a client URL would need credentials when auth is on. Our format:
//   request: [u8 kind 1][u32 request ID][i64 revision]
//   answer:  [u8 kind 2][u32 request ID][u8 status][u32 hash][i64 compact revision][i64 current revision]
import { AlarmRequest_AlarmAction, AlarmType } from '../proto/rpc.js';
import { Errors, toEtcdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HashKVResult } from '../mvcc/index.js';

const KIND_REQUEST = 1;
const KIND_ANSWER = 2;
const REQUEST_BYTES = 13;
const ANSWER_BYTES = 26;

/** How a peer answered: its hash, or why it had none. */
export const HashStatus = { Ok: 0, Compacted: 1, FutureRev: 2, Failed: 3 } as const;

/** A peer's answer to "your HashKV at revision R". */
export interface PeerHash {
  memberId: bigint;
  status: number;
  hash: number;
  compactRevision: number;
  /** The peer's current revision (HashKVResponse.header.revision). */
  revision: number;
}

/** What the checker needs of the member. */
export interface CorruptCheckHost {
  readonly memberId: bigint;
  /** The other members' IDs. */
  peerIds(): bigint[];
  /** Queues a hash frame for a peer; false if dropped (no stream yet). */
  sendHash(to: bigint, payload: Uint8Array): boolean;
  hashKV(rev: number): HashKVResult;
  linearizableRead(): Promise<void>;
  isLeader(): boolean;
  /** Raises CORRUPT for `memberId` through Raft. */
  raiseCorrupt(memberId: bigint): Promise<void>;
  log: Logger;
  /** How long a peer has to answer (etcd: the request timeout). */
  requestTimeoutMs: number;
}

/** How often an unsent request is tried again while the peer's stream comes up. */
const RESEND_MS = 100;
/** How long a sent request waits for its answer before it is sent again. */
const RESEND_ANSWERED_MS = 500;

interface Pending {
  to: bigint;
  resolve(a: PeerHash | undefined): void;
}

/**
 * The checks, and the answers to peers' requests.
 *
 *   const cc = new CorruptionChecker(host);
 *   await cc.initialCheck();           // throws "<id> found data inconsistency with peers"
 *   setInterval(() => cc.periodicCheck(), corruptCheckTimeMs);
 *   transport.onHash = (from, payload) => cc.receive(from, payload);
 */
export class CorruptionChecker {
  private nextRequestId = 1;
  /** Requests of the check in progress (one per peer: bounded by the cluster's size). */
  private readonly pending = new Map<number, Pending>();
  private checking = false;
  private initialChecking = false;

  constructor(private readonly h: CorruptCheckHost) {}

  /** A hash frame from a peer: answers a request at once, or settles a request of ours. */
  receive(from: bigint, payload: Uint8Array): void {
    const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    if (b.length === REQUEST_BYTES && b[0] === KIND_REQUEST) {
      // A member checking itself before it serves answers nobody (etcd serves no peer then).
      if (this.initialChecking) return;
      this.h.sendHash(from, this.answer(b.readUInt32BE(1), Number(b.readBigInt64BE(5))));
      return;
    }
    if (b.length !== ANSWER_BYTES || b[0] !== KIND_ANSWER) {
      this.h.log.warn('dropped a malformed hash frame', { from: from.toString(16), bytes: b.length });
      return;
    }
    const p = this.pending.get(b.readUInt32BE(1));
    if (p === undefined || p.to !== from) return; // late, after its check gave up on it
    this.pending.delete(b.readUInt32BE(1));
    p.resolve({
      memberId: from,
      status: b[5],
      hash: b.readUInt32BE(6),
      compactRevision: Number(b.readBigInt64BE(10)),
      revision: Number(b.readBigInt64BE(18)),
    });
  }

  private answer(requestId: number, rev: number): Buffer {
    const out = Buffer.alloc(ANSWER_BYTES);
    out[0] = KIND_ANSWER;
    out.writeUInt32BE(requestId, 1);
    try {
      const r = this.h.hashKV(rev);
      out[5] = HashStatus.Ok;
      out.writeUInt32BE(r.hash >>> 0, 6);
      out.writeBigInt64BE(BigInt(r.compactRevision), 10);
      out.writeBigInt64BE(BigInt(r.currentRevision), 18);
    } catch (err) {
      const msg = toEtcdError(err).message;
      out[5] =
        msg === Errors.Compacted().message
          ? HashStatus.Compacted
          : msg === Errors.FutureRev().message
            ? HashStatus.FutureRev
            : HashStatus.Failed;
    }
    return out;
  }

  /** Every peer's HashKV at `rev`; a peer that did not answer within the request timeout is left out. */
  async peerHashes(rev: number): Promise<PeerHash[]> {
    const answers = await Promise.all(this.h.peerIds().map((id) => this.ask(id, rev)));
    return answers.filter((a): a is PeerHash => a !== undefined);
  }

  private ask(to: bigint, rev: number): Promise<PeerHash | undefined> {
    const requestId = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId % 0xffff_ffff) + 1;
    const req = Buffer.alloc(REQUEST_BYTES);
    req[0] = KIND_REQUEST;
    req.writeUInt32BE(requestId, 1);
    req.writeBigInt64BE(BigInt(rev), 5);
    return new Promise<PeerHash | undefined>((resolve) => {
      const deadline = Date.now() + this.h.requestTimeoutMs;
      let timer: NodeJS.Timeout | undefined;
      const settle = (a: PeerHash | undefined): void => {
        clearTimeout(timer);
        this.pending.delete(requestId);
        if (a === undefined) this.h.log.warn('failed hash kv request', { 'remote-peer-id': to.toString(16), 'requested-revision': rev });
        resolve(a);
      };
      this.pending.set(requestId, { to, resolve: settle });
      const trySend = (): void => {
        if (!this.pending.has(requestId)) return;
        if (Date.now() >= deadline) return settle(undefined);
        // Sent again until answered or the deadline passes: the peer answers on its own stream to us, which
        // may not be up yet (it redials a restarted member with a backoff) and then drops the answer.
        const sent = this.h.sendHash(to, req);
        timer = setTimeout(trySend, Math.min(sent ? RESEND_ANSWERED_MS : RESEND_MS, Math.max(1, deadline - Date.now())));
      };
      trySend();
    });
  }

  /**
   * etcd's CheckInitialHashKV: the local HashKV against every peer's at the same revision. Throws when a
   * peer with the same compact revision has another hash; peers that cannot answer are logged and skipped.
   */
  async initialCheck(): Promise<void> {
    const id = this.h.memberId.toString(16);
    this.h.log.info('starting initial corruption check', { 'local-member-id': id, timeout: `${this.h.requestTimeoutMs}ms` });
    const local = this.h.hashKV(0);
    let mismatch = 0;
    this.initialChecking = true;
    let peers: PeerHash[];
    try {
      peers = await this.peerHashes(local.currentRevision);
    } finally {
      this.initialChecking = false;
    }
    for (const p of peers) {
      const fields = {
        'local-member-revision': local.currentRevision,
        'local-member-compact-revision': local.compactRevision,
        'local-member-hash': local.hash,
        'remote-peer-id': p.memberId.toString(16),
        'remote-peer-hash': p.hash,
        'remote-peer-compact-revision': p.compactRevision,
      };
      if (p.status === HashStatus.FutureRev) this.h.log.warn('cannot fetch hash from slow remote peer', fields);
      else if (p.status === HashStatus.Compacted) this.h.log.warn('cannot fetch hash from remote peer; local member is behind', fields);
      else if (p.status !== HashStatus.Ok) this.h.log.warn('failed hash kv request', fields);
      else if (p.compactRevision !== local.compactRevision) this.h.log.warn('found different compact revision values', fields);
      else if (p.hash !== local.hash) {
        this.h.log.error('found different hash values from remote peer', fields);
        mismatch++;
      }
    }
    if (mismatch > 0) throw new Error(`${id} found data inconsistency with peers`);
    this.h.log.info('initial corruption checking passed; no corruption', { 'local-member-id': id });
  }

  /**
   * etcd's checkHashKV, run by the leader every --experimental-corrupt-check-time: its own HashKV, the
   * followers' at its revision, its own again after a linearizable read. A follower ahead of the leader, or
   * with another hash at the leader's earlier compact revision, is corrupt; so is the leader if its own hash
   * changed while its revisions did not. Raises CORRUPT once per check.
   */
  async periodicCheck(): Promise<void> {
    if (this.checking || !this.h.isLeader()) return;
    this.checking = true;
    try {
      const first = this.h.hashKV(0);
      const peers = await this.peerHashes(first.currentRevision);
      await this.h.linearizableRead();
      const again = this.h.hashKV(0);
      let alarmed = false;
      const mismatch = async (memberId: bigint, why: string, fields: Record<string, unknown>): Promise<void> => {
        this.h.log.warn(why, { ...fields, 'alarmed-member-id': memberId.toString(16) });
        if (alarmed) return;
        alarmed = true;
        await this.h.raiseCorrupt(memberId);
      };
      if (again.hash !== first.hash && again.currentRevision === first.currentRevision && again.compactRevision === first.compactRevision)
        await mismatch(this.h.memberId, 'found hash mismatch', { 'leader-hash': first.hash, 'leader-hash-now': again.hash });
      for (const p of peers) {
        if (p.status !== HashStatus.Ok) continue;
        const fields = {
          'leader-current-revision': again.currentRevision,
          'leader-compact-revision': again.compactRevision,
          'leader-hash': first.hash,
          'follower-peer-id': p.memberId.toString(16),
          'follower-current-revision': p.revision,
          'follower-compact-revision': p.compactRevision,
          'follower-hash': p.hash,
        };
        if (p.revision > again.currentRevision)
          await mismatch(p.memberId, "revision from follower must be less than or equal to leader's", fields);
        else if (p.compactRevision > again.compactRevision)
          await mismatch(p.memberId, "compact revision from follower must be less than or equal to leader's", fields);
        else if (p.compactRevision === first.compactRevision && p.hash !== first.hash)
          await mismatch(p.memberId, 'same compact revision then hashes must match', fields);
      }
    } catch (err) {
      this.h.log.warn('corruption check failed', { error: String(err) });
    } finally {
      this.checking = false;
    }
  }

  /** Gives up on every request in flight (the member stops). */
  stop(): void {
    for (const p of [...this.pending.values()]) p.resolve(undefined);
    this.pending.clear();
  }
}

/** The alarm request that marks `memberId` corrupt. */
export function corruptAlarm(memberId: bigint): { action: number; memberID: bigint; alarm: number } {
  return { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: memberId, alarm: AlarmType.CORRUPT };
}
