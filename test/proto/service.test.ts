// Service descriptors: names, paths, streaming flags and gateway paths as etcd 3.4 has them, and
// the typing a server relies on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as rpc from '../../src/proto/rpc.js';
import { Lock } from '../../src/proto/v3lock.js';
import { Election } from '../../src/proto/v3election.js';
import type { RequestOf, ResponseInitOf, ServiceDescriptor, AnyMethodDescriptor } from '../../src/proto/service.js';

const services: ServiceDescriptor[] = [rpc.KV, rpc.Watch, rpc.Lease, rpc.Cluster, rpc.Maintenance, rpc.Auth, Lock, Election];

test('every etcd 3.4 RPC is described, and nothing else', () => {
  const paths = services.flatMap((s) => Object.values(s.methods).map((m) => m.path)).sort();
  const expected = [
    '/etcdserverpb.KV/Range',
    '/etcdserverpb.KV/Put',
    '/etcdserverpb.KV/DeleteRange',
    '/etcdserverpb.KV/Txn',
    '/etcdserverpb.KV/Compact',
    '/etcdserverpb.Watch/Watch',
    '/etcdserverpb.Lease/LeaseGrant',
    '/etcdserverpb.Lease/LeaseRevoke',
    '/etcdserverpb.Lease/LeaseKeepAlive',
    '/etcdserverpb.Lease/LeaseTimeToLive',
    '/etcdserverpb.Lease/LeaseLeases',
    '/etcdserverpb.Cluster/MemberAdd',
    '/etcdserverpb.Cluster/MemberRemove',
    '/etcdserverpb.Cluster/MemberUpdate',
    '/etcdserverpb.Cluster/MemberList',
    '/etcdserverpb.Cluster/MemberPromote',
    '/etcdserverpb.Maintenance/Alarm',
    '/etcdserverpb.Maintenance/Status',
    '/etcdserverpb.Maintenance/Defragment',
    '/etcdserverpb.Maintenance/Hash',
    '/etcdserverpb.Maintenance/HashKV',
    '/etcdserverpb.Maintenance/Snapshot',
    '/etcdserverpb.Maintenance/MoveLeader',
    '/etcdserverpb.Auth/AuthEnable',
    '/etcdserverpb.Auth/AuthDisable',
    '/etcdserverpb.Auth/Authenticate',
    '/etcdserverpb.Auth/UserAdd',
    '/etcdserverpb.Auth/UserGet',
    '/etcdserverpb.Auth/UserList',
    '/etcdserverpb.Auth/UserDelete',
    '/etcdserverpb.Auth/UserChangePassword',
    '/etcdserverpb.Auth/UserGrantRole',
    '/etcdserverpb.Auth/UserRevokeRole',
    '/etcdserverpb.Auth/RoleAdd',
    '/etcdserverpb.Auth/RoleGet',
    '/etcdserverpb.Auth/RoleList',
    '/etcdserverpb.Auth/RoleDelete',
    '/etcdserverpb.Auth/RoleGrantPermission',
    '/etcdserverpb.Auth/RoleRevokePermission',
    '/v3lockpb.Lock/Lock',
    '/v3lockpb.Lock/Unlock',
    '/v3electionpb.Election/Campaign',
    '/v3electionpb.Election/Proclaim',
    '/v3electionpb.Election/Leader',
    '/v3electionpb.Election/Observe',
    '/v3electionpb.Election/Resign',
  ].sort();
  assert.equal(paths, expected);
});

test('streaming flags', () => {
  const streams = services
    .flatMap((s) => Object.values(s.methods))
    .filter((m: AnyMethodDescriptor) => m.requestStream || m.responseStream)
    .map((m) => `${m.path} ${m.requestStream ? 'stream' : 'unary'}→${m.responseStream ? 'stream' : 'unary'}`)
    .sort();
  assert.equal(streams, [
    '/etcdserverpb.Lease/LeaseKeepAlive stream→stream',
    '/etcdserverpb.Maintenance/Snapshot unary→stream',
    '/etcdserverpb.Watch/Watch stream→stream',
    '/v3electionpb.Election/Observe unary→stream',
  ]);
});

test('gateway paths', () => {
  assert.equal(rpc.KV.methods.Range.httpPaths, ['/v3/kv/range']);
  assert.equal(rpc.Lease.methods.LeaseRevoke.httpPaths, ['/v3/lease/revoke', '/v3/kv/lease/revoke']);
  assert.equal(rpc.Lease.methods.LeaseTimeToLive.httpPaths, ['/v3/lease/timetolive', '/v3/kv/lease/timetolive']);
  assert.equal(rpc.Maintenance.methods.MoveLeader.httpPaths, ['/v3/maintenance/transfer-leadership']);
  assert.equal(rpc.Maintenance.methods.HashKV.httpPaths, ['/v3/maintenance/hash'], "etcd 3.4 maps HashKV onto Hash's path");
  assert.equal(rpc.Auth.methods.UserChangePassword.httpPaths, ['/v3/auth/user/changepw']);
  assert.equal(Election.methods.Observe.httpPaths, ['/v3/election/observe']);
  for (const s of services)
    for (const m of Object.values(s.methods)) assert.ok(m.httpPaths.length > 0 && m.httpPaths[0].startsWith('/v3/'), m.path);
});

// A server registers handlers typed by the descriptor; this is checked by the compiler.
type Handler<M extends AnyMethodDescriptor & { decodeRequest: (b: Uint8Array) => unknown; encodeResponse: (m: never) => Uint8Array }> = (
  req: RequestOf<M>,
) => ResponseInitOf<M>;

test('descriptors drive a typed unary call end to end', () => {
  const range: Handler<typeof rpc.KV.methods.Range> = (req: rpc.RangeRequest): rpc.RangeResponseInit => ({
    header: { revision: 4 },
    kvs: [{ key: req.key, value: Buffer.from('v'), mod_revision: 4 }],
    count: 1,
  });
  const m = rpc.KV.methods.Range;
  const body = m.encodeRequest({ key: Buffer.from('foo'), limit: 1 });
  const res = m.decodeResponse(m.encodeResponse(range(m.decodeRequest(body))));
  assert.is(Buffer.from(res.kvs[0].key).toString(), 'foo');
  assert.is(res.header?.revision, 4);
  assert.equal(m.responseToJson(range(m.requestFromJson({ key: 'Zm9v' }))), {
    header: { revision: '4' },
    kvs: [{ key: 'Zm9v', mod_revision: '4', value: 'dg==' }],
    count: '1',
  });
  assert.equal(m.requestToJson(m.requestFromJson({ key: 'Zm9v', limit: 3 })), { key: 'Zm9v', limit: '3' });
  assert.is(m.responseFromJson({ count: '2' }).count, 2);
});

test.run();
