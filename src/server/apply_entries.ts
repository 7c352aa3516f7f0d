// Applying committed entries, in log order: a normal entry is decoded and handed to the applier (KV,
// alarms) or to membership (published attributes); a ConfChange changes Raft's configuration and the
// member list. Each entry's waiter gets its result and every subscriber its apply events.
import { HistogramCounts, exponentialBuckets } from '../metrics.js';
import { EntryType, ConfChangeType, decodeConfChange, type ConfChange, type ConfState, type Entry } from '../raft/index.js';
import { decodeInternalRequest, type InternalRequest } from '../proto/internal.js';
import { AlarmRequest_AlarmAction, AlarmType_names } from '../proto/rpc.js';
import { assert } from '../assert.js';
import { Membership, isPromoteRecord, parseMemberRecord, type MemberChange } from './membership.js';
import type { Applier, ApplyResult, HeaderedResponse } from './apply.js';
import type { ApplyEventHub } from '../events/apply_events.js';
import type { MemberBackend } from './backend.js';
import type { MemberPeers } from './ports.js';
import type { Logger } from '../log.js';

/** etcd's --experimental-warning-apply-duration default: an apply slower than this is logged and counted. */
export const SLOW_APPLY_MS = 100;

export interface EntryApplierDeps {
  memberId: bigint;
  backend: MemberBackend;
  applier: Applier;
  membership: Membership;
  events: ApplyEventHub;
  peers: Pick<MemberPeers, 'addPeer' | 'removePeer'>;
  /** Raft applies a configuration change; returns the new configuration. */
  applyConfChange(cc: ConfChange): ConfState;
  /** The applied entry's waiter, if this member proposed it. */
  trigger(id: bigint, result: ApplyResult): void;
  /** This member's own attributes were applied (it is published). */
  onPublished(): void;
  /** This member's own removal was applied: it must stop (etcd stops a removed member). */
  onRemoved(): void;
  /** Learners the members may hold at once. */
  learnersMax: number;
  /** An empty entry was applied: a leader's first entry of its term (the lessor's promote point). */
  onEmptyEntry(index: number, term: number): void;
  logger: Logger;
}

const EMPTY_RESULT: ApplyResult = { response: {} };

/**
 * Applies committed entries.
 *
 *   applying.apply(rd.committedEntries);   // in the Ready loop, after persisting
 *   applying.appliedIndex                  // what reads and snapshots go by
 */
export class EntryApplier {
  appliedIndex: number;
  appliedTerm: number;
  confState: ConfState;
  /** etcd_server_slow_apply_total: batches of entries whose apply took longer than SLOW_APPLY_MS. */
  slowApplies = 0;
  /** etcd_debugging_mvcc_db_compaction_total_duration_milliseconds: from the apply to the physical part's end. */
  readonly compactionMs = new HistogramCounts(exponentialBuckets(100, 2, 14));

  constructor(
    private readonly d: EntryApplierDeps,
    applied: { index: number; term: number },
    confState: ConfState,
  ) {
    this.appliedIndex = applied.index;
    this.appliedTerm = applied.term;
    this.confState = confState;
  }

  /** Applies entries that continue the applied log (ones applied already are skipped). */
  apply(entries: readonly Entry[]): void {
    // One clock read per batch, not per entry: etcd times each request, tetcd the batch it applies at once.
    const t0 = performance.now();
    const backendIndex = this.d.backend.backendIndex;
    for (const e of entries) {
      if (e.index <= this.appliedIndex) continue;
      assert(e.index === this.appliedIndex + 1, () => `applying entry ${e.index} after ${this.appliedIndex}: gap in the committed log`);
      const toBackend = e.index > backendIndex;
      if (e.type === EntryType.Normal) {
        if (e.data.length === 0) this.d.onEmptyEntry(e.index, e.term);
        else if (toBackend) this.applyNormal(e);
      } else if (e.type === EntryType.ConfChange) {
        this.applyConfChange(e, toBackend);
      } else {
        assert(false, () => `unsupported entry type ${e.type} at index ${e.index}`);
      }
      this.appliedIndex = e.index;
      this.appliedTerm = e.term;
    }
    this.d.backend.applied(entries.length);
    const tookMs = performance.now() - t0;
    if (tookMs > SLOW_APPLY_MS) {
      this.slowApplies++;
      this.d.logger.warn('apply request took too long', {
        took: durationText(tookMs),
        'expected-duration': durationText(SLOW_APPLY_MS),
        entries: entries.length,
      });
    }
  }

  /** A snapshot from the leader replaced the state: applying goes on after it. */
  restored(index: number, term: number, cs: ConfState): void {
    this.appliedIndex = index;
    this.appliedTerm = term;
    this.confState = cs;
  }

  private applyNormal(e: Entry): void {
    let req: InternalRequest;
    try {
      req = decodeInternalRequest(e.data);
    } catch (err) {
      // Only this member's own proposals and its peers' reach the log; undecodable data is a bug or corruption.
      throw new Error(`entry ${e.index}: undecodable request: ${(err as Error).message}`);
    }
    const d = this.d;
    if (req.member_attr_set) {
      const a = req.member_attr_set;
      d.membership.setAttributes(a.member_ID, a.attributes?.name ?? '', a.attributes?.client_urls ?? [], d.backend.store);
      if (a.member_ID === d.memberId) d.onPublished();
      d.trigger(req.ID, EMPTY_RESULT);
      if (d.events.hasSubscribers)
        d.events.publish({
          kind: 'member',
          index: e.index,
          change: 'attributes',
          member: d.membership.get(a.member_ID),
          memberId: a.member_ID,
        });
      return;
    }
    const events = d.events;
    const result = d.applier.applyWrite(req, events.wantsPrevKv, events.wantsKvChanges, e.index);
    d.trigger(req.ID, result);
    if (req.compaction && result.physicalDone !== undefined && result.error === undefined)
      this.logCompaction(req.compaction.revision, result.physicalDone);
    if (req.alarm && req.alarm.action !== AlarmRequest_AlarmAction.GET && (result.response as { alarms?: unknown[] }).alarms?.length) {
      // etcd's messages (etcdserver/apply.go Alarm).
      const fields = { alarm: AlarmType_names[req.alarm.alarm] ?? String(req.alarm.alarm), from: req.alarm.memberID.toString(16) };
      if (req.alarm.action === AlarmRequest_AlarmAction.ACTIVATE) d.logger.warn('alarm raised', fields);
      else d.logger.warn('alarm disarmed', fields);
    }
    if (!events.hasSubscribers || result.error !== undefined) return;
    const changes = result.events;
    if (changes !== undefined && changes.length > 0) {
      events.publish({ kind: 'kv', index: e.index, revision: changes[0].kv.mod_revision, changes });
    }
    if (req.lease_grant) {
      events.publish({ kind: 'lease', index: e.index, change: 'grant', leaseId: req.lease_grant.ID });
    } else if (req.lease_revoke) {
      events.publish({ kind: 'lease', index: e.index, change: 'revoke', leaseId: req.lease_revoke.ID });
    } else if (
      req.alarm &&
      req.alarm.action !== AlarmRequest_AlarmAction.GET &&
      (result.response as { alarms?: unknown[] }).alarms?.length
    ) {
      events.publish({
        kind: 'alarm',
        index: e.index,
        memberId: req.alarm.memberID,
        alarm: req.alarm.alarm,
        action: req.alarm.action === AlarmRequest_AlarmAction.ACTIVATE ? 'activate' : 'deactivate',
      });
    }
  }

  /** etcd's message once a compaction's physical part is done (mvcc/kvstore_compaction.go). */
  private logCompaction(revision: number, done: Promise<void>): void {
    const t0 = performance.now();
    done.then(
      () => {
        const ms = performance.now() - t0;
        this.compactionMs.observe(ms);
        this.d.logger.info('finished scheduled compaction', { 'compact-revision': revision, took: durationText(ms) });
      },
      () => {},
    );
  }

  /**
   * A conf change: checked against the members (etcd's ValidateConfigurationChange; a refused one leaves
   * Raft's configuration as it was, and its index is recorded so a replay after a restart refuses it too),
   * then applied to Raft, the members and the peers. Its proposer hears the members after it, or the error.
   */
  private applyConfChange(e: Entry, toBackend: boolean): void {
    const d = this.d;
    const cc: ConfChange = decodeConfChange(e.data);
    const store = d.backend.store;
    if (!toBackend) {
      // Already in the backend: the members include it; only Raft's configuration must be rebuilt.
      if (!Membership.wasRefused(e.index, store)) this.confState = d.applyConfChange(cc);
      return;
    }
    const change = memberChangeOf(cc);
    const refused = d.membership.validate(change, d.learnersMax);
    if (refused !== undefined) {
      Membership.markRefused(e.index, store);
      d.logger.warn('refused a configuration change', {
        type: ConfChangeType[cc.type],
        'member-id': cc.node_id.toString(16),
        error: refused.message,
      });
      if (cc.id !== undefined && cc.id !== 0n) d.trigger(cc.id, { response: {}, error: refused });
      return;
    }
    this.confState = d.applyConfChange(cc);
    switch (change.kind) {
      case 'add': {
        const m = change.member;
        d.membership.add(m, store);
        d.peers.addPeer(m.ID, m.peerURLs);
        d.logger.info('added member', {
          'added-peer-id': m.ID.toString(16),
          'added-peer-peer-urls': m.peerURLs,
          'is-learner': m.isLearner,
        });
        this.publishMember(e.index, 'add', m.ID);
        break;
      }
      case 'promote':
        d.membership.promote(change.id, store);
        d.logger.info('promote member', { 'promoted-member-id': change.id.toString(16) });
        this.publishMember(e.index, 'update', change.id);
        break;
      case 'remove': {
        const before = d.membership.get(change.id);
        d.membership.remove(change.id, store);
        if (change.id !== d.memberId) d.peers.removePeer(change.id);
        d.logger.info('removed member', { 'removed-remote-peer-id': change.id.toString(16) });
        if (d.events.hasSubscribers)
          d.events.publish({ kind: 'member', index: e.index, change: 'remove', member: before, memberId: change.id });
        break;
      }
      case 'update':
        d.membership.updatePeerURLs(change.id, change.peerURLs, store);
        d.peers.addPeer(change.id, change.peerURLs);
        d.logger.info('updated member', { 'updated-remote-peer-id': change.id.toString(16), 'updated-remote-peer-urls': change.peerURLs });
        this.publishMember(e.index, 'update', change.id);
        break;
    }
    if (cc.id !== undefined && cc.id !== 0n) d.trigger(cc.id, { response: { members: d.membership.list() } as HeaderedResponse });
    if (change.kind === 'remove' && change.id === d.memberId) d.onRemoved();
  }

  private publishMember(index: number, change: 'add' | 'update', id: bigint): void {
    const events = this.d.events;
    if (events.hasSubscribers) events.publish({ kind: 'member', index, change, member: this.d.membership.get(id), memberId: id });
  }
}

/** What a conf change entry asks of the members (its context carries the member record). */
function memberChangeOf(cc: ConfChange): MemberChange {
  switch (cc.type) {
    case ConfChangeType.AddNode:
    case ConfChangeType.AddLearnerNode: {
      if (isPromoteRecord(cc.context)) return { kind: 'promote', id: cc.node_id };
      const m = parseMemberRecord(cc.context);
      assert(m.ID === cc.node_id, () => `conf change for ${cc.node_id.toString(16)} carries member ${m.ID.toString(16)}`);
      return { kind: 'add', member: { ...m, isLearner: cc.type === ConfChangeType.AddLearnerNode } };
    }
    case ConfChangeType.RemoveNode:
      return { kind: 'remove', id: cc.node_id };
    case ConfChangeType.UpdateNode:
      return { kind: 'update', id: cc.node_id, peerURLs: parseMemberRecord(cc.context).peerURLs };
  }
}

/** A duration as Go's time.Duration.String() prints it (zap's duration fields in etcd's logs): 1.5s, 120.3ms, 800µs. */
export function durationText(ms: number): string {
  if (ms >= 1000) return `${+(ms / 1000).toFixed(9)}s`;
  if (ms >= 1) return `${+ms.toFixed(6)}ms`;
  return `${+(ms * 1000).toFixed(3)}µs`;
}
