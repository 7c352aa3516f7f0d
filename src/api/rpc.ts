// The etcd v3 unary RPCs as transport-agnostic functions: etcd's request checks (`validate`) and the
// member's answer (`serve`). Registered on the in-process gRPC server (services.ts) and, with
// --client-workers, split: client processes validate, the member's channel server serves (src/client_procs).
import type { MethodDescriptor } from './grpc/server.js';
import type { ProtoWriter } from '../proto/wire.js';
import { KV, Maintenance, Cluster } from '../proto/rpc.js';
import type {
  RangeRequest, PutRequest, DeleteRangeRequest, TxnRequest, CompactionRequest, StatusRequest, MemberListRequest,
  AlarmRequest, ResponseHeaderInit, RangeResponseInit, PutResponseInit, DeleteRangeResponseInit, TxnResponseInit,
  CompactionResponseInit, StatusResponseInit, MemberListResponseInit, AlarmResponseInit,
} from '../proto/rpc.js';
import type { EtcdServer } from '../server/server.js';
import type { HeaderedResponse } from '../server/apply.js';
import {
  validateRangeRequest, validatePutRequest, validateDeleteRangeRequest, validateTxnRequest, isTxnReadonly,
} from '../server/apply_kv.js';
import { ETCD_SERVER_VERSION } from '../config/version.js';
import { Errors } from '../errors.js';
import { costPut, costTxn } from '../server/quota.js';
import { alarmText } from '../server/alarms.js';

/** The request limits etcd checks before a request reaches Raft (from the member's flags). */
export interface RpcLimits {
  /** --max-txn-ops */
  maxTxnOps: number;
  /** --max-request-bytes: the largest proposal. */
  maxRequestBytes: number;
}

/**
 * One unary RPC, independent of how requests arrive.
 *
 *   rpc.validate(req, limits);               // where the request is decoded first
 *   const res = await rpc.serve(server, req); // on the member
 */
export interface UnaryRpc<Req, ResInit> {
  readonly desc: SizedMethodDescriptor<Req, ResInit>;
  /** etcd's checks of the request alone (v3rpc/key.go); throws EtcdError. Needs no member state. */
  validate(req: Req, limits: RpcLimits): void;
  /** True if serving it proposes the request through Raft (so --max-request-bytes applies to it). */
  proposes(req: Req): boolean;
  /** The member's answer; throws (or rejects with) EtcdError. Does not validate. */
  serve(s: EtcdServer, req: Req): ResInit | Promise<ResInit>;
}

/** A method descriptor that can write a response into a buffer the caller sized (the generated ones can). */
export interface SizedMethodDescriptor<Req, ResInit> extends MethodDescriptor<Req, ResInit> {
  sizeResponse(m: ResInit): number;
  writeResponse(m: ResInit, w: ProtoWriter): void;
}

/** An RPC with its message types erased, as tables hold them. */
export type AnyUnaryRpc = UnaryRpc<unknown, unknown>;

/** Fills the identity fields of a response header, keeping the revision the applier set. */
function withHeader<T extends HeaderedResponse>(s: EtcdServer, resp: T): T {
  const rev = resp.header?.revision ?? s.mvcc.currentRevision;
  const header: ResponseHeaderInit = { cluster_id: s.clusterId, member_id: s.memberId, revision: rev, raft_term: s.raftTerm };
  resp.header = header;
  return resp;
}

/** Refuses a write the backend quota has no room for, and raises NOSPACE (etcd's quotaKVServer). */
function checkQuota(s: EtcdServer, costBytes: number): void {
  if (costBytes === 0) return;
  if (s.quota.available(costBytes)) {
    s.quota.charge(costBytes);
    return;
  }
  s.raiseNoSpace();
  throw Errors.NoSpace();
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

function rpc<Req, ResInit>(desc: SizedMethodDescriptor<Req, ResInit>, spec: Omit<UnaryRpc<Req, ResInit>, 'desc'>): AnyUnaryRpc {
  return { desc, ...spec } as unknown as AnyUnaryRpc;
}

async function serveRange(s: EtcdServer, req: RangeRequest): Promise<RangeResponseInit> {
  if (!req.serializable) await s.linearizableRead();
  return withHeader(s, s.applier.range(req));
}

function serveRangeSync(s: EtcdServer, req: RangeRequest): RangeResponseInit | Promise<RangeResponseInit> {
  // A serializable read is answered in the same turn: no promise, no microtask.
  return req.serializable ? withHeader(s, s.applier.range(req)) : serveRange(s, req);
}

async function servePut(s: EtcdServer, req: PutRequest): Promise<PutResponseInit> {
  checkQuota(s, costPut(req));
  const r = await s.propose({ put: req });
  return withHeader(s, r.response);
}

async function serveDeleteRange(s: EtcdServer, req: DeleteRangeRequest): Promise<DeleteRangeResponseInit> {
  const r = await s.propose({ delete_range: req });
  return withHeader(s, r.response);
}

async function serveTxn(s: EtcdServer, req: TxnRequest): Promise<TxnResponseInit> {
  if (isTxnReadonly(req)) {
    if (!isTxnSerializable(req)) await s.linearizableRead();
    return withHeader(s, s.applier.txnReadOnly(req));
  }
  checkQuota(s, costTxn(req));
  const r = await s.propose({ txn: req });
  return withHeader(s, r.response);
}

async function serveCompact(s: EtcdServer, req: CompactionRequest): Promise<CompactionResponseInit> {
  const r = await s.propose({ compaction: req });
  if (req.physical && r.physicalDone) await r.physicalDone;
  return withHeader(s, r.response);
}

function serveStatus(s: EtcdServer, _req: StatusRequest): StatusResponseInit {
  const st = s.mvcc.stats;
  return withHeader<StatusResponseInit>(s, {
    version: ETCD_SERVER_VERSION,
    dbSize: st.dbSizeBytes,
    leader: s.leader,
    raftIndex: s.raftIndex,
    raftTerm: s.raftTerm,
    raftAppliedIndex: s.raftAppliedIndex,
    errors: s.applier.alarms.get().map(alarmText),
    dbSizeInUse: st.dbSizeInUseBytes,
    isLearner: s.isLearner,
  });
}

// etcd answers alarm requests (all of them through Raft) without a header.
async function serveAlarm(s: EtcdServer, req: AlarmRequest): Promise<AlarmResponseInit> {
  return (await s.propose({ alarm: req })).response as AlarmResponseInit;
}

// etcd's cluster service headers carry no revision.
function serveMemberList(s: EtcdServer, _req: MemberListRequest): MemberListResponseInit {
  return {
    header: { cluster_id: s.clusterId, member_id: s.memberId, raft_term: s.raftTerm },
    members: s.membership.list(),
  };
}

/**
 * Every unary RPC the member serves, in a fixed order: the position is the method's number on the
 * client-process channel, so both ends must run the same build.
 */
export const UNARY_RPCS: readonly AnyUnaryRpc[] = [
  rpc(KV.methods.Range, { validate: (req: RangeRequest) => validateRangeRequest(req), proposes: never, serve: serveRangeSync }),
  rpc(KV.methods.Put, { validate: (req: PutRequest) => validatePutRequest(req), proposes: always, serve: servePut }),
  rpc(KV.methods.DeleteRange, { validate: (req: DeleteRangeRequest) => validateDeleteRangeRequest(req), proposes: always, serve: serveDeleteRange }),
  rpc(KV.methods.Txn, {
    validate: (req: TxnRequest, limits: RpcLimits) => validateTxnRequest(req, { maxTxnOps: limits.maxTxnOps, maxRangeResponseBytes: 0 }),
    proposes: (req: TxnRequest) => !isTxnReadonly(req),
    serve: serveTxn,
  }),
  rpc(KV.methods.Compact, { validate: noCheck, proposes: always, serve: serveCompact }),
  rpc(Maintenance.methods.Status, { validate: noCheck, proposes: never, serve: serveStatus }),
  rpc(Maintenance.methods.Alarm, { validate: noCheck, proposes: always, serve: serveAlarm }),
  rpc(Cluster.methods.MemberList, { validate: noCheck, proposes: never, serve: serveMemberList }),
];

/** The limits a member's config sets. */
export function rpcLimitsOf(s: EtcdServer): RpcLimits {
  return { maxTxnOps: s.cfg.maxTxnOps, maxRequestBytes: s.cfg.maxRequestBytes };
}
