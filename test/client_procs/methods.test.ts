// Method IDs of the client-process channel are fixed: a client process and a member of different builds
// must agree on them, so renumbering one fails here. Every RPC of the table has one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RPCS } from '../../src/api/rpc.js';
import { ChannelMethods, InternalMethod, METHOD_IDS, TEST_METHOD_ID_FIRST, TEST_METHOD_ID_LAST } from '../../src/client_procs/methods.js';
import { TEST_RPCS, TEST_METHOD_IDS } from './fixtures/test_rpcs.js';

// Written out by hand, on purpose: change a number here only if no deployed build uses it.
const PINNED: [string, number][] = [
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
];

test('method IDs are the pinned numbers, no more and no fewer', () => {
  assert.equal(
    [...METHOD_IDS.entries()].sort((a, b) => a[1] - b[1]),
    PINNED,
  );
  assert.is(InternalMethod.Health, 0xff00);
  assert.is(InternalMethod.Metrics, 0xff01);
  assert.is(InternalMethod.LeaseKeepAlives, 0xff02);
  assert.is(InternalMethod.LeaderGuard, 0xff03);
});

test('IDs are unique, below the test and internal ranges', () => {
  const ids = [...METHOD_IDS.values()];
  assert.is(new Set(ids).size, ids.length);
  for (const id of ids) assert.ok(id > 0 && id < TEST_METHOD_ID_FIRST, `0x${id.toString(16)}`);
  assert.ok(TEST_METHOD_ID_LAST < InternalMethod.First);
  for (const id of TEST_METHOD_IDS.values()) assert.ok(id >= TEST_METHOD_ID_FIRST && id <= TEST_METHOD_ID_LAST);
});

test('every RPC of the table has an ID, and the channel refuses a table with one missing', () => {
  for (const rpc of RPCS) assert.ok(METHOD_IDS.has(rpc.desc.path), `${rpc.desc.path} has an ID`);
  const methods = new ChannelMethods(RPCS);
  assert.is(methods.entries.length, RPCS.length);
  for (const { id, rpc } of methods.entries) assert.is(methods.rpcOf(id), rpc);
  assert.throws(() => new ChannelMethods(TEST_RPCS), /no method ID for \/test\.Chan\/Ctx/);
  const twice = new Map([...METHOD_IDS, ...[...TEST_METHOD_IDS.keys()].map((k) => [k, 0x0101] as [string, number])]);
  assert.throws(() => new ChannelMethods([...RPCS, ...TEST_RPCS], twice), /given twice/);
});

test.run();
