// v3electionpb.Election: etcd's leader election as a service. Candidates put `name/<lease in hex>` under
// their lease; the oldest key by create revision is the leader, whose value is what it proclaimed.
// Served as etcd 3.4 serves it (v3election wraps the clientv3 concurrency Election): the same reads,
// txns and waits, the same headers, and the same errors (`election: not leader`, `election: no leader`,
// `"leader" field must be provided`, the rest as Unknown with etcd's text).
import type { MemberApi } from '../server/member_api.js';
import { Compare_CompareResult, Compare_CompareTarget } from '../proto/rpc.js';
import { Event_EventType } from '../proto/kv.js';
import type { CallContext } from './context.js';
import type {
  CampaignRequest,
  CampaignResponseInit,
  LeaderKey,
  LeaderRequest,
  LeaderResponseInit,
  ProclaimRequest,
  ProclaimResponseInit,
  ResignRequest,
  ResignResponseInit,
} from '../proto/v3election.js';
import type { KeyValue } from '../proto/kv.js';
import type { ResponseHeaderInit } from '../proto/rpc.js';
import { Errors } from '../errors.js';
import { MemberClient, asRecipeError, concat, firstCreate, prefixEnd, sessionKey } from './member_client.js';
import { SESSION_TTL_SECONDS } from './lock.js';

export const ElectionErrors = {
  notLeader: 'election: not leader',
  noLeader: 'election: no leader',
  missingLeaderKey: '"leader" field must be provided',
} as const;

/** What Observe needs of its stream (rpc.ts's RpcStreamWriter; named here so rpc.ts can import this file). */
interface LeaderWriter {
  write(m: LeaderResponseInit): boolean;
  drained(): Promise<void>;
  readonly done: boolean;
}

const SLASH = Uint8Array.of(0x2f);

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** The session's lease: the caller's, or a new one when it names none (clientv3 concurrency's NewSession). */
async function sessionLease(c: MemberClient, lease: bigint): Promise<bigint> {
  return lease !== 0n ? lease : c.grant(SESSION_TTL_SECONDS);
}

/** Puts `value` on the leader's key if it is still the leader's (Election.Proclaim); the txn's header. */
async function proclaim(c: MemberClient, leader: LeaderKey, lease: bigint, value: Uint8Array): Promise<ResponseHeaderInit> {
  const r = await c.txn({
    compare: [{ key: leader.key, target: Compare_CompareTarget.CREATE, result: Compare_CompareResult.EQUAL, create_revision: leader.rev }],
    success: [{ request_put: { key: leader.key, value, lease } }],
  });
  if (!r.succeeded) throw Errors.Unknown(ElectionErrors.notLeader);
  return r.header ?? {};
}

/** Deletes the leader's key if it is still the leader's (Election.Resign); the txn's header either way. */
async function resign(c: MemberClient, leader: LeaderKey): Promise<ResponseHeaderInit> {
  const r = await c.txn({
    compare: [{ key: leader.key, target: Compare_CompareTarget.CREATE, result: Compare_CompareResult.EQUAL, create_revision: leader.rev }],
    success: [{ request_delete_range: { key: leader.key } }],
  });
  return r.header ?? {};
}

/** Campaign: waits until the caller's key is the oldest of the name's keys, then answers with its LeaderKey. */
export async function serveCampaign(s: MemberApi, req: CampaignRequest, ctx: CallContext): Promise<CampaignResponseInit> {
  const c = new MemberClient(s, ctx);
  try {
    const lease = await sessionLease(c, req.lease);
    const prefix = concat(req.name, SLASH);
    const key = sessionKey(prefix, lease);
    const r = await c.txn({
      compare: [{ key, target: Compare_CompareTarget.CREATE, result: Compare_CompareResult.EQUAL, create_revision: 0 }],
      success: [{ request_put: { key, value: req.value, lease } }],
      failure: [{ request_range: { key } }],
    });
    const leader: LeaderKey = { name: req.name, key, rev: r.header?.revision ?? 0, lease };
    if (!r.succeeded) {
      // The session campaigned before: keep its place, and its new value.
      const kv = r.responses[0].response_range?.kvs[0];
      if (kv !== undefined) {
        leader.rev = kv.create_revision;
        if (!bytesEqual(kv.value, req.value)) {
          try {
            await proclaim(c, leader, lease, req.value);
          } catch (err) {
            await resign(c, leader).catch(() => {});
            throw err;
          }
        }
      }
    }
    try {
      await c.waitDeletes(prefix, leader.rev - 1);
    } catch (err) {
      if (ctx.cancelled) await resign(c, leader).catch(() => {});
      throw err;
    }
    return { header: r.header, leader };
  } catch (err) {
    throw asRecipeError(err);
  }
}

/** Proclaim: a new value from the leader, refused with `election: not leader` once it is not. */
export async function serveProclaim(s: MemberApi, req: ProclaimRequest, ctx: CallContext): Promise<ProclaimResponseInit> {
  if (req.leader === undefined) throw Errors.Unknown(ElectionErrors.missingLeaderKey);
  const c = new MemberClient(s, ctx);
  try {
    const lease = await sessionLease(c, req.leader.lease);
    return { header: await proclaim(c, req.leader, lease, req.value) };
  } catch (err) {
    throw asRecipeError(err);
  }
}

/** Resign: the leader's key goes (if it still is the leader's); answers with the txn's header either way. */
export async function serveResign(s: MemberApi, req: ResignRequest, ctx: CallContext): Promise<ResignResponseInit> {
  if (req.leader === undefined) throw Errors.Unknown(ElectionErrors.missingLeaderKey);
  const c = new MemberClient(s, ctx);
  try {
    // etcd's server opens a session first, which grants a lease when the key names none.
    await sessionLease(c, req.leader.lease);
    return { header: await resign(c, req.leader) };
  } catch (err) {
    throw asRecipeError(err);
  }
}

/** Leader: the current leader's key-value, or `election: no leader`. */
export async function serveLeader(s: MemberApi, req: LeaderRequest, ctx: CallContext): Promise<LeaderResponseInit> {
  let r: Awaited<ReturnType<MemberClient['get']>>;
  try {
    r = await new MemberClient(s, ctx).get(firstCreate(concat(req.name, SLASH)));
  } catch (err) {
    throw asRecipeError(err);
  }
  if (r.kvs.length === 0) throw Errors.Unknown(ElectionErrors.noLeader);
  return { header: r.header, kv: r.kvs[0] };
}

/**
 * Observe: the current leader, then every value it proclaims, then the next leader, until the client
 * goes. As etcd's, it promises the most recent leader value, not every one in between; it ends with OK
 * when its watch breaks (compacted history) or a read fails.
 */
export async function serveObserve(s: MemberApi, req: LeaderRequest, out: LeaderWriter, ctx: CallContext): Promise<void> {
  const c = new MemberClient(s, ctx);
  const prefix = concat(req.name, SLASH);
  const send = (res: LeaderResponseInit): 'more' | Promise<void> => (out.write(res) ? 'more' : out.drained());
  try {
    while (!ctx.cancelled && !out.done) {
      const r = await c.get(firstCreate(prefix));
      let kv: KeyValue | undefined = r.kvs[0];
      let header: ResponseHeaderInit = r.header ?? {};
      if (kv === undefined) {
        // No leader yet: the first put on the prefix is the next one.
        await c.watchUntil({ key: prefix, range_end: prefixEnd(prefix), start_revision: header.revision ?? 0 }, (events, h) => {
          const put = events.find((e) => e.type === Event_EventType.PUT);
          if (put?.kv === undefined) return 'more';
          kv = put.kv;
          header = { ...h, revision: put.kv.mod_revision };
          return 'done';
        });
      }
      const leaderKv: KeyValue = kv!;
      const first = send({ header, kv: leaderKv });
      if (first !== 'more') await first;
      // Follow the leader's key until it is deleted; each put is the leader's new value.
      await c.watchUntil({ key: leaderKv.key, start_revision: (header.revision ?? 0) + 1 }, (events, h) => {
        let wait: Promise<void> | undefined;
        for (const e of events) {
          if (e.type === Event_EventType.DELETE) return 'done';
          if (send({ header: h, kv: e.kv }) !== 'more') wait = out.drained();
        }
        return wait ?? 'more';
      });
    }
  } catch {
    // etcd's observe loop closes its channel on any error: the stream ends with OK (or the client's cancel).
  }
}
