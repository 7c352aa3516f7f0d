// etcdserverpb.Cluster's changes and Maintenance.MoveLeader (etcd's v3rpc cluster.go and maintenance.go): the
// peer URLs checked and normalized as etcd's types.NewURLs does, admin only when auth is on, and the
// answer's header without a revision, as etcd's cluster service sends it.
import type { CallContext } from './context.js';
import type { MemberApi } from '../server/member_api.js';
import type {
  MemberAddRequest,
  MemberAddResponseInit,
  MemberRemoveRequest,
  MemberRemoveResponseInit,
  MemberUpdateRequest,
  MemberUpdateResponseInit,
  MemberPromoteRequest,
  MemberPromoteResponseInit,
  MoveLeaderRequest,
  MoveLeaderResponseInit,
  ResponseHeaderInit,
} from '../proto/rpc.js';
import { Errors } from '../errors.js';
import { newUrls } from '../config/values.js';

function clusterHeader(s: MemberApi): ResponseHeaderInit {
  return { cluster_id: s.clusterId, member_id: s.memberId, raft_term: s.raftTerm };
}

/** etcd's types.NewURLs over a request's peer URLs: sorted hrefs, or ErrGRPCMemberBadURLs. */
function peerUrlsOf(urls: readonly string[]): string[] {
  const parsed = newUrls(urls);
  if ('error' in parsed) throw Errors.MemberBadURLs();
  return parsed.map((u) => u.href);
}

export async function serveMemberAdd(s: MemberApi, req: MemberAddRequest, ctx: CallContext): Promise<MemberAddResponseInit> {
  const urls = peerUrlsOf(req.peerURLs);
  await s.auth.requireAdmin(ctx);
  const { member, members } = await s.memberAdd(urls, req.isLearner);
  return { header: clusterHeader(s), member, members };
}

export async function serveMemberRemove(s: MemberApi, req: MemberRemoveRequest, ctx: CallContext): Promise<MemberRemoveResponseInit> {
  await s.auth.requireAdmin(ctx);
  const members = await s.memberRemove(req.ID);
  return { header: clusterHeader(s), members };
}

export async function serveMemberUpdate(s: MemberApi, req: MemberUpdateRequest, ctx: CallContext): Promise<MemberUpdateResponseInit> {
  // etcd 3.4 takes the URLs as given here (no NewURLs check); an empty or bad one is stored as such.
  await s.auth.requireAdmin(ctx);
  const members = await s.memberUpdate(req.ID, [...req.peerURLs]);
  return { header: clusterHeader(s), members };
}

export async function serveMemberPromote(s: MemberApi, req: MemberPromoteRequest, ctx: CallContext): Promise<MemberPromoteResponseInit> {
  await s.auth.requireAdmin(ctx);
  const members = await s.memberPromote(req.ID);
  return { header: clusterHeader(s), members };
}

// etcd 3.4 checks no permission here and answers with an empty response (no header).
export async function serveMoveLeader(s: MemberApi, req: MoveLeaderRequest, ctx: CallContext): Promise<MoveLeaderResponseInit> {
  await s.moveLeader(req.targetID, ctx.deadlineMs);
  return {};
}
