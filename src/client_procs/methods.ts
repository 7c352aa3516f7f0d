// Method IDs of the client-process channel: every gRPC method by its full path, and the member's
// answers behind the HTTP/1.1 endpoints. An ID never changes once given (test/client_procs/methods.test.ts
// pins them): new methods take free numbers, so adding or reordering RPCs renumbers nothing.
import type { AnyRpc } from '../api/rpc.js';

/**
 * gRPC methods: the high byte is the service, the low byte the method in the order of etcd's .proto.
 * KV 0x01, Watch 0x02, Lease 0x03, Cluster 0x04, Maintenance 0x05, Auth 0x06, Lock 0x07, Election 0x08;
 * 0xfe is for tests' own methods, 0xff for internal ones.
 */
export const METHOD_IDS: ReadonlyMap<string, number> = new Map([
  ['/etcdserverpb.KV/Range', 0x0101],
  ['/etcdserverpb.KV/Put', 0x0102],
  ['/etcdserverpb.KV/DeleteRange', 0x0103],
  ['/etcdserverpb.KV/Txn', 0x0104],
  ['/etcdserverpb.KV/Compact', 0x0105],
  ['/etcdserverpb.Watch/Watch', 0x0201],
  ['/etcdserverpb.Lease/LeaseGrant', 0x0301],
  ['/etcdserverpb.Lease/LeaseRevoke', 0x0302],
  ['/etcdserverpb.Lease/LeaseKeepAlive', 0x0303],
  ['/etcdserverpb.Lease/LeaseTimeToLive', 0x0304],
  ['/etcdserverpb.Lease/LeaseLeases', 0x0305],
  ['/etcdserverpb.Cluster/MemberAdd', 0x0401],
  ['/etcdserverpb.Cluster/MemberRemove', 0x0402],
  ['/etcdserverpb.Cluster/MemberUpdate', 0x0403],
  ['/etcdserverpb.Cluster/MemberList', 0x0404],
  ['/etcdserverpb.Cluster/MemberPromote', 0x0405],
  ['/etcdserverpb.Maintenance/Alarm', 0x0501],
  ['/etcdserverpb.Maintenance/Status', 0x0502],
  ['/etcdserverpb.Maintenance/Defragment', 0x0503],
  ['/etcdserverpb.Maintenance/Hash', 0x0504],
  ['/etcdserverpb.Maintenance/HashKV', 0x0505],
  ['/etcdserverpb.Maintenance/Snapshot', 0x0506],
  ['/etcdserverpb.Maintenance/MoveLeader', 0x0507],
  ['/etcdserverpb.Auth/AuthEnable', 0x0601],
  ['/etcdserverpb.Auth/AuthDisable', 0x0602],
  ['/etcdserverpb.Auth/Authenticate', 0x0603],
  ['/etcdserverpb.Auth/UserAdd', 0x0604],
  ['/etcdserverpb.Auth/UserGet', 0x0605],
  ['/etcdserverpb.Auth/UserList', 0x0606],
  ['/etcdserverpb.Auth/UserDelete', 0x0607],
  ['/etcdserverpb.Auth/UserChangePassword', 0x0608],
  ['/etcdserverpb.Auth/UserGrantRole', 0x0609],
  ['/etcdserverpb.Auth/UserRevokeRole', 0x060a],
  ['/etcdserverpb.Auth/RoleAdd', 0x060b],
  ['/etcdserverpb.Auth/RoleGet', 0x060c],
  ['/etcdserverpb.Auth/RoleList', 0x060d],
  ['/etcdserverpb.Auth/RoleDelete', 0x060e],
  ['/etcdserverpb.Auth/RoleGrantPermission', 0x060f],
  ['/etcdserverpb.Auth/RoleRevokePermission', 0x0610],
  ['/v3lockpb.Lock/Lock', 0x0701],
  ['/v3lockpb.Lock/Unlock', 0x0702],
  ['/v3electionpb.Election/Campaign', 0x0801],
  ['/v3electionpb.Election/Proclaim', 0x0802],
  ['/v3electionpb.Election/Leader', 0x0803],
  ['/v3electionpb.Election/Observe', 0x0804],
  ['/v3electionpb.Election/Resign', 0x0805],
]);

/** IDs from here to TEST_METHOD_ID_LAST are never production methods: tests register their own there. */
export const TEST_METHOD_ID_FIRST = 0xfe00;
export const TEST_METHOD_ID_LAST = 0xfeff;

/** Internal methods; numbers from `First` up are never gRPC methods. */
export const InternalMethod = {
  First: 0xff00,
  /** /health: the reply body is one byte, 1 = healthy. */
  Health: 0xff00,
  /** /metrics: the reply body is the Prometheus text. */
  Metrics: 0xff01,
  /** A Call: the keep-alive renewals of a client process's streams of one turn (body: keepalive_batch.ts). */
  LeaseKeepAlives: 0xff02,
  /**
   * An Open with the RequireLeader flag, no body: the member refuses it without a leader and ends it when it
   * loses the leader, with etcd's `no leader`, as it does its own streams that require one; it sends nothing
   * else. A client process holds one for each keep-alive stream it serves with metadata `hasleader`.
   */
  LeaderGuard: 0xff03,
} as const;

/**
 * The RPCs one channel serves, by method ID (both ends build it from the same table and IDs).
 *
 *   const methods = new ChannelMethods(RPCS);        // production
 *   const methods = new ChannelMethods([...RPCS, ...testRpcs], new Map([...METHOD_IDS, ...testIds]));
 */
export class ChannelMethods {
  /** Every entry with its ID, in table order. */
  readonly entries: readonly { readonly id: number; readonly rpc: AnyRpc }[];
  /** ID → RPC; a dense array, so the member's lookup per call is one load. */
  private readonly byId: (AnyRpc | undefined)[];

  /** Throws naming the method if an RPC has no ID, an ID is outside 1..0xfeff, or two share one. */
  constructor(rpcs: readonly AnyRpc[], ids: ReadonlyMap<string, number> = METHOD_IDS) {
    const entries: { id: number; rpc: AnyRpc }[] = [];
    let idMax = 0;
    for (const rpc of rpcs) {
      const id = ids.get(rpc.desc.path);
      if (id === undefined) throw new Error(`client-process channel: no method ID for ${rpc.desc.path}`);
      if (!Number.isInteger(id) || id < 1 || id >= InternalMethod.First)
        throw new Error(`client-process channel: method ID ${id} of ${rpc.desc.path} is out of range`);
      entries.push({ id, rpc });
      idMax = Math.max(idMax, id);
    }
    // Sized to the largest ID in use (production's stay below 0x0900), not to the whole u16 space.
    this.byId = new Array<AnyRpc | undefined>(idMax + 1).fill(undefined);
    for (const { id, rpc } of entries) {
      const seen = this.byId[id];
      if (seen !== undefined) throw new Error(`client-process channel: method ID ${id} given twice (${seen.desc.path}, ${rpc.desc.path})`);
      this.byId[id] = rpc;
    }
    this.entries = entries;
  }

  /** The RPC of an ID, or undefined. */
  rpcOf(id: number): AnyRpc | undefined {
    return id < this.byId.length ? this.byId[id] : undefined;
  }
}
