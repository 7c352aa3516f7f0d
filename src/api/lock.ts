// v3lockpb.Lock: etcd's distributed mutex as a service. A caller's ownership key is `name/<lease in hex>`
// under its lease; waiters queue by create revision and the oldest holds the lock; a holder whose lease
// ends loses its key and the next waiter takes over. Served as etcd 3.4 serves it (v3lock wraps the
// clientv3 concurrency Mutex): the same reads, txns and waits, with the same headers and errors.
import type { MemberApi } from '../server/member_api.js';
import { Compare_CompareResult, Compare_CompareTarget } from '../proto/rpc.js';
import type { CallContext } from './context.js';
import type { LockRequest, LockResponseInit, UnlockRequest, UnlockResponseInit } from '../proto/v3lock.js';
import { MemberClient, asRecipeError, concat, firstCreate, sessionKey } from './member_client.js';

/** The TTL of the lease a Lock or Campaign without one gets (clientv3 concurrency's defaultSessionTTL). */
export const SESSION_TTL_SECONDS = 60;

const SLASH = Uint8Array.of(0x2f);

/**
 * Lock: waits until the caller's key is the oldest of the name's keys. A call cancelled while it waits
 * (client gone, deadline) deletes its key again, as etcd's does.
 */
export async function serveLock(s: MemberApi, req: LockRequest, ctx: CallContext): Promise<LockResponseInit> {
  const c = new MemberClient(s, ctx);
  try {
    const lease = req.lease !== 0n ? req.lease : await c.grant(SESSION_TTL_SECONDS);
    const prefix = concat(req.name, SLASH);
    const myKey = sessionKey(prefix, lease);
    const owner = firstCreate(prefix);
    const r = await c.txn({
      compare: [{ key: myKey, target: Compare_CompareTarget.CREATE, result: Compare_CompareResult.EQUAL, create_revision: 0 }],
      success: [{ request_put: { key: myKey, lease } }, { request_range: owner }],
      failure: [{ request_range: { key: myKey } }, { request_range: owner }],
    });
    // The same session asking again holds (or waits for) the lock with its existing key.
    const myRev = r.succeeded ? (r.header?.revision ?? 0) : (r.responses[0].response_range?.kvs[0]?.create_revision ?? 0);
    const first = r.responses[1].response_range?.kvs[0];
    if (first === undefined || first.create_revision === myRev) return { header: r.header, key: myKey };
    try {
      const header = await c.waitDeletes(prefix, myRev - 1);
      return { header, key: myKey };
    } catch (err) {
      // etcd's Mutex releases its key when the wait fails (cancelled, compacted, stopped).
      await c.delete(myKey).catch(() => {});
      throw err;
    }
  } catch (err) {
    throw asRecipeError(err);
  }
}

/** Unlock: deletes the ownership key (a key that is gone already is no error). */
export async function serveUnlock(s: MemberApi, req: UnlockRequest, ctx: CallContext): Promise<UnlockResponseInit> {
  try {
    const r = await new MemberClient(s, ctx).delete(req.key);
    return { header: r.header };
  } catch (err) {
    throw asRecipeError(err);
  }
}
