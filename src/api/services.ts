// The etcd v3 gRPC services, as thin handlers over the member: validate, propose or read, add the
// response header. Validation happens here, before proposing, as etcd's v3rpc does, so a bad request
// never reaches the log.
import type { GrpcServer } from './grpc/server.js';
import { KV, Maintenance, Cluster } from '../proto/rpc.js';
import type {
  RangeRequest, PutRequest, DeleteRangeRequest, TxnRequest, CompactionRequest,
  ResponseHeaderInit, RangeResponseInit, TxnResponseInit, StatusResponseInit, MemberListResponseInit,
} from '../proto/rpc.js';
import type { EtcdServer } from '../server/server.js';
import type { HeaderedResponse } from '../server/apply.js';
import {
  validateRangeRequest, validatePutRequest, validateDeleteRangeRequest, validateTxnRequest, isTxnReadonly,
} from '../server/apply_kv.js';
import { ETCD_SERVER_VERSION } from '../config/version.js';

/** Fills the identity fields of a response header, keeping the revision the applier set. */
function withHeader<T extends HeaderedResponse>(s: EtcdServer, resp: T): T {
  const rev = resp.header?.revision ?? s.mvcc.currentRevision;
  const header: ResponseHeaderInit = { cluster_id: s.clusterId, member_id: s.memberId, revision: rev, raft_term: s.raftTerm };
  resp.header = header;
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
      errors: [],
      dbSizeInUse: st.dbSizeInUseBytes,
      isLearner: s.isLearner,
    });
  });

  // etcd's cluster service headers carry no revision.
  grpc.unary(Cluster.methods.MemberList, (): MemberListResponseInit => ({
    header: { cluster_id: s.clusterId, member_id: s.memberId, raft_term: s.raftTerm },
    members: s.membership.list(),
  }));
}
