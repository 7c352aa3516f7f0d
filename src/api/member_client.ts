// The member as a client of itself: the reads, txns, deletes, lease grants and watches that etcd's Lock and
// Election services make through an in-process clientv3 (etcd 3.4 wraps its concurrency recipes in
// v3lock/v3election). Each call goes the way a client's would: validated as the RPC is, linearizable
// reads through ReadIndex, writes through Raft, waits on a watcher of the member's own hub.
import type { MemberApi } from '../server/member_api.js';
import type { CallContext } from './context.js';
import {
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  decodeRangeRequest,
  decodeRangeResponse,
  decodeTxnRequest,
  decodeTxnResponse,
  decodeWatchRequest,
  encodeRangeRequest,
  encodeRangeResponse,
  encodeTxnRequest,
  encodeTxnResponse,
  encodeWatchRequest,
  type DeleteRangeResponseInit,
  type RangeRequestInit,
  type RangeResponse,
  type ResponseHeaderInit,
  type TxnRequestInit,
  type TxnResponse,
  type WatchCreateRequestInit,
  type WatchResponseInit,
} from '../proto/rpc.js';
import { Event_EventType, decodeEvent, type Event } from '../proto/kv.js';
import { type EtcdError, Errors, toEtcdError } from '../errors.js';
import { isTxnReadonly, validateDeleteRangeRequest, validateRangeRequest, validateTxnRequest } from '../server/apply_kv.js';
import { costTxn, LEASE_GRANT_COST_BYTES } from '../server/quota.js';
import type { WatchSink, WatchStream } from '../watch/index.js';
import type { AuthInfo } from '../auth/store.js';
import type { RequestHeaderInit } from '../proto/internal.js';

/** The end of the range of every key starting with `prefix` (clientv3.GetPrefixRangeEnd). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Uint8Array.of(0); // every key from the prefix on
}

/** The recipes' key of a session: `prefix` + the lease ID in hex (Go's %x of an int64). */
export function sessionKey(prefix: Uint8Array, lease: bigint): Uint8Array {
  const hex = lease < 0n ? `-${(-lease).toString(16)}` : lease.toString(16);
  return concat(prefix, Buffer.from(hex));
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * What the recipes' errors look like on the wire: etcd's in-process client turns a status into an error
 * value that grpc-go then sends as Unknown with the same text (`etcdserver: requested lease not found`
 * answers Lock with code 2, as etcd 3.4 does).
 */
export function asRecipeError(err: unknown): EtcdError {
  const e = toEtcdError(err);
  return e.code === Errors.Unknown('').code ? e : Errors.Unknown(e.message);
}

/** The first key by create revision of a prefix (clientv3.WithFirstCreate). */
export function firstCreate(prefix: Uint8Array): RangeRequestInit {
  return {
    key: prefix,
    range_end: prefixEnd(prefix),
    limit: 1,
    sort_order: RangeRequest_SortOrder.ASCEND,
    sort_target: RangeRequest_SortTarget.CREATE,
  };
}

/** The last key by create revision of a prefix created at or before `maxCreateRev` (WithLastCreate + WithMaxCreateRev). */
export function lastCreateBefore(prefix: Uint8Array, maxCreateRev: number): RangeRequestInit {
  return {
    key: prefix,
    range_end: prefixEnd(prefix),
    limit: 1,
    sort_order: RangeRequest_SortOrder.DESCEND,
    sort_target: RangeRequest_SortTarget.CREATE,
    max_create_revision: maxCreateRev,
  };
}

/** What a watcher's consumer says after a response: stop watching, go on, or wait for the promise first. */
export type WatchVisitor = (events: Event[], header: ResponseHeaderInit) => 'done' | 'more' | Promise<void>;

/**
 * The member's KV as a client sees it, for one call.
 *
 *   const c = new MemberClient(member, ctx);
 *   const r = await c.txn({ compare: [...], success: [...] });
 *   await c.waitDeletes(prefix, rev - 1);
 */
export class MemberClient {
  /** Ends the wait in progress when the call is cancelled (one hook per call, however many waits). */
  private abortWait: ((reason: EtcdError) => void) | undefined = undefined;
  private cancelHooked = false;

  constructor(
    private readonly s: MemberApi,
    private readonly ctx: CallContext,
  ) {}

  /** The caller of the RPC this client serves: its token or certificate goes with every request, as etcd's in-process client forwards the call's metadata. */
  private identify(): AuthInfo | undefined | Promise<AuthInfo | undefined> {
    return this.s.auth.identify(this.ctx);
  }

  private async authHeader(): Promise<RequestHeaderInit | undefined> {
    return this.s.auth.header(await this.identify());
  }

  /** A linearizable range, as clientv3's Get. */
  async get(init: RangeRequestInit): Promise<RangeResponse> {
    const req = decodeRangeRequest(encodeRangeRequest(init));
    validateRangeRequest(req);
    await this.s.linearizableRead();
    const ai = await this.identify();
    this.s.auth.store.isRangePermitted(ai, req.key, req.range_end);
    const res = this.s.range(req);
    this.s.auth.checkStillCurrent(ai);
    res.header = this.s.header(res.header?.revision);
    return decodeRangeResponse(encodeRangeResponse(res));
  }

  /** A txn, as clientv3's Txn().Commit(): validated, admitted against the quota, proposed. */
  async txn(init: TxnRequestInit): Promise<TxnResponse> {
    const req = decodeTxnRequest(encodeTxnRequest(init));
    validateTxnRequest(req, { maxTxnOps: this.s.limits.maxTxnOps, maxRangeResponseBytes: 0 });
    let res: { header?: ResponseHeaderInit };
    if (isTxnReadonly(req)) {
      await this.s.linearizableRead();
      const ai = await this.identify();
      this.s.auth.checkTxnRead(ai, req);
      res = this.s.txnReadOnly(req);
      this.s.auth.checkStillCurrent(ai);
    } else {
      this.s.admit(costTxn(req));
      res = (await this.s.propose({ txn: req, header: await this.authHeader() })).response;
    }
    res.header = this.s.header(res.header?.revision);
    return decodeTxnResponse(encodeTxnResponse(res));
  }

  /** Deletes one key, as clientv3's Delete. */
  async delete(key: Uint8Array): Promise<DeleteRangeResponseInit> {
    validateDeleteRangeRequest({ key, range_end: new Uint8Array(0), prev_kv: false });
    const res = (await this.s.propose({ delete_range: { key }, header: await this.authHeader() })).response as DeleteRangeResponseInit;
    res.header = this.s.header(res.header?.revision);
    return res;
  }

  /** Grants a lease with a server-chosen ID, as clientv3's Grant (a session without a lease of its own). */
  async grant(ttlSeconds: number): Promise<bigint> {
    this.s.admit(LEASE_GRANT_COST_BYTES);
    const res = await this.s.leaseGrant({ ID: 0n, TTL: ttlSeconds }, await this.authHeader());
    if (res.ID === undefined || res.ID === 0n) throw Errors.Unknown('lease grant returned no ID');
    return res.ID;
  }

  /**
   * Watches `create` on the member's own hub until `visit` says 'done' (resolves), the member cancels the
   * watcher (its history was compacted: rejects) or the call is cancelled (rejects). `visit` gets each
   * response's events in revision order; when it returns a promise the watcher takes no events until it
   * settles (the hub moves it to catch-up meanwhile, so nothing queues here).
   */
  async watchUntil(create: WatchCreateRequestInit, visit: WatchVisitor): Promise<void> {
    // etcd's watch server checks READ on the range at creation and cancels the watch if refused.
    this.s.auth.store.isRangePermitted(await this.identify(), create.key ?? new Uint8Array(0), create.range_end);
    return this.watchChecked(create, visit);
  }

  private watchChecked(create: WatchCreateRequestInit, visit: WatchVisitor): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let paused: Promise<void> | undefined;
      let ws: WatchStream | undefined;
      const finish = (err?: EtcdError): void => {
        if (settled) return;
        settled = true;
        ws?.close();
        if (err === undefined) resolve();
        else reject(err);
      };
      const sink: WatchSink = {
        write: (res: WatchResponseInit): boolean => {
          if (settled) return true;
          if (res.canceled) {
            finish(res.compact_revision ? Errors.Compacted() : Errors.WatchCanceled());
            return true;
          }
          const evs = res.events_encoded?.map((b) => decodeEvent(b)) ?? [];
          if (evs.length === 0) return true;
          const next = visit(evs, res.header ?? {});
          if (next === 'done') finish();
          if (typeof next === 'string') return true;
          paused = next.then(
            () => {
              paused = undefined;
            },
            (err: unknown) => finish(toEtcdError(err)),
          );
          return false;
        },
        drained: (): Promise<void> => paused ?? Promise.resolve(),
        get done(): boolean {
          return settled;
        },
      };
      ws = this.s.watch(sink);
      ws.onRequest(decodeWatchRequest(encodeWatchRequest({ create_request: create })));
      if (settled) {
        ws.close();
        return;
      }
      this.abortWait = finish;
      if (!this.cancelHooked) {
        this.cancelHooked = true;
        this.ctx.onCancel((reason) => this.abortWait?.(reason));
      }
    }).finally(() => {
      this.abortWait = undefined;
    });
  }

  /** Resolves at the first DELETE of `key` at or after `rev` (clientv3 concurrency's waitDelete). */
  waitDelete(key: Uint8Array, rev: number): Promise<void> {
    return this.watchUntil({ key, start_revision: rev }, (events) =>
      events.some((e) => e.type === Event_EventType.DELETE) ? 'done' : 'more',
    );
  }

  /**
   * Waits until no key of `prefix` created at or before `maxCreateRev` is left (the recipes' waitDeletes):
   * watches the newest such key until it is deleted, then looks again. Resolves with the last read's header.
   */
  async waitDeletes(prefix: Uint8Array, maxCreateRev: number): Promise<ResponseHeaderInit> {
    for (;;) {
      if (this.ctx.cancelled) throw Errors.Unknown('context canceled');
      const r = await this.get(lastCreateBefore(prefix, maxCreateRev));
      if (r.kvs.length === 0) return r.header ?? {};
      await this.waitDelete(r.kvs[0].key, r.header?.revision ?? 0);
    }
  }
}
