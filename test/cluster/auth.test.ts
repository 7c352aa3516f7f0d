// Auth on three members, etcd 3.4 and tetcd side by side: users, roles and tokens made through one member
// hold on the others (a simple token is registered on every member when its entry applies), and a
// permission change made through one member is in force on every other for a token minted before it.
// Then, on one tetcd member at etcd's default bcrypt cost: a flood of Authenticate calls (and of wrong
// passwords for one user) does not stall other clients' puts, and does not lock other users out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '../../tools/lib/grpcjs.js';
import { Auth, KV, Lease } from '../../src/proto/rpc.js';
import { runningChildren } from '../helpers/cleanup.js';
import { startCluster, startMember, type Member, type MemberKind } from '../helpers/member.js';
import { unary, unaryRaw } from '../helpers/grpc-unary.js';
import { oracleMissing } from '../helpers/oracle.js';

const b = (s: string): Uint8Array => Buffer.from(s);
const A = Auth.methods;

interface ClusterSide {
  members: Member[];
  clients: grpc.Client[];
  tokens: Map<string, string>;
}

/** Steps run on member `at` (0-2); `token` names a token learned by an earlier `login`. */
type Step = [name: string, run: (c: ClusterSide) => Promise<string>];

const on = (at: number, name: string, d: Parameters<typeof unary>[1], req: unknown, token?: string): Step => [
  `${name} (member ${at + 1})`,
  (c) => unary(c.clients[at]!, d, req, token === undefined ? undefined : c.tokens.get(token)),
];

const login = (at: number, user: string, password: string, as: string): Step => [
  `authenticate ${user} through member ${at + 1}`,
  async (c) => {
    const r = await unaryRaw(c.clients[at]!, A.Authenticate, { name: user, password });
    if (r.err) return `error ${r.err.code} ${r.err.details}`;
    c.tokens.set(as, (r.res as { token: string }).token);
    return 'ok';
  },
];

const STEPS: Step[] = [
  on(0, 'add root', A.UserAdd, { name: 'root', password: 'rootpw' }),
  on(1, 'add role root', A.RoleAdd, { name: 'root' }),
  on(2, 'grant root root', A.UserGrantRole, { user: 'root', role: 'root' }),
  on(0, 'add role r', A.RoleAdd, { name: 'r' }),
  on(1, 'r reads /a/', A.RoleGrantPermission, { name: 'r', perm: { permType: 0, key: b('/a/'), range_end: b('/a0') } }),
  on(2, 'add u', A.UserAdd, { name: 'u', password: 'upw' }),
  on(0, 'grant u r', A.UserGrantRole, { user: 'u', role: 'r' }),
  on(1, 'enable', A.AuthEnable, {}),
  login(2, 'root', 'rootpw', 'ROOT'),
  on(0, 'put /a/1 with the root token of member 3', KV.methods.Put, { key: b('/a/1'), value: b('v') }, 'ROOT'),
  login(1, 'u', 'upw', 'U'),
  on(2, 'range /a/1 with the u token of member 2', KV.methods.Range, { key: b('/a/1') }, 'U'),
  on(0, 'range /a/1 with the u token of member 2', KV.methods.Range, { key: b('/a/1') }, 'U'),
  on(0, 'revoke /a/ from r', A.RoleRevokePermission, { role: 'r', key: b('/a/'), range_end: b('/a0') }, 'ROOT'),
  on(1, 'range /a/1 with the token from before', KV.methods.Range, { key: b('/a/1') }, 'U'),
  on(2, 'range /a/1 with the token from before', KV.methods.Range, { key: b('/a/1') }, 'U'),
  on(2, 'r reads /a/1', A.RoleGrantPermission, { name: 'r', perm: { permType: 0, key: b('/a/1') } }, 'ROOT'),
  on(0, 'range /a/1 with the token from before', KV.methods.Range, { key: b('/a/1') }, 'U'),
  on(1, 'put /a/1 with the token from before', KV.methods.Put, { key: b('/a/1'), value: b('w') }, 'U'),
  on(2, 'delete u', A.UserDelete, { name: 'u' }, 'ROOT'),
  on(0, 'range /a/1 as the deleted user', KV.methods.Range, { key: b('/a/1') }, 'U'),
  on(1, 'user list', A.UserList, {}, 'ROOT'),
];

const sides = new Map<MemberKind, ClusterSide>();
const kinds: MemberKind[] = oracleMissing() === null ? ['etcd', 'tetcd'] : ['tetcd'];

test('start a 3-member etcd and a 3-member tetcd cluster', async () => {
  await Promise.all(
    kinds.map(async (kind) => {
      const members = await startCluster(kind, ['a1', 'a2', 'a3'], { extraArgs: ['--bcrypt-cost', '4'] });
      sides.set(kind, {
        members,
        clients: members.map((m) => new grpc.Client(`127.0.0.1:${m.clientPort}`, grpc.credentials.createInsecure())),
        tokens: new Map(),
      });
    }),
  );
});

for (const [name, run] of STEPS) {
  test(name, async () => {
    const out = new Map<MemberKind, string>();
    for (const kind of kinds) out.set(kind, await run(sides.get(kind)!));
    if (kinds.length === 2) assert.is(out.get('tetcd'), out.get('etcd'), name);
  });
}

test('the revoke held on every member: expectations written out, not only compared', async () => {
  const c = sides.get('tetcd')!;
  for (const cl of c.clients) {
    assert.match(await unary(cl, KV.methods.Range, { key: b('/a/2') }, c.tokens.get('ROOT')), /^ok /);
  }
});

test('an expired lease is revoked with auth on, its keys whatever their permissions (as etcd revokes: as root)', async () => {
  for (const kind of kinds) {
    const c = sides.get(kind)!;
    const root = c.tokens.get('ROOT');
    assert.match(await unary(c.clients[0]!, Lease.methods.LeaseGrant, { ID: 4242n, TTL: 2 }, root), /^ok/);
    assert.match(await unary(c.clients[1]!, KV.methods.Put, { key: b('/x/leased'), value: b('v'), lease: 4242n }, root), /^ok/);
    // The lease's key names: etcd 3.4.23 tells anyone (CVE-2023-32082); tetcd, as etcd 3.4.26, only who may read them all.
    const ttlKeys = await unary(c.clients[2]!, Lease.methods.LeaseTimeToLive, { ID: 4242n, keys: true });
    if (kind === 'tetcd') assert.is(ttlKeys, 'error 3 etcdserver: user name is empty');
    else assert.match(ttlKeys, /"keys":\["\/x\/leased"\]/, ttlKeys);
    const asRoot = await unary(c.clients[2]!, Lease.methods.LeaseTimeToLive, { ID: 4242n, keys: true }, root);
    assert.match(asRoot, /"keys":\["\/x\/leased"\]/, `${kind}: ${asRoot}`);
    assert.match(await unary(c.clients[2]!, Lease.methods.LeaseTimeToLive, { ID: 4242n }), /"TTL":/);
    const deadline = Date.now() + 15_000;
    let left = '';
    while (Date.now() < deadline) {
      left = await unary(c.clients[2]!, KV.methods.Range, { key: b('/x/leased') }, root);
      if (left.includes('"count":0')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(left, /"count":0/, `${kind}: the leased key outlived its lease: ${left}`);
  }
});

test('stop both clusters', async () => {
  for (const side of sides.values()) {
    for (const cl of side.clients) cl.close();
    await Promise.all(side.members.map((m) => m.stop()));
  }
  assert.is(runningChildren(), 0);
});

test('a member that catches up from a snapshot has the users, roles and auth switch of the others', async () => {
  const members = await startCluster('tetcd', ['s1', 's2', 's3'], {
    extraArgs: ['--bcrypt-cost', '4', '--snapshot-count', '50', '--snapshot-catchup-entries', '10'],
  });
  const clients = members.map((m) => new grpc.Client(`127.0.0.1:${m.clientPort}`, grpc.credentials.createInsecure()));
  try {
    await members[2]!.stop();
    clients[2]!.close();
    const c = clients[0]!;
    for (const [d, req] of [
      [A.UserAdd, { name: 'root', password: 'rootpw' }],
      [A.RoleAdd, { name: 'root' }],
      [A.UserGrantRole, { user: 'root', role: 'root' }],
      [A.RoleAdd, { name: 'r' }],
      [A.RoleGrantPermission, { name: 'r', perm: { permType: 0, key: b('/a/'), range_end: b('/a0') } }],
      [A.UserAdd, { name: 'u', password: 'upw' }],
      [A.UserGrantRole, { user: 'u', role: 'r' }],
      [A.AuthEnable, {}],
    ] as const)
      assert.match(await unary(c, d, req), /^ok/);
    const root = (await unaryRaw(c, A.Authenticate, { name: 'root', password: 'rootpw' })).res as { token: string };
    for (let i = 0; i < 150; i++) assert.match(await unary(c, KV.methods.Put, { key: b(`/a/${i}`), value: b('v') }, root.token), /^ok/);
    await members[2]!.start();
    const deadline = Date.now() + 20_000;
    while (!/applied snapshot from leader/.test(members[2]!.logs()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.match(members[2]!.logs(), /applied snapshot from leader/, 'the member did not catch up from a snapshot');
    // Applied, but its client port may open later (client processes start after the member).
    await members[2]!.waitReady(20_000);
    const m3 = new grpc.Client(`127.0.0.1:${members[2]!.clientPort}`, grpc.credentials.createInsecure());
    clients[2] = m3;
    assert.is(await unary(m3, KV.methods.Range, { key: b('/a/1'), serializable: true }), 'error 3 etcdserver: user name is empty');
    const u = await unaryRaw(m3, A.Authenticate, { name: 'u', password: 'upw' });
    assert.ok(u.err === undefined, u.err?.details);
    const token = (u.res as { token: string }).token;
    assert.match(await unary(m3, KV.methods.Range, { key: b('/a/149'), serializable: true }, token), /"count":1/);
    assert.is(await unary(m3, KV.methods.Range, { key: b('/b') }, token), 'error 7 etcdserver: permission denied');
    assert.is(await unary(m3, A.UserList, {}, token), 'error 7 etcdserver: permission denied');
  } finally {
    for (const cl of clients) cl.close();
    await Promise.all(members.map((m) => m.stop()));
  }
});

/** Flood sizes: each correct Authenticate costs one bcrypt compare at cost 10 (tens of ms of CPU). */
const FLOOD_LOGINS = 40;
const FLOOD_WRONG = 40;
/** A put may take this long while the flood runs (the pool keeps bcrypt off the event loop; inline, 40 compares would hold it for seconds). */
const PUT_LATENCY_BOUND_MS = 1000;
/** Another user's login during the flood: a few hashes' time, not the flood's (80 hashes ≈ 3-7 s on 2 threads here). */
const OTHER_LOGIN_BOUND_MS = 1000;
/** Time for the flood's requests to reach the member before the other user logs in. */
const FLOOD_SETTLE_MS = 500;

test('a flood of Authenticate calls does not stall puts, and wrong passwords for one user do not lock out another', async () => {
  const m = await startMember('tetcd', { name: 'f1' });
  const cl = () => new grpc.Client(`127.0.0.1:${m.clientPort}`, grpc.credentials.createInsecure());
  const admin = cl();
  const flooders = [cl(), cl(), cl(), cl()];
  try {
    for (const [d, req] of [
      [A.UserAdd, { name: 'root', password: 'rootpw' }],
      [A.RoleAdd, { name: 'root' }],
      [A.UserGrantRole, { user: 'root', role: 'root' }],
      [A.UserAdd, { name: 'victim', password: 'vpw' }],
      [A.UserAdd, { name: 'other', password: 'opw' }],
      [A.AuthEnable, {}],
    ] as const)
      assert.match(await unary(admin, d, req), /^ok/);
    const root = await unaryRaw(admin, A.Authenticate, { name: 'root', password: 'rootpw' });
    const token = (root.res as { token: string }).token;

    let flooding = true;
    const latencies: number[] = [];
    const putter = (async () => {
      for (let i = 0; flooding; i++) {
        const t0 = performance.now();
        const r = await unaryRaw(admin, KV.methods.Put, { key: b(`k${i % 10}`), value: b('v') }, token);
        latencies.push(performance.now() - t0);
        assert.ok(r.err === undefined, r.err?.details);
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    const logins = Array.from({ length: FLOOD_LOGINS }, (_, i) =>
      unaryRaw(flooders[i % 4]!, A.Authenticate, { name: 'root', password: 'rootpw' }),
    );
    const wrong = Array.from({ length: FLOOD_WRONG }, (_, i) =>
      unaryRaw(flooders[i % 4]!, A.Authenticate, { name: 'victim', password: 'nope' }),
    );
    // Another user logs in while the victim is being hammered: one user's guesses hold at most two of the
    // pool's threads, so the other's check does not queue behind them.
    await new Promise((r) => setTimeout(r, FLOOD_SETTLE_MS));
    const t1 = performance.now();
    const other = await unaryRaw(admin, A.Authenticate, { name: 'other', password: 'opw' });
    const otherMs = performance.now() - t1;
    if (process.env.TETCD_AUTH_FLOOD_VERBOSE === '1') process.stdout.write(`\nanother user's login: ${otherMs.toFixed(0)} ms\n`);
    const wrongOut = await Promise.all(wrong);
    const loginOut = await Promise.all(logins);
    flooding = false;
    await putter;

    assert.ok(other.err === undefined, `the other user was refused: ${other.err?.details}`);
    assert.ok(otherMs < OTHER_LOGIN_BOUND_MS, `the other user's login took ${otherMs.toFixed(0)} ms during the flood`);
    for (const r of loginOut) assert.ok(r.err === undefined || r.err.details === 'etcdserver: too many requests', r.err?.details);
    assert.ok(loginOut.filter((r) => r.err === undefined).length > 0);
    for (const r of wrongOut) assert.is(r.err?.details, 'etcdserver: authentication failed, invalid user ID or password');
    // The victim is slowed down, not locked out: the right password works again once the delay passed.
    let victim = await unaryRaw(admin, A.Authenticate, { name: 'victim', password: 'vpw' });
    for (const deadline = Date.now() + 6000; victim.err !== undefined && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
      victim = await unaryRaw(admin, A.Authenticate, { name: 'victim', password: 'vpw' });
    }
    assert.ok(victim.err === undefined, `the victim stays locked out: ${victim.err?.details}`);
    const worst = Math.max(...latencies);
    assert.ok(latencies.length >= 5, `only ${latencies.length} puts ran`);
    assert.ok(worst < PUT_LATENCY_BOUND_MS, `a put took ${worst.toFixed(0)} ms during the flood (${latencies.length} puts)`);
    // The password never reaches the member's log.
    assert.not.ok(m.logs().includes('rootpw'));
    assert.not.ok(m.logs().includes('nope'));

    // Users and auth survive a restart; tokens (in memory, as etcd's) do not.
    for (const c of [admin, ...flooders]) c.close();
    await m.stop();
    await m.start();
    const again = cl();
    try {
      assert.is(await unary(again, KV.methods.Range, { key: b('k1') }, token), 'error 16 etcdserver: invalid auth token');
      assert.is(await unary(again, KV.methods.Range, { key: b('k1') }), 'error 3 etcdserver: user name is empty');
      const r = await unaryRaw(again, A.Authenticate, { name: 'other', password: 'opw' });
      assert.ok(r.err === undefined, r.err?.details);
      const rootAgain = await unaryRaw(again, A.Authenticate, { name: 'root', password: 'rootpw' });
      assert.match(
        await unary(again, A.UserList, {}, (rootAgain.res as { token: string }).token),
        /^ok \{"users":\["other","root","victim"\]\}$/,
      );
    } finally {
      again.close();
    }
  } finally {
    for (const c of [admin, ...flooders]) c.close();
    await m.stop();
  }
});

test.run();
