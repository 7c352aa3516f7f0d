// The etcd v3 gRPC services, as thin handlers over the member: validate, propose or read, add the
// response header. Validation happens here, before proposing, as etcd's v3rpc does, so a bad request
// never reaches the log.
import type { GrpcServer } from './grpc/server.js';
import { KV, Maintenance, Cluster } from '../proto/rpc.js';
import type {
  RangeRequest, PutRequest, DeleteRangeRequest, TxnRequest, CompactionRequest,
  ResponseHeaderInit, RangeResponseInit, TxnResponseInit, StatusResponseInit, MemberListResponseInit,
  AlarmRequest, AlarmResponseInit,
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

/** Fills the identity fields of a response header, keeping the revision the applier set. */
function withHeader<T extends HeaderedResponse>(s: EtcdServer, resp: T): T {
  const rev = resp.header?.revision ?? s.mvcc.currentRevision;
  const header: ResponseHeaderInit = { cluster_id: s.clusterId, member_id: s.memberId, revision: rev, raft_term: s.raftTerm };
  resp.header = header;
  return resp;
}

/** Refuses a write the backend quota has no room for, and raises NOSPACE (etcd's quotaKVServer). */
function checkQuota(s: EtcdServer, costBytes: number): void {
  if (costBytes === 0 || s.quota.available(costBytes)) return;
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

/** Registers KV, Maintenance (Status) and Cluster (MemberList) on a gRPC server. */
export function registerServices(grpc: GrpcServer, s: EtcdServer): void {
  const limits = { maxTxnOps: s.cfg.maxTxnOps, maxRangeResponseBytes: s.cfg.maxRangeResponseBytes };

  grpc.unary(KV.methods.Range, async (req: RangeRequest): Promise<RangeResponseInit> => {
    validateRangeRequest(req);
    if (!req.serializable) await s.linearizableRead();
    return withHeader(s, s.applier.range(req));
  });

  grpc.unary(KV.methods.Put, async (req: PutRequest) => {
    validatePutRequest(req);
    checkQuota(s, costPut(req));
    const r = await s.propose({ put: req });
    return withHeader(s, r.response);
  });

  grpc.unary(KV.methods.DeleteRange, async (req: DeleteRangeRequest) => {
    validateDeleteRangeRequest(req);
    const r = await s.propose({ delete_range: req });
    return withHeader(s, r.response);
  });

  grpc.unary(KV.methods.Txn, async (req: TxnRequest): Promise<TxnResponseInit> => {
    validateTxnRequest(req, limits);
    if (isTxnReadonly(req)) {
      if (!isTxnSerializable(req)) await s.linearizableRead();
      return withHeader(s, s.applier.txnReadOnly(req));
    }
    checkQuota(s, costTxn(req));
    const r = await s.propose({ txn: req });
    return withHeader(s, r.response);
  });

  grpc.unary(KV.methods.Compact, async (req: CompactionRequest) => {
    const r = await s.propose({ compaction: req });
    if (req.physical && r.physicalDone) await r.physicalDone;
    return withHeader(s, r.response);
  });

  grpc.unary(Maintenance.methods.Status, () => {
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
  });

  // etcd answers alarm requests (all of them through Raft) without a header.
  grpc.unary(Maintenance.methods.Alarm, async (req: AlarmRequest) => (await s.propose({ alarm: req })).response as AlarmResponseInit);

  // etcd's cluster service headers carry no revision.
  grpc.unary(Cluster.methods.MemberList, (): MemberListResponseInit => ({
    header: { cluster_id: s.clusterId, member_id: s.memberId, raft_term: s.raftTerm },
    members: s.membership.list(),
  }));
}
