// The etcd v3 RPCs as transport-agnostic functions, unary and streaming in one table: etcd's request
// checks (`validate`) and the member's answer (`serve`), which gets a per-call context (context.ts).
// Registered on the in-process gRPC server (services.ts) and, with --client-workers, split: client
// processes validate, the member's channel end serves (src/client_procs).
import type { MethodDescriptor } from './grpc/server.js';
import type { CallContext } from './context.js';
import type { ProtoWriter } from '../proto/wire.js';
import { KV, Maintenance, Cluster, Watch, Lease, Auth } from '../proto/rpc.js';
import { Lock } from '../proto/v3lock.js';
import { Election } from '../proto/v3election.js';
import { serveLock, serveUnlock } from './lock.js';
import {
  proposeAuth,
  requireAdminAsEtcd,
  serveAuthenticate,
  serveUserAdd,
  serveUserChangePassword,
  type AuthProposal,
} from './auth_rpc.js';
import { serveMemberAdd, serveMemberPromote, serveMemberRemove, serveMemberUpdate, serveMoveLeader } from './cluster_rpc.js';
import { serveCampaign, serveLeader, serveObserve, serveProclaim, serveResign } from './election.js';
import { serveSnapshot } from './snapshot.js';
import type {
  RangeRequest,
  PutRequest,
  DeleteRangeRequest,
  TxnRequest,
  CompactionRequest,
  StatusRequest,
  MemberListRequest,
  AlarmRequest,
  HashKVRequest,
  HashKVResponseInit,
  HashResponseInit,
  DefragmentResponseInit,
  RangeResponseInit,
  PutResponseInit,
  DeleteRangeResponseInit,
  TxnResponseInit,
  CompactionResponseInit,
  StatusResponseInit,
  MemberListResponseInit,
  AlarmResponseInit,
  WatchRequest,
  WatchCreateRequest,
  WatchResponseInit,
  LeaseGrantRequest,
  LeaseGrantResponseInit,
  LeaseRevokeRequest,
  LeaseRevokeResponseInit,
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponseInit,
  LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponseInit,
  LeaseLeasesRequest,
  LeaseLeasesResponseInit,
} from '../proto/rpc.js';
import type { MemberApi } from '../server/member_api.js';
import type { AuthInfo } from '../auth/store.js';
import type { RequestHeaderInit } from '../proto/internal.js';
import type { WatchStream } from '../watch/index.js';
import { type EtcdError, Errors, toEtcdError } from '../errors.js';
import { LEASE_TTL_MAX_SEC } from '../lease/index.js';
import type { HeaderedResponse } from '../server/apply.js';
import {
  validateRangeRequest,
  validatePutRequest,
  validateDeleteRangeRequest,
  validateTxnRequest,
  isTxnReadonly,
} from '../server/apply_kv.js';
import { ETCD_SERVER_VERSION } from '../config/version.js';
import { costPut, costTxn, LEASE_GRANT_COST_BYTES } from '../server/quota.js';
import { alarmText } from '../server/alarms.js';

/** The request limits etcd checks before a request reaches Raft (from the member's flags). */
export interface RpcLimits {
  /** --max-txn-ops */
  maxTxnOps: number;
  /** --max-request-bytes: the largest proposal. */
  maxRequestBytes: number;
}

/** How an RPC's messages flow: one each way, a stream of responses, or streams both ways. */
export type RpcKind = 'unary' | 'serverStream' | 'bidi';

/** What every RPC of the table has, whatever its kind. */
interface RpcBase<Req, ResInit> {
  readonly desc: SizedMethodDescriptor<Req, ResInit>;
  /**
   * etcd's checks of one request message alone (v3rpc); throws EtcdError. Needs no member state. Runs
   * where the request is decoded first (the client process, or the in-process server) and again on the
   * member; for a bidi RPC on every request message, before serve sees it.
   */
  validate(req: Req, limits: RpcLimits): void;
}

/**
 * One unary RPC, independent of how requests arrive.
 *
 *   rpc.validate(req, limits);                    // where the request is decoded first
 *   const res = await rpc.serve(server, req, ctx); // on the member
 */
export interface UnaryRpc<Req, ResInit> extends RpcBase<Req, ResInit> {
  readonly kind: 'unary';
  /** True if serving it proposes the request through Raft (so --max-request-bytes applies to it). */
  proposes(req: Req): boolean;
  /**
   * It may wait without bound (Lock, Campaign) and must hear of the client's cancel to undo what it did:
   * a client process forwards it as a stream (which carries Cancel), not as a Call.
   */
  readonly waits?: boolean;
  /** The member's answer; throws (or rejects with) EtcdError. Does not validate. */
  serve(s: MemberApi, req: Req, ctx: CallContext): ResInit | Promise<ResInit>;
}

/**
 * The member's end of a stream of responses, in either mode (in-process: the gRPC call; with client
 * processes: the channel's stream, flow-controlled by the client process's HTTP/2 stream).
 *
 *   while (out.writable && events.length > 0) out.write(nextResponse());
 *   if (!out.writable) await out.drained();   // the client reads slowly: produce less (watch: catch-up)
 */
export interface RpcStreamWriter<ResInit> {
  /** Sends a message; false means "stop and wait for drained()" (or the stream is over). */
  write(m: ResInit): boolean;
  /** True while write() would return true: the queue towards the client is below its soft limit. */
  readonly writable: boolean;
  /** Resolves when the queue is below its soft limit again, or the stream is over. */
  drained(): Promise<void>;
  /** Ends the stream with OK, or with the status of `err`. */
  end(err?: unknown): void;
  /** True once nothing more can be sent. */
  readonly done: boolean;
}

/** A bidi stream on the member: set `onMessage`/`onHalfClose` synchronously in serve (messages queue until then). */
export interface RpcBidiStream<Req, ResInit> extends RpcStreamWriter<ResInit> {
  /** Receives each request message, already validated. */
  onMessage: ((m: Req) => void) | undefined;
  /** Called once after the last request message. */
  onHalfClose: (() => void) | undefined;
  /** Stops delivering request messages until resume(); the client is pushed back by flow control. */
  pause(): void;
  resume(): void;
}

/**
 * A server-streaming RPC (Snapshot, Election.Observe). If serve returns a promise the stream ends when
 * it settles (OK, or the rejection's status); otherwise serve ends it itself with `out.end()`.
 * Cancellation (client gone, deadline, RESOURCE_EXHAUSTED) reaches it through `ctx.onCancel`.
 */
export interface ServerStreamRpc<Req, ResInit> extends RpcBase<Req, ResInit> {
  readonly kind: 'serverStream';
  serve(s: MemberApi, req: Req, out: RpcStreamWriter<ResInit>, ctx: CallContext): void | Promise<void>;
}

/**
 * A bidirectional RPC (Watch, LeaseKeepAlive); same ending rule as ServerStreamRpc. `validate` runs on
 * every request message; one that fails ends the stream with its status.
 *
 *   serve(s, stream, ctx) {
 *     stream.onMessage = (req) => { if (!stream.write(answer(req))) stream.pause(); ... };
 *     ctx.onCancel(() => forget(stream));
 *   }
 */
export interface BidiRpc<Req, ResInit> extends RpcBase<Req, ResInit> {
  readonly kind: 'bidi';
  serve(s: MemberApi, stream: RpcBidiStream<Req, ResInit>, ctx: CallContext): void | Promise<void>;
}

/** A method descriptor that can write a response into a buffer the caller sized (the generated ones can). */
export interface SizedMethodDescriptor<Req, ResInit> extends MethodDescriptor<Req, ResInit> {
  sizeResponse(m: ResInit): number;
  writeResponse(m: ResInit, w: ProtoWriter): void;
}

/** RPCs with their message types erased, as tables hold them. */
export type AnyUnaryRpc = UnaryRpc<unknown, unknown>;
export type AnyServerStreamRpc = ServerStreamRpc<unknown, unknown>;
export type AnyBidiRpc = BidiRpc<unknown, unknown>;
export type AnyRpc = AnyUnaryRpc | AnyServerStreamRpc | AnyBidiRpc;

/** Fills the identity fields of a response header, keeping the revision the applier set. */
function withHeader<T extends HeaderedResponse>(s: MemberApi, resp: T): T {
  resp.header = s.header(resp.header?.revision);
  return resp;
}

function isTxnSerializable(req: TxnRequest): boolean {
  for (const ops of [req.success, req.failure]) {
    for (const op of ops) {
      if (op.request_range && !op.request_range.serializable) return false;
      if (op.request_txn && !isTxnSerializable(op.request_txn)) return false;
    }
  }
  return true;
}

const never = (): boolean => false;
const always = (): boolean => true;
const noCheck = (): void => {};

function rpc<Req, ResInit>(desc: SizedMethodDescriptor<Req, ResInit>, spec: Omit<UnaryRpc<Req, ResInit>, 'desc' | 'kind'>): AnyUnaryRpc {
  return { kind: 'unary', desc, ...spec } as unknown as AnyUnaryRpc;
}

/** A server-streaming table entry (typed at the definition, erased in the table). */
export function serverStreamRpc<Req, ResInit>(
  desc: SizedMethodDescriptor<Req, ResInit>,
  spec: Omit<ServerStreamRpc<Req, ResInit>, 'desc' | 'kind'>,
): AnyServerStreamRpc {
  return { kind: 'serverStream', desc, ...spec } as unknown as AnyServerStreamRpc;
}

/** A bidi table entry (typed at the definition, erased in the table). */
export function bidiRpc<Req, ResInit>(
  desc: SizedMethodDescriptor<Req, ResInit>,
  spec: Omit<BidiRpc<Req, ResInit>, 'desc' | 'kind'>,
): AnyBidiRpc {
  return { kind: 'bidi', desc, ...spec } as unknown as AnyBidiRpc;
}

/** A unary table entry (typed at the definition, erased in the table). */
export const unaryRpc = rpc;

/** The caller's identity (api: MemberAuth.identify), awaited only when it is not known at once. */
function identify(s: MemberApi, ctx: CallContext): AuthInfo | undefined | Promise<AuthInfo | undefined> {
  return s.auth.identify(ctx);
}

/** A read as etcd's doSerialize: permission first, then the read, then the auth revision must not have moved. */
function readRange(s: MemberApi, req: RangeRequest, ai: AuthInfo | undefined): RangeResponseInit {
  s.auth.store.isRangePermitted(ai, req.key, req.range_end);
  const res = withHeader(s, s.range(req));
  s.auth.checkStillCurrent(ai);
  return res;
}

async function serveRange(s: MemberApi, req: RangeRequest, ctx: CallContext): Promise<RangeResponseInit> {
  if (!req.serializable) await s.linearizableRead();
  return readRange(s, req, await identify(s, ctx));
}

function serveRangeSync(s: MemberApi, req: RangeRequest, ctx: CallContext): RangeResponseInit | Promise<RangeResponseInit> {
  // A serializable read is answered in the same turn: no promise, no microtask.
  if (!req.serializable) return serveRange(s, req, ctx);
  const ai = identify(s, ctx);
  return ai instanceof Promise ? ai.then((a) => readRange(s, req, a)) : readRange(s, req, ai);
}

/**
 * The header a proposal carries so every member's applier checks the caller (none without credentials);
 * known at once unless the caller's identity needs an asynchronous check (a JWT seen for the first time).
 */
function authHeaderNow(s: MemberApi, ctx: CallContext): RequestHeaderInit | undefined | Promise<RequestHeaderInit | undefined> {
  const ai = identify(s, ctx);
  return ai instanceof Promise ? ai.then((a) => s.auth.header(a)) : s.auth.header(ai);
}

async function authHeader(s: MemberApi, ctx: CallContext): Promise<RequestHeaderInit | undefined> {
  return authHeaderNow(s, ctx);
}

async function servePut(s: MemberApi, req: PutRequest, ctx: CallContext): Promise<PutResponseInit> {
  s.admit(costPut(req));
  const h = authHeaderNow(s, ctx);
  const r = await s.propose({ put: req, header: h instanceof Promise ? await h : h });
  return withHeader(s, r.response);
}

async function serveDeleteRange(s: MemberApi, req: DeleteRangeRequest, ctx: CallContext): Promise<DeleteRangeResponseInit> {
  const h = authHeaderNow(s, ctx);
  const r = await s.propose({ delete_range: req, header: h instanceof Promise ? await h : h });
  return withHeader(s, r.response);
}

async function serveTxn(s: MemberApi, req: TxnRequest, ctx: CallContext): Promise<TxnResponseInit> {
  if (isTxnReadonly(req)) {
    if (!isTxnSerializable(req)) await s.linearizableRead();
    const ai = await identify(s, ctx);
    s.auth.checkTxnRead(ai, req);
    const res = withHeader(s, s.txnReadOnly(req));
    s.auth.checkStillCurrent(ai);
    return res;
  }
  s.admit(costTxn(req));
  const h = authHeaderNow(s, ctx);
  const r = await s.propose({ txn: req, header: h instanceof Promise ? await h : h });
  return withHeader(s, r.response);
}

async function serveCompact(s: MemberApi, req: CompactionRequest, ctx: CallContext): Promise<CompactionResponseInit> {
  const r = await s.propose({ compaction: req, header: await authHeader(s, ctx) });
  if (req.physical && r.physicalDone) await r.physicalDone;
  return withHeader(s, r.response);
}

function serveStatus(s: MemberApi, _req: StatusRequest): StatusResponseInit {
  const st = s.status();
  return {
    header: s.header(st.revision),
    version: ETCD_SERVER_VERSION,
    dbSize: st.dbSizeBytes,
    leader: st.leader,
    raftIndex: st.raftIndex,
    raftTerm: st.raftTerm,
    raftAppliedIndex: st.raftAppliedIndex,
    errors: st.fatalError === undefined ? st.alarms.map(alarmText) : [...st.alarms.map(alarmText), st.fatalError],
    dbSizeInUse: st.dbSizeInUseBytes,
    isLearner: st.isLearner,
  };
}

// etcd answers alarm requests (all of them through Raft) without a header.
async function serveAlarm(s: MemberApi, req: AlarmRequest, ctx: CallContext): Promise<AlarmResponseInit> {
  return (await s.propose({ alarm: req, header: await authHeader(s, ctx) })).response as AlarmResponseInit;
}

async function serveHashKV(s: MemberApi, req: HashKVRequest, ctx: CallContext): Promise<HashKVResponseInit> {
  await requireAdminAsEtcd(s, ctx);
  const r = s.hashKV(req.revision);
  return { header: s.header(r.currentRevision), hash: r.hash, compact_revision: r.compactRevision };
}

async function serveHash(s: MemberApi, _req: unknown, ctx: CallContext): Promise<HashResponseInit> {
  await requireAdminAsEtcd(s, ctx);
  const r = await s.hash();
  return { header: s.header(r.revision), hash: r.hash };
}

// etcd answers a defragment without a header.
async function serveDefragment(s: MemberApi, _req: unknown, ctx: CallContext): Promise<DefragmentResponseInit> {
  await requireAdminAsEtcd(s, ctx);
  await s.defragment();
  return {};
}

// etcd's cluster service headers carry no revision. etcd 3.5's `linearizable` (what its clients send by
// default) waits for a ReadIndex round first; without it (etcd 3.4's clients) the applied state answers.
function serveMemberList(s: MemberApi, req: MemberListRequest): MemberListResponseInit | Promise<MemberListResponseInit> {
  if (req.linearizable) return s.linearizableRead().then(() => listMembers(s));
  return listMembers(s);
}

function listMembers(s: MemberApi): MemberListResponseInit {
  return {
    header: { cluster_id: s.clusterId, member_id: s.memberId, raft_term: s.raftTerm },
    members: s.members(),
  };
}

/**
 * The Watch stream (bidirectional): every create, cancel and progress request goes to the member's
 * WatchStream; responses leave through the stream's writer (the gRPC call, or the client-process channel).
 * The client half-closing ends nothing (etcd keeps the stream until the client cancels it); the call's end
 * cancels every watcher of the stream.
 */
function serveWatch(s: MemberApi, stream: RpcBidiStream<WatchRequest, WatchResponseInit>, ctx: CallContext): Promise<void> {
  // clientv3's WithRequireLeader (Kubernetes sets it): refused without a leader, ended when it is lost.
  if (ctx.requireLeader && !s.hasLeader) return Promise.reject(Errors.NoLeader());
  const ws = s.watch(stream);
  stream.onMessage = watchAuthGate(s, ctx, ws, stream);
  stream.onHalfClose = () => {};
  return new Promise<void>((resolve, reject) => {
    let forget: (() => void) | undefined;
    const finish = (err: EtcdError | undefined): void => {
      forget?.();
      ws.close();
      if (err === undefined) resolve();
      else reject(err);
    };
    if (ctx.requireLeader) forget = s.onLeaderLost(() => finish(Errors.NoLeader()));
    ctx.onCancel(() => finish(undefined));
  });
}

/**
 * The cancel reason etcd 3.4 gives a watch its auth check refused (v3rpc/watch.go): the gRPC status
 * error's text, `rpc error: code = PermissionDenied desc = etcdserver: permission denied`.
 */
function watchRefusal(err: unknown): string {
  const e = toEtcdError(err);
  let known = Errors.PermissionDenied();
  for (const k of [Errors.InvalidAuthToken(), Errors.AuthOldRevision(), Errors.UserEmpty()]) if (e.message === k.message) known = k;
  return `rpc error: code = ${GRPC_CODE_NAMES[known.code]} desc = ${known.message}`;
}

/** grpc-go's names of the codes a refused watch can carry. */
const GRPC_CODE_NAMES: Readonly<Record<number, string>> = { 3: 'InvalidArgument', 7: 'PermissionDenied', 16: 'Unauthenticated' };

/** Watch requests the stream holds while one create waits for its caller's identity (then the stream is paused). */
export const WATCH_REQUESTS_HELD_MAX = 64;

/**
 * Checks READ on every create request's range before the stream sees it (etcd's isWatchPermitted, with its
 * key normalisation: an empty key is "\0", a "\0" range end checks the key alone). A create whose caller
 * must be identified asynchronously holds the requests behind it, so the stream sees them in order.
 */
export function watchAuthGate(
  s: MemberApi,
  ctx: CallContext,
  ws: WatchStream,
  stream: RpcBidiStream<WatchRequest, WatchResponseInit>,
): (req: WatchRequest) => void {
  let held: WatchRequest[] | undefined;
  let paused = false;
  const check = (c: WatchCreateRequest, ai: AuthInfo | undefined): void => {
    const key = c.key.length === 0 ? Uint8Array.of(0) : c.key;
    const end = c.range_end.length === 1 && c.range_end[0] === 0 ? undefined : c.range_end;
    s.auth.store.isRangePermitted(ai, key, end);
  };
  /** False when the request waits for its caller's identity (later ones are held meanwhile). */
  const handle = (req: WatchRequest): boolean => {
    const c = req.create_request;
    if (c === undefined) {
      ws.onRequest(req);
      return true;
    }
    let ai: AuthInfo | undefined | Promise<AuthInfo | undefined>;
    try {
      ai = identify(s, ctx);
      if (!(ai instanceof Promise)) check(c, ai);
    } catch (err) {
      ws.refuse(watchRefusal(err));
      return true;
    }
    if (!(ai instanceof Promise)) {
      ws.onRequest(req);
      return true;
    }
    held = [];
    ai.then((a) => {
      check(c, a);
      ws.onRequest(req);
    })
      .catch((err: unknown) => ws.refuse(watchRefusal(err)))
      .finally(() => {
        const q = held ?? [];
        held = undefined;
        for (let i = 0; i < q.length; i++) {
          if (!handle(q[i])) {
            (held as WatchRequest[] | undefined)?.push(...q.slice(i + 1));
            return;
          }
        }
        if (paused) {
          paused = false;
          stream.resume();
        }
      });
    return false;
  };
  return (req: WatchRequest): void => {
    if (held === undefined) {
      handle(req);
      return;
    }
    held.push(req);
    if (!paused && held.length >= WATCH_REQUESTS_HELD_MAX) {
      paused = true;
      stream.pause();
    }
  };
}

/** Keep-alives one stream may have waiting; past it the stream is paused (flow control pushes the client back). */
export const KEEPALIVES_QUEUED_PER_STREAM_MAX = 128;

function validateLeaseGrant(req: LeaseGrantRequest): void {
  // etcd's lessor checks this when the grant applies; checking first spares the log an entry, same answer.
  if (req.TTL > LEASE_TTL_MAX_SEC) throw Errors.LeaseTTLTooLarge();
}

async function serveLeaseGrant(s: MemberApi, req: LeaseGrantRequest, ctx: CallContext): Promise<LeaseGrantResponseInit> {
  s.admit(LEASE_GRANT_COST_BYTES);
  return withHeader(s, await s.leaseGrant(req, await authHeader(s, ctx)));
}

async function serveLeaseRevoke(s: MemberApi, req: LeaseRevokeRequest, ctx: CallContext): Promise<LeaseRevokeResponseInit> {
  const r = await s.propose({ lease_revoke: req, header: await authHeader(s, ctx) });
  return withHeader(s, r.response);
}

/**
 * A missing lease is not an error here: etcd answers TTL -1 (v3rpc/lease.go). Asked for the attached keys
 * with auth on, the caller must be able to read every one of them: etcd 3.4.23 answered anyone, even
 * without credentials (CVE-2023-32082); tetcd checks as etcd 3.4.26 and 3.5.9 do.
 */
async function serveLeaseTimeToLive(s: MemberApi, req: LeaseTimeToLiveRequest, ctx: CallContext): Promise<LeaseTimeToLiveResponseInit> {
  const checked = req.keys && s.auth.store.enabled;
  const ai = checked ? await identify(s, ctx) : undefined;
  if (checked && ai === undefined) throw Errors.UserEmpty();
  const t = await s.leaseTimeToLive(req.ID, req.keys);
  if (t === undefined) return { header: s.header(), ID: req.ID, TTL: -1 };
  if (checked) {
    for (const k of t.keys) s.auth.store.isRangePermitted(ai, k, undefined);
    s.auth.checkStillCurrent(ai);
  }
  return { header: s.header(), ID: req.ID, TTL: t.ttlSec, grantedTTL: t.grantedTtlSec, keys: t.keys };
}

function serveLeaseLeases(s: MemberApi, _req: LeaseLeasesRequest): LeaseLeasesResponseInit {
  return { header: s.header(), leases: s.leaseIdsList().map((ID) => ({ ID })) };
}

/**
 * The LeaseKeepAlive stream: each request renews its lease on the leader and is answered in order with the
 * TTL (0 for a lease that does not exist, as etcd). One renew at a time per stream, as etcd's loop; at most
 * KEEPALIVES_QUEUED_PER_STREAM_MAX requests wait, then the stream is paused, so a client that floods one
 * stream is slowed by flow control and costs bounded memory. A client that half-closes gets the answers
 * to what it sent, then the end of the stream.
 */
function serveLeaseKeepAlive(
  s: MemberApi,
  stream: RpcBidiStream<LeaseKeepAliveRequest, LeaseKeepAliveResponseInit>,
  ctx: CallContext,
): Promise<void> {
  // clientv3's WithRequireLeader: etcd's stream interceptor refuses such a stream without a leader and ends it
  // when the leader is lost, for every stream (keep-alives included), not only watches.
  if (ctx.requireLeader && !s.hasLeader) return Promise.reject(Errors.NoLeader());
  return new Promise<void>((resolve, reject) => {
    const queue: bigint[] = [];
    let head = 0;
    let renewing = false;
    let paused = false;
    let halfClosed = false;
    let over = false;
    let forget: (() => void) | undefined;
    const finish = (err: EtcdError | undefined): void => {
      if (over) return;
      over = true;
      forget?.();
      if (err === undefined) resolve();
      else reject(err);
    };
    const answer = (id: bigint, ttl: number): void => {
      stream.write({ header: s.header(), ID: id, TTL: Math.max(ttl, 0) });
    };
    const pump = (): void => {
      while (!over && !renewing && head < queue.length) {
        if (!stream.writable) {
          stream.drained().then(pump, pump);
          return;
        }
        const id = queue[head++];
        let r: number | Promise<number>;
        try {
          r = s.leaseRenew(id);
        } catch (err) {
          finish(toEtcdError(err));
          return;
        }
        if (typeof r === 'number') {
          answer(id, r);
          continue;
        }
        renewing = true;
        r.then(
          (ttl) => {
            renewing = false;
            if (over) return;
            answer(id, ttl);
            pump();
          },
          (err: unknown) => finish(toEtcdError(err)),
        );
        return;
      }
      if (head === queue.length) {
        queue.length = 0;
        head = 0;
      }
      const waiting = queue.length - head;
      if (paused && waiting < KEEPALIVES_QUEUED_PER_STREAM_MAX / 2) {
        paused = false;
        stream.resume();
      }
      if (halfClosed && waiting === 0 && !renewing) finish(undefined);
    };
    stream.onMessage = (req) => {
      queue.push(req.ID);
      if (!paused && queue.length - head >= KEEPALIVES_QUEUED_PER_STREAM_MAX) {
        paused = true;
        stream.pause();
      }
      pump();
    };
    stream.onHalfClose = () => {
      halfClosed = true;
      pump();
    };
    if (ctx.requireLeader) forget = s.onLeaderLost(() => finish(Errors.NoLeader()));
    ctx.onCancel(() => finish(undefined));
  });
}

/** An Auth RPC that is one Raft entry of the given field (auth_rpc.ts). */
function authRpc<Req, ResInit>(desc: SizedMethodDescriptor<Req, ResInit>, field: keyof AuthProposal): AnyRpc {
  return rpc(desc, {
    validate: noCheck,
    proposes: always,
    serve: (s: MemberApi, req: Req, ctx: CallContext) => proposeAuth(s, ctx, { [field]: req } as AuthProposal) as Promise<ResInit>,
  });
}

/** etcdserverpb.Auth: management through Raft; Authenticate checks the password off the event loop first. */
const AUTH_RPCS: readonly AnyRpc[] = [
  authRpc(Auth.methods.AuthEnable, 'auth_enable'),
  authRpc(Auth.methods.AuthDisable, 'auth_disable'),
  rpc(Auth.methods.Authenticate, { validate: noCheck, proposes: never, serve: serveAuthenticate }),
  rpc(Auth.methods.UserAdd, { validate: noCheck, proposes: always, serve: serveUserAdd }),
  authRpc(Auth.methods.UserGet, 'auth_user_get'),
  authRpc(Auth.methods.UserList, 'auth_user_list'),
  authRpc(Auth.methods.UserDelete, 'auth_user_delete'),
  rpc(Auth.methods.UserChangePassword, { validate: noCheck, proposes: always, serve: serveUserChangePassword }),
  authRpc(Auth.methods.UserGrantRole, 'auth_user_grant_role'),
  authRpc(Auth.methods.UserRevokeRole, 'auth_user_revoke_role'),
  authRpc(Auth.methods.RoleAdd, 'auth_role_add'),
  authRpc(Auth.methods.RoleGet, 'auth_role_get'),
  authRpc(Auth.methods.RoleList, 'auth_role_list'),
  authRpc(Auth.methods.RoleDelete, 'auth_role_delete'),
  authRpc(Auth.methods.RoleGrantPermission, 'auth_role_grant_permission'),
  authRpc(Auth.methods.RoleRevokePermission, 'auth_role_revoke_permission'),
];

/**
 * Every RPC the member serves, unary and streaming. Order does not matter: the client-process channel
 * names a method by its fixed ID (client_procs/methods.ts), which every entry must have.
 */
export const RPCS: readonly AnyRpc[] = learnerGated([
  rpc(KV.methods.Range, { validate: (req: RangeRequest) => validateRangeRequest(req), proposes: never, serve: serveRangeSync }),
  rpc(KV.methods.Put, { validate: (req: PutRequest) => validatePutRequest(req), proposes: always, serve: servePut }),
  rpc(KV.methods.DeleteRange, {
    validate: (req: DeleteRangeRequest) => validateDeleteRangeRequest(req),
    proposes: always,
    serve: serveDeleteRange,
  }),
  rpc(KV.methods.Txn, {
    validate: (req: TxnRequest, limits: RpcLimits) => validateTxnRequest(req, { maxTxnOps: limits.maxTxnOps, maxRangeResponseBytes: 0 }),
    proposes: (req: TxnRequest) => !isTxnReadonly(req),
    serve: serveTxn,
  }),
  rpc(KV.methods.Compact, { validate: noCheck, proposes: always, serve: serveCompact }),
  rpc(Maintenance.methods.Status, { validate: noCheck, proposes: never, serve: serveStatus }),
  rpc(Maintenance.methods.Alarm, { validate: noCheck, proposes: always, serve: serveAlarm }),
  rpc(Maintenance.methods.HashKV, { validate: noCheck, proposes: never, serve: serveHashKV }),
  rpc(Maintenance.methods.Hash, { validate: noCheck, proposes: never, serve: serveHash }),
  rpc(Maintenance.methods.Defragment, { validate: noCheck, proposes: never, serve: serveDefragment }),
  serverStreamRpc(Maintenance.methods.Snapshot, { validate: noCheck, serve: serveSnapshot }),
  rpc(Cluster.methods.MemberList, { validate: noCheck, proposes: never, serve: serveMemberList }),
  rpc(Cluster.methods.MemberAdd, { validate: noCheck, proposes: always, serve: serveMemberAdd }),
  rpc(Cluster.methods.MemberRemove, { validate: noCheck, proposes: always, serve: serveMemberRemove }),
  rpc(Cluster.methods.MemberUpdate, { validate: noCheck, proposes: always, serve: serveMemberUpdate }),
  rpc(Cluster.methods.MemberPromote, { validate: noCheck, proposes: always, serve: serveMemberPromote }),
  rpc(Maintenance.methods.MoveLeader, { validate: noCheck, proposes: never, serve: serveMoveLeader }),
  bidiRpc(Watch.methods.Watch, { validate: noCheck, serve: serveWatch }),
  rpc(Lease.methods.LeaseGrant, { validate: validateLeaseGrant, proposes: always, serve: serveLeaseGrant }),
  rpc(Lease.methods.LeaseRevoke, { validate: noCheck, proposes: always, serve: serveLeaseRevoke }),
  bidiRpc(Lease.methods.LeaseKeepAlive, { validate: noCheck, serve: serveLeaseKeepAlive }),
  rpc(Lease.methods.LeaseTimeToLive, { validate: noCheck, proposes: never, serve: serveLeaseTimeToLive }),
  rpc(Lease.methods.LeaseLeases, { validate: noCheck, proposes: never, serve: serveLeaseLeases }),
  // Lock and Election propose through the member's own KV (their requests never become a Raft entry).
  rpc(Lock.methods.Lock, { validate: noCheck, proposes: never, waits: true, serve: serveLock }),
  rpc(Lock.methods.Unlock, { validate: noCheck, proposes: never, serve: serveUnlock }),
  rpc(Election.methods.Campaign, { validate: noCheck, proposes: never, waits: true, serve: serveCampaign }),
  rpc(Election.methods.Proclaim, { validate: noCheck, proposes: never, serve: serveProclaim }),
  rpc(Election.methods.Leader, { validate: noCheck, proposes: never, serve: serveLeader }),
  serverStreamRpc(Election.methods.Observe, { validate: noCheck, serve: serveObserve }),
  rpc(Election.methods.Resign, { validate: noCheck, proposes: never, serve: serveResign }),
  ...AUTH_RPCS,
]);

/**
 * etcd's learner gate (v3rpc interceptors): a learner serves Status and serializable Range only; every other
 * unary RPC and every stream is refused with `rpc not supported for learner`.
 */
function learnerGated(rpcs: AnyRpc[]): AnyRpc[] {
  return rpcs.map((r): AnyRpc => {
    const path = r.desc.path;
    if (path === Maintenance.methods.Status.path) return r;
    if (r.kind === 'unary') {
      const serve = r.serve;
      const allowed = path === KV.methods.Range.path ? (req: unknown) => (req as RangeRequest).serializable : never;
      return {
        ...r,
        serve: (s: MemberApi, req: unknown, ctx: CallContext) => {
          if (s.isLearner && !allowed(req)) throw Errors.NotSupportedForLearner();
          return serve(s, req, ctx);
        },
      };
    }
    if (r.kind === 'serverStream') {
      const serve = r.serve;
      return {
        ...r,
        serve: (s: MemberApi, req: unknown, out: RpcStreamWriter<unknown>, ctx: CallContext) => {
          return s.isLearner ? Promise.reject(Errors.NotSupportedForLearner()) : serve(s, req, out, ctx);
        },
      };
    }
    const serve = r.serve;
    return {
      ...r,
      serve: (s: MemberApi, stream: RpcBidiStream<unknown, unknown>, ctx: CallContext) => {
        return s.isLearner ? Promise.reject(Errors.NotSupportedForLearner()) : serve(s, stream, ctx);
      },
    };
  });
}

/** The limits a member's config sets. */
export function rpcLimitsOf(s: MemberApi): RpcLimits {
  return { maxTxnOps: s.limits.maxTxnOps, maxRequestBytes: s.limits.maxRequestBytes };
}
