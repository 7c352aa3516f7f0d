// The applier: turns one committed request into its effect on the state machine and the response
// its client waits for. Errors that etcd raises while applying (lease not found, key not found in an
// ignore_value put, compacted) are results, not failures: the entry is applied (with no effect)
// and the error goes back to the client.
import type { Mvcc, MvccEvent } from '../mvcc/index.js';
import { EtcdError, toEtcdError } from '../errors.js';
import type { InternalRequest } from '../proto/internal.js';
import {
  AlarmType,
  AlarmRequest_AlarmAction,
  type RangeRequest,
  type RangeResponseInit,
  type TxnRequest,
  type TxnResponseInit,
  type ResponseHeaderInit,
  type AlarmRequest,
  type AlarmResponseInit,
} from '../proto/rpc.js';
import { Errors } from '../errors.js';
import { AlarmStore } from './alarms.js';
import { costTxn } from './quota.js';
import { applyPut, applyDeleteRange, applyTxn, applyCompaction, applyRange, type KvLimits } from './apply_kv.js';
import type { Lessor } from '../lease/index.js';
import type { LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponseInit, LeaseRevokeRequest } from '../proto/rpc.js';
import type { AuthStore } from '../auth/store.js';
import type { TokenProvider } from '../auth/tokens.js';
import { applyAuth, authInfoOf, isAuthRequest, needsAdmin } from './apply_auth.js';
import { checkWrite } from '../auth/checks.js';

/** A response without its header's identity fields (the API layer adds them). */
export interface HeaderedResponse {
  header?: ResponseHeaderInit;
}

/** What a waiting client gets back for its entry. */
export interface ApplyResult {
  response: HeaderedResponse;
  /** Set when applying failed the way etcd reports to the client. */
  error?: EtcdError;
  /** Changes made, in order (for watchers). */
  events?: MvccEvent[];
  /** Resolves when a physical compaction finished. */
  physicalDone?: Promise<void>;
}

/** The auth state the applier checks requests against and changes (src/auth). */
export interface ApplierAuth {
  store: AuthStore;
  tokens: TokenProvider;
}

/**
 * Applies requests to the MVCC store.
 *
 *   const a = new Applier(mvcc, { maxTxnOps: 128, maxRangeResponseBytes: 0 }, lessor);
 *   backend.onSwap((store) => a.useStore(store));
 *   const r = a.applyWrite(decodeInternalRequest(entry.data));
 */
export class Applier {
  private store: Mvcc;
  private alarmStore: AlarmStore;

  constructor(
    store: Mvcc,
    private readonly limits: KvLimits,
    private readonly leases: Lessor,
    private readonly auth?: ApplierAuth,
  ) {
    this.store = store;
    this.alarmStore = AlarmStore.load(store);
  }

  /**
   * etcd_mvcc_{put,delete,txn,range}_total and etcd_debugging_mvcc_total_put_size_in_bytes, by request
   * (etcd counts each operation inside a txn as well; tetcd counts the txn once).
   */
  readonly counts = { put: 0, putBytes: 0, delete: 0, txn: 0, range: 0 };

  /** The active alarms (read them; they change only by applying alarm requests). */
  get alarms(): Pick<AlarmStore, 'get' | 'has' | 'size'> {
    return this.alarmStore;
  }

  /** The backend was swapped (MemberBackend.onSwap): apply to the new store, with its alarms. */
  useStore(store: Mvcc): void {
    this.store = store;
    this.alarmStore = AlarmStore.load(store);
    this.auth?.store.reload(store);
  }

  /**
   * Applies a committed write request; never throws for request-level errors. With `withPrevKv` the
   * result's events carry each changed key's previous KeyValue. Without `wantEvents` (no subscriber reads
   * kv changes now) a revoke builds none; other requests' events are few and built anyway. `index` is the
   * entry's Raft index (simple auth tokens end with it).
   */
  applyWrite(req: InternalRequest, withPrevKv = false, wantEvents = true, index = 0): ApplyResult {
    try {
      const auth = this.auth;
      if (auth?.store.enabled && needsAdmin(req)) auth.store.isAdminPermitted(authInfoOf(req));
      if (req.alarm) return { response: this.applyAlarm(req.alarm) };
      if (auth !== undefined && isAuthRequest(req))
        return { response: applyAuth(auth.store, auth.tokens, req, authInfoOf(req), index, this.store, this.store.currentRevision) };
      // CORRUPT refuses every KV operation, NOSPACE every write that adds data (etcd's capped applier).
      if (this.alarmStore.has(AlarmType.CORRUPT)) throw Errors.Corrupt();
      if (this.alarmStore.has(AlarmType.NOSPACE) && (req.put || req.lease_grant || (req.txn && costTxn(req.txn) > 0)))
        throw Errors.NoSpace();
      if (auth?.store.enabled) checkWrite(auth.store, this.leases, req, authInfoOf(req));
      const c = this.counts;
      if (req.put) {
        c.put++;
        c.putBytes += req.put.key.length + req.put.value.length;
        return applyPut(this.store, req.put, this.leases, withPrevKv);
      }
      if (req.delete_range) {
        c.delete++;
        return applyDeleteRange(this.store, req.delete_range, this.leases, withPrevKv);
      }
      if (req.txn) {
        c.txn++;
        return applyTxn(this.store, req.txn, this.limits, this.leases, withPrevKv);
      }
      if (req.lease_grant) return { response: this.applyLeaseGrant(req.lease_grant) };
      if (req.lease_revoke) return this.applyLeaseRevoke(req.lease_revoke, withPrevKv, wantEvents);
      if (req.lease_checkpoint) return { response: this.applyLeaseCheckpoint(req.lease_checkpoint) };
      if (req.compaction) {
        const { response, physicalDone } = applyCompaction(this.store, req.compaction);
        // The caller may not wait for it; a failure is logged by the store, not left unhandled.
        physicalDone.catch(() => {});
        return { response, physicalDone };
      }
      return { response: {}, error: toEtcdError(new Error('etcdserver: unsupported request in the log')) };
    } catch (err) {
      if (err instanceof EtcdError) return { response: {}, error: err };
      // Anything else is a bug in the applier or damage in the store: stop rather than diverge.
      throw err;
    }
  }

  /** etcd's LeaseGrant apply: the response carries the lease's TTL as raised to the minimum. */
  private applyLeaseGrant(r: LeaseGrantRequest): LeaseGrantResponseInit & HeaderedResponse {
    const l = this.leases.grant(r.ID, r.TTL, this.store);
    return { header: { revision: this.store.currentRevision }, ID: l.id, TTL: l.ttlSec };
  }

  /**
   * etcd's LeaseRevoke apply: every attached key is deleted in ONE write transaction (one revision, one
   * watch response), in key order so every member's backend stays byte-identical. The transaction gets no
   * lease hooks: every key it deletes belongs to the lease that goes away with it, so there is nothing to
   * detach one by one (and no backend read per key to learn its lease). The deletes are one bulk pass
   * (Mvcc deleteSorted: one index walk, one staged block), so a revoke of 100,000 keys holds applying up
   * for tens of milliseconds, not hundreds; without `wantEvents` (nobody watches) no event is built.
   */
  private applyLeaseRevoke(r: LeaseRevokeRequest, withPrevKv: boolean, wantEvents: boolean): ApplyResult {
    const store = this.store;
    let events: MvccEvent[] = [];
    this.leases.revoke(r.ID, store, (keys) => {
      if (keys.length === 0) return;
      const txn = store.write(undefined, withPrevKv);
      txn.deleteSorted(keys, wantEvents);
      events = txn.end().events;
    });
    return { response: { header: { revision: store.currentRevision } }, events };
  }

  private applyLeaseCheckpoint(r: LeaseCheckpointRequest): HeaderedResponse {
    for (const c of r.checkpoints) this.leases.checkpoint(c.ID, c.remaining_TTL, this.store);
    return { header: { revision: this.store.currentRevision } };
  }

  /** A read served locally (after ReadIndex for linearizable reads). Throws etcd's errors. */
  range(req: RangeRequest): RangeResponseInit {
    if (this.alarmStore.has(AlarmType.CORRUPT)) throw Errors.Corrupt();
    this.counts.range++;
    return applyRange(this.store, req, this.limits);
  }

  /** A read-only txn served locally; the caller checked isTxnReadonly. */
  txnReadOnly(req: TxnRequest): TxnResponseInit {
    if (this.alarmStore.has(AlarmType.CORRUPT)) throw Errors.Corrupt();
    this.counts.txn++;
    return applyTxn(this.store, req, this.limits, this.leases).response;
  }

  /** etcd's Alarm apply: GET lists, ACTIVATE raises (returning the alarm), DEACTIVATE disarms. No header, as etcd. */
  private applyAlarm(r: AlarmRequest): AlarmResponseInit & HeaderedResponse {
    const resp: AlarmResponseInit & HeaderedResponse = { alarms: [] };
    switch (r.action) {
      case AlarmRequest_AlarmAction.GET:
        resp.alarms = this.alarmStore.get(r.alarm);
        break;
      case AlarmRequest_AlarmAction.ACTIVATE:
        if (r.alarm === AlarmType.NONE) break;
        resp.alarms = [this.alarmStore.activate(r.memberID, r.alarm, this.store)];
        break;
      case AlarmRequest_AlarmAction.DEACTIVATE: {
        const m = this.alarmStore.deactivate(r.memberID, r.alarm, this.store);
        if (m) resp.alarms = [m];
        break;
      }
    }
    return resp;
  }
}
