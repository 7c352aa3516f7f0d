// Auth at the gRPC level and through the `etcd3` npm client, against a fresh etcd 3.4 and a fresh tetcd,
// compared: the errors etcdctl hides (root user without the root role, Authenticate while auth is off),
// token checks (malformed, unknown, after a password change), watch creation refused with etcd's cancel
// reasons, and what a token minted before a permission change is worth afterwards — with simple tokens
// (checked against the new state) and with JWTs (etcd 3.4 refuses them: "revision of auth store is old").
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '../../tools/lib/grpcjs.js';
import { Auth, KV, type WatchResponse } from '../../src/proto/rpc.js';
import { runningChildren, tempDir } from '../helpers/cleanup.js';
import { startMember, type Member } from '../helpers/member.js';
import { compatTarget, oracleGate } from '../helpers/oracle.js';
import { outcome } from '../helpers/outcome.js';
import { RawWatchStream } from '../helpers/watch-check.js';
import { unary, unaryRaw, type UnaryDesc } from '../helpers/grpc-unary.js';

const t = oracleGate(test);
const BCRYPT = ['--bcrypt-cost', '4'];

/** One side: its member, a gRPC client and the tokens the steps learned. */
interface Side {
  member: Member;
  client: grpc.Client;
  tokens: Map<string, string>;
}

function call(side: Side, d: UnaryDesc, req: unknown, token?: string): Promise<string> {
  return unary(side.client, d, req, token === undefined ? undefined : (side.tokens.get(token) ?? token));
}

const b = (s: string): Uint8Array => Buffer.from(s);

/** A step: what it does on one side, and its outcome as one comparable line. */
type Step = [name: string, run: (s: Side) => Promise<string>];

/** Authenticates and remembers the token under `as`; the line shows only whether it looks like the mode's token. */
function login(name: string, password: string, as: string, shape: RegExp): Step {
  return [
    `authenticate ${name} as ${as}`,
    async (s) => {
      const r = await unaryRaw(s.client, Auth.methods.Authenticate, { name, password });
      if (r.err) return `error ${r.err.code} ${r.err.details}`;
      const token = (r.res as { token: string }).token;
      s.tokens.set(as, token);
      return `ok token ${shape.test(token) ? 'of the expected shape' : `of an unexpected shape: ${token}`}`;
    },
  ];
}

/** Creates a watch with the token and reports its first response (created, canceled, reason). */
function watch(key: string, rangeEnd: string, token?: string): Step {
  return [
    `watch [${key}, ${rangeEnd}) with ${token ?? 'no token'}`,
    async (s) => {
      const md = new grpc.Metadata();
      if (token !== undefined) md.set('token', s.tokens.get(token) ?? token);
      const w = new RawWatchStream(`127.0.0.1:${s.member.clientPort}`, md);
      try {
        w.send({ create_request: { key: b(key), range_end: b(rangeEnd) } });
        const deadline = Date.now() + 10_000;
        while (w.responses.length === 0 && w.ended === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        const r: WatchResponse | undefined = w.responses[0];
        if (r === undefined) return `no response (${w.ended ?? 'timeout'})`;
        return `created=${r.created} canceled=${r.canceled} id=${r.watch_id} reason=${r.cancel_reason}`;
      } finally {
        w.close();
      }
    },
  ];
}

function steps(shape: RegExp): Step[] {
  const A = Auth.methods;
  return [
    ['enable without users', (s) => call(s, A.AuthEnable, {})],
    ['add root', (s) => call(s, A.UserAdd, { name: 'root', password: 'rootpw' })],
    ['enable: root has no root role', (s) => call(s, A.AuthEnable, {})],
    ['add a user with no name', (s) => call(s, A.UserAdd, { name: '', password: 'x' })],
    ['add a role with no name', (s) => call(s, A.RoleAdd, { name: '' })],
    ['authenticate while auth is off', (s) => call(s, A.Authenticate, { name: 'root', password: 'rootpw' })],
    ['grant root the root role (no such role yet)', (s) => call(s, A.UserGrantRole, { user: 'root', role: 'root' })],
    ['role get root', (s) => call(s, A.RoleGet, { role: 'root' })],
    ['add role r', (s) => call(s, A.RoleAdd, { name: 'r' })],
    ['r may read /a/*', (s) => call(s, A.RoleGrantPermission, { name: 'r', perm: { permType: 0, key: b('/a/'), range_end: b('/a0') } })],
    [
      'r may read /a/* (again, updated in place)',
      (s) => call(s, A.RoleGrantPermission, { name: 'r', perm: { permType: 2, key: b('/a/'), range_end: b('/a0') } }),
    ],
    ['role get r', (s) => call(s, A.RoleGet, { role: 'r' })],
    ['add u', (s) => call(s, A.UserAdd, { name: 'u', password: 'upw' })],
    ['add c (no password)', (s) => call(s, A.UserAdd, { name: 'c', password: 'ignored', options: { no_password: true } })],
    ['grant u r', (s) => call(s, A.UserGrantRole, { user: 'u', role: 'r' })],
    ['user list', (s) => call(s, A.UserList, {})],
    ['enable', (s) => call(s, A.AuthEnable, {})],
    ['range without a token', (s) => call(s, KV.methods.Range, { key: b('/a/1') })],
    login('root', 'rootpw', 'ROOT', shape),
    login('u', 'upw', 'U', shape),
    ['authenticate u with a wrong password', (s) => call(s, A.Authenticate, { name: 'u', password: 'no' })],
    ['authenticate c (no password user)', (s) => call(s, A.Authenticate, { name: 'c', password: 'ignored' })],
    ['authenticate nobody', (s) => call(s, A.Authenticate, { name: 'nobody', password: 'x' })],
    ['put /a/1 as root', (s) => call(s, KV.methods.Put, { key: b('/a/1'), value: b('v') }, 'ROOT')],
    ['range /a/1 as u', (s) => call(s, KV.methods.Range, { key: b('/a/1') }, 'U')],
    ['range /b as u', (s) => call(s, KV.methods.Range, { key: b('/b') }, 'U')],
    ['range with a malformed token', (s) => call(s, KV.methods.Range, { key: b('/a/1') }, 'garbage')],
    ['range with an unknown token', (s) => call(s, KV.methods.Range, { key: b('/a/1') }, 'abcdefghijklmnop.1')],
    ['put with an unknown token', (s) => call(s, KV.methods.Put, { key: b('/a/1'), value: b('x') }, 'abcdefghijklmnop.1')],
    watch('/a/', '/a0', 'U'),
    watch('/b', '', 'U'),
    watch('/a/1', '', undefined),
    watch('/a/1', '', 'abcdefghijklmnop.1'),
    ['user get u as u', (s) => call(s, A.UserGet, { name: 'u' }, 'U')],
    ['role get r as u', (s) => call(s, A.RoleGet, { role: 'r' }, 'U')],
    ['role get root as u', (s) => call(s, A.RoleGet, { role: 'root' }, 'U')],
    // Root gains the role, then a permission change: tokens minted before it.
    ['grant root root (with the token, as root)', (s) => call(s, A.UserGrantRole, { user: 'root', role: 'root' }, 'ROOT')],
    ['r may read /b too', (s) => call(s, A.RoleGrantPermission, { name: 'r', perm: { permType: 0, key: b('/b') } }, 'ROOT')],
    ['range /b with the token u had before', (s) => call(s, KV.methods.Range, { key: b('/b') }, 'U')],
    ['range /a/1 with the token u had before', (s) => call(s, KV.methods.Range, { key: b('/a/1') }, 'U')],
    login('u', 'upw', 'U2', shape),
    ['range /b with a new token', (s) => call(s, KV.methods.Range, { key: b('/b') }, 'U2')],
    watch('/b', '', 'U2'),
    ['u changes password (as root)', (s) => call(s, A.UserChangePassword, { name: 'u', password: 'upw2' }, 'ROOT')],
    ['range /b with the token from before the password change', (s) => call(s, KV.methods.Range, { key: b('/b') }, 'U2')],
    ['authenticate u with the old password', (s) => call(s, A.Authenticate, { name: 'u', password: 'upw' })],
    login('u', 'upw2', 'U3', shape),
    ['revoke r from u', (s) => call(s, A.UserRevokeRole, { name: 'u', role: 'r' }, 'ROOT')],
    ['range /a/1 with the newest token of u', (s) => call(s, KV.methods.Range, { key: b('/a/1') }, 'U3')],
    ['delete u', (s) => call(s, A.UserDelete, { name: 'u' }, 'ROOT')],
    ['range /a/1 as the deleted u', (s) => call(s, KV.methods.Range, { key: b('/a/1') }, 'U3')],
    ['disable as root', (s) => call(s, A.AuthDisable, {}, 'ROOT')],
    ['range with the old root token after disable', (s) => call(s, KV.methods.Range, { key: b('/a/1') }, 'ROOT')],
    ['range without a token after disable', (s) => call(s, KV.methods.Range, { key: b('/a/1') })],
  ];
}

/** Registers one comparison: both kinds started with `args`, every step run on both and compared. */
function scenario(label: string, args: () => string[], shape: RegExp): void {
  const sides: Side[] = [];
  t(`${label}: start etcd and ${compatTarget()}`, async () => {
    const extra = [...BCRYPT, ...args()];
    const ms = await Promise.all([startMember('etcd', { extraArgs: extra }), startMember(compatTarget(), { extraArgs: extra })]);
    for (const m of ms)
      sides.push({ member: m, client: new grpc.Client(`127.0.0.1:${m.clientPort}`, grpc.credentials.createInsecure()), tokens: new Map() });
  });
  for (const [name, run] of steps(shape)) {
    t(`${label}: ${name}`, async () => {
      const [a, z] = [await run(sides[0]!), await run(sides[1]!)];
      if (process.env.TETCD_COMPAT_VERBOSE === '1') process.stdout.write(`\n# ${label}: ${name}\n  ${a}\n`);
      assert.is(z, a, `${name}\n  etcd:   ${a}\n  target: ${z}`);
    });
  }
  t(`${label}: stop`, async () => {
    for (const s of sides) s.client.close();
    await Promise.all(sides.map((s) => s.member.stop()));
  });
}

scenario('simple tokens', () => [], /^[A-Za-z]{16}\.\d+$/);

let keyDir = '';
scenario(
  'JWT (RS256)',
  () => {
    keyDir = tempDir('tetcd-jwt-');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(keyDir, 'priv.pem'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
    writeFileSync(join(keyDir, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    return ['--auth-token', `jwt,pub-key=${join(keyDir, 'pub.pem')},priv-key=${join(keyDir, 'priv.pem')},sign-method=RS256,ttl=10m`];
  },
  /^[\w-]+\.[\w-]+\.[\w-]+$/,
);

// The etcd3 npm client logs in with a password and retries with a new token when its own is refused.
const clientSides: Array<{ member: Member; root: Etcd3; user: Etcd3 }> = [];
t('etcd3 client: start etcd and the target, add root and a prefix user, enable auth', async () => {
  const ms = await Promise.all([startMember('etcd', { extraArgs: BCRYPT }), startMember(compatTarget(), { extraArgs: BCRYPT })]);
  for (const m of ms) {
    const hosts = `127.0.0.1:${m.clientPort}`;
    const admin = new Etcd3({ hosts });
    await admin.user('root').create('rootpw');
    await admin.role('root').create();
    await admin.user('root').addRole('root');
    await admin.role('pfx').create();
    await admin.role('pfx').grant({ permission: 'Readwrite', range: admin.range({ prefix: 'app/' }) });
    await admin.user('app').create('apppw');
    await admin.user('app').addRole('pfx');
    await admin.auth.authEnable();
    admin.close();
    clientSides.push({
      member: m,
      root: new Etcd3({ hosts, auth: { username: 'root', password: 'rootpw' } }),
      user: new Etcd3({ hosts, auth: { username: 'app', password: 'apppw' } }),
    });
  }
});

const CLIENT_STEPS: Array<[string, (c: { root: Etcd3; user: Etcd3 }) => Promise<unknown>]> = [
  [
    'user puts app/1',
    (c) =>
      c.user
        .put('app/1')
        .value('x')
        .exec()
        .then(() => 'put'),
  ],
  ['user gets app/ prefix', (c) => c.user.getAll().prefix('app/').strings()],
  ['user puts other', (c) => c.user.put('other').value('x').exec()],
  ['user reads everything', (c) => c.user.getAll().strings()],
  [
    'user deletes app/1',
    (c) =>
      c.user
        .delete()
        .key('app/1')
        .exec()
        .then((r) => r.deleted),
  ],
  ['root reads everything', (c) => c.root.getAll().strings()],
  ['user lists users', (c) => c.user.getUsers()],
  ['root lists roles', async (c) => (await c.root.getRoles()).map((r) => r.name)],
];

for (const [name, run] of CLIENT_STEPS) {
  t(`etcd3 client: ${name}`, async () => {
    const [a, z] = [await outcome(clientSides[0]!, run), await outcome(clientSides[1]!, run)];
    assert.is(z, a);
  });
}

t('etcd3 client: a wrong password', async () => {
  const out: string[] = [];
  for (const s of clientSides) {
    const c = new Etcd3({ hosts: `127.0.0.1:${s.member.clientPort}`, auth: { username: 'app', password: 'nope' } });
    out.push(await outcome(c, (x) => x.get('app/1').string()));
    c.close();
  }
  assert.is(out[1], out[0]);
});

t('stop the etcd3 client members', async () => {
  for (const s of clientSides) {
    s.root.close();
    s.user.close();
  }
  await Promise.all(clientSides.map((s) => s.member.stop()));
  assert.is(runningChildren(), 0);
});

test.run();
