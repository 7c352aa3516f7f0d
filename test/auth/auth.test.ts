// The auth pieces alone: etcd's permission semantics (range_perm_cache over adt's affine intervals), the
// store's rules, simple-token TTL and bounds, the JWT cache bound, the failed-login limiter, the hashing
// pool's queue bound, and who a call is (token, else with --client-cert-auth the certificate's CN).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserPerms } from '../../src/auth/perms.js';
import { AuthStore, type MetaStore } from '../../src/auth/store.js';
import { SimpleTokens, JwtTokens } from '../../src/auth/tokens.js';
import { LoginLimiter, UserSlots } from '../../src/auth/login_limiter.js';
import { HashPool } from '../../src/auth/hash_pool.js';
import { MemberAuth } from '../../src/server/member_auth.js';
import { FixedContext } from '../../src/api/context.js';
import { silentLogger } from '../../src/log.js';
import { Permission_Type } from '../../src/proto/auth.js';
import { generateKeyPairSync } from 'node:crypto';
import bcrypt from 'bcryptjs';
import run, { bcryptImpl } from '../../src/auth/hash_worker.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tokenProviderFor } from '../../src/server/auth_tokens.js';
import { watchAuthGate, WATCH_REQUESTS_HELD_MAX, type RpcBidiStream } from '../../src/api/rpc.js';
import type { MemberApi } from '../../src/server/member_api.js';
import type { WatchStream } from '../../src/watch/index.js';
import {
  decodeTxnRequest,
  decodeWatchRequest,
  encodeTxnRequest,
  encodeWatchRequest,
  type WatchRequest,
  type WatchResponseInit,
} from '../../src/proto/rpc.js';
import { checkTxnAuth } from '../../src/auth/checks.js';

const b = (s: string): Uint8Array => Buffer.from(s);
const EMPTY = new Uint8Array(0);
const ZERO = Uint8Array.of(0);

function perm(type: number, key: string, end?: Uint8Array | string) {
  return { permType: type, key: b(key), range_end: end === undefined ? EMPTY : typeof end === 'string' ? b(end) : end };
}

test('a key permission covers the key alone; a range covers sub-ranges and keys inside it', () => {
  const u = UserPerms.of([perm(Permission_Type.READ, 'k1'), perm(Permission_Type.READWRITE, 'r1', 'r5')]);
  assert.ok(u.permitted(b('k1'), undefined, Permission_Type.READ));
  assert.not.ok(u.permitted(b('k1'), undefined, Permission_Type.WRITE));
  assert.not.ok(u.permitted(b('k10'), undefined, Permission_Type.READ));
  assert.ok(u.permitted(b('r2'), undefined, Permission_Type.WRITE));
  assert.ok(u.permitted(b('r1'), b('r5'), Permission_Type.READ));
  assert.not.ok(u.permitted(b('r1'), b('r6'), Permission_Type.READ));
  assert.not.ok(u.permitted(b('r0'), b('r3'), Permission_Type.READ));
});

test('ranges merge when adjacent or overlapping, not across a gap; "\\0" ends are open', () => {
  const u = UserPerms.of([
    perm(Permission_Type.READ, 'a', 'c'),
    perm(Permission_Type.READ, 'c', 'e'),
    perm(Permission_Type.READ, 'f', 'h'),
  ]);
  assert.ok(u.permitted(b('a'), b('e'), Permission_Type.READ));
  assert.not.ok(u.permitted(b('a'), b('g'), Permission_Type.READ));
  const open = UserPerms.of([perm(Permission_Type.WRITE, 'z', ZERO)]);
  assert.ok(open.permitted(b('zzz'), undefined, Permission_Type.WRITE));
  assert.ok(open.permitted(b('z'), ZERO, Permission_Type.WRITE));
  assert.not.ok(open.permitted(b('y'), ZERO, Permission_Type.WRITE));
  // An empty key sorts after every other (adt's affine bytes): a permission from "" grants nothing below it.
  const fromEmpty = UserPerms.of([perm(Permission_Type.READ, '', ZERO)]);
  assert.not.ok(fromEmpty.permitted(ZERO, ZERO, Permission_Type.READ));
});

/** An in-memory MetaStore. */
function memStore(): MetaStore & { data: Map<string, Uint8Array> } {
  const data = new Map<string, Uint8Array>();
  const k = (bucket: string, key: Uint8Array): string => `${bucket}\0${Buffer.from(key).toString('hex')}`;
  return {
    data,
    metaGet: (bucket, key) => data.get(k(bucket, key)),
    metaPut: (bucket, key, v) => void data.set(k(bucket, key), v),
    metaDelete: (bucket, key) => void data.delete(k(bucket, key)),
    metaScan: (bucket) =>
      [...data.entries()]
        .filter(([x]) => x.startsWith(`${bucket}\0`))
        .sort(([x], [y]) => (x < y ? -1 : 1))
        .map(([x, v]) => [Buffer.from(x.slice(bucket.length + 1), 'hex'), v] as [Uint8Array, Uint8Array]),
  };
}

test('the store keeps hashes only, survives a reload, and raises its revision on every change', () => {
  const ms = memStore();
  const s = AuthStore.load(ms);
  assert.is(s.revision, 1);
  s.userAdd('root', b('$2b$04$hash'), false, ms);
  s.roleAdd('root', ms);
  s.userGrantRole('root', 'root', ms);
  s.userGrantRole('root', 'root', ms); // already granted: no change
  assert.is(s.revision, 4);
  s.authEnable(ms);
  assert.is(s.revision, 4);
  for (const v of ms.data.values()) assert.not.ok(Buffer.from(v).toString().includes('rootpw'));
  const again = AuthStore.load(ms);
  assert.ok(again.enabled);
  assert.is(again.revision, 4);
  assert.equal(again.userGet('root'), ['root']);
  assert.throws(() => again.userDelete('root', ms), /invalid auth management/);
  again.authDisable(ms);
  assert.is(again.revision, 5);
});

test('a txn nested in a txn is checked like a top-level one (etcd 3.4.23 let any caller through it)', () => {
  const ms = memStore();
  const s = AuthStore.load(ms);
  s.userAdd('root', b('h'), false, ms);
  s.userGrantRole('root', 'root', ms);
  s.userAdd('ro', b('h'), false, ms);
  s.roleAdd('r', ms);
  s.roleGrantPermission('r', perm(Permission_Type.READ, 'a'), ms);
  s.userGrantRole('ro', 'r', ms);
  s.authEnable(ms);
  const ro = { username: 'ro', revision: s.revision };
  const nested = (op: object) => decodeTxnRequest(encodeTxnRequest({ success: [{ request_txn: { success: [op] } }] }));
  checkTxnAuth(s, ro, nested({ request_range: { key: b('a') } }));
  assert.throws(() => checkTxnAuth(s, ro, nested({ request_put: { key: b('secret'), value: b('x') } })), /permission denied/);
  assert.throws(() => checkTxnAuth(s, undefined, nested({ request_put: { key: b('secret'), value: b('x') } })), /user name is empty/);
  checkTxnAuth(s, { username: 'root', revision: s.revision }, nested({ request_put: { key: b('secret'), value: b('x') } }));
});

test('a simple token lives --auth-token-ttl unused, each use restarts it; the table is bounded', () => {
  let now = 0;
  const t = new SimpleTokens({ ttlMs: 1000, now: () => now, tokensMax: 3 });
  t.enable();
  const a = t.assign('u', 'aaaaaaaaaaaaaaaa', 10);
  assert.is(a, 'aaaaaaaaaaaaaaaa.10');
  assert.is(t.indexOf(a), 10);
  assert.is(t.indexOf('nodot'), undefined);
  now = 900;
  assert.equal(t.info(a), { username: 'u' });
  now = 1800;
  assert.equal(t.info(a), { username: 'u' });
  now = 2900;
  t.sweep();
  assert.is(t.info(a), undefined);
  for (let i = 0; i < 5; i++) t.assign('u', 'p', i);
  assert.is(t.size, 3);
  assert.is(t.info('p.0'), undefined);
  assert.ok(t.info('p.4'));
  t.invalidateUser('u');
  assert.is(t.size, 0);
  assert.match(t.genPrefix(), /^[A-Za-z]{16}$/);
});

test('verified JWTs are cached up to a bound, and an expired one is not served from the cache', async () => {
  let now = Date.now();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const j = new JwtTokens({ signMethod: 'ES256', privateKey, publicKey: undefined, ttlMs: 60_000, now: () => now, cacheMax: 2 });
  const tokens = await Promise.all(['a', 'b', 'c'].map((u) => j.sign(u, 7)));
  for (const tk of tokens)
    assert.equal(await j.verify(tk), { username: tk === tokens[0] ? 'a' : tk === tokens[1] ? 'b' : 'c', revision: 7 });
  assert.is(j.cacheSize, 2);
  assert.is(j.cached(tokens[0]!), undefined);
  assert.ok(j.cached(tokens[2]!));
  assert.is(await j.verify(`${tokens[0]!}x`), undefined);
  now += 120_000;
  assert.is(j.cached(tokens[2]!), undefined);
  assert.is(await j.verify(tokens[2]!), undefined);
});

test('--auth-token jwt: every sign method etcd knows, plus EdDSA; keys from files; bad options refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tetcd-jwt-'));
  try {
    const write = (name: string, pem: string | Buffer): string => {
      const f = join(dir, name);
      writeFileSync(f, pem);
      return f;
    };
    const pair = (type: 'rsa' | 'ec' | 'ed25519', curve?: string) => {
      const k =
        type === 'rsa'
          ? generateKeyPairSync('rsa', { modulusLength: 2048 })
          : type === 'ec'
            ? generateKeyPairSync('ec', { namedCurve: curve ?? 'P-256' })
            : generateKeyPairSync('ed25519');
      return {
        priv: write(`${type}${curve ?? ''}.key`, k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
        pub: write(`${type}${curve ?? ''}.pub`, k.publicKey.export({ type: 'spki', format: 'pem' }) as string),
      };
    };
    const rsa = pair('rsa');
    const cases: Array<[string, { priv: string; pub?: string }]> = [
      ['RS384', rsa],
      ['PS256', rsa],
      ['ES384', pair('ec', 'P-384')],
      ['EdDSA', pair('ed25519')],
      ['HS256', { priv: write('hmac', 'a shared secret of enough length for HS256') }],
    ];
    for (const [method, k] of cases) {
      const opt = `jwt,priv-key=${k.priv}${k.pub ? `,pub-key=${k.pub}` : ''},sign-method=${method},ttl=1m`;
      const p = tokenProviderFor(opt, 300, Date.now) as JwtTokens;
      const token = await p.sign('alice', 3);
      assert.equal(await p.verify(token), { username: 'alice', revision: 3 }, method);
      assert.equal(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()), { alg: method, typ: 'JWT' });
    }
    // A verify-only member (public key alone) accepts tokens and cannot issue them.
    const verifyOnly = tokenProviderFor(`jwt,pub-key=${rsa.pub},sign-method=RS384`, 300, Date.now) as JwtTokens;
    const signer = tokenProviderFor(`jwt,priv-key=${rsa.priv},sign-method=RS384`, 300, Date.now) as JwtTokens;
    assert.equal(await verifyOnly.verify(await signer.sign('bob', 1)), { username: 'bob', revision: 1 });
    let refused = '';
    await verifyOnly.sign('bob', 1).catch((e: Error) => (refused = e.message));
    assert.is(refused, 'auth: token signing attempted with verify-only key');
    // A token of another method or key is not valid.
    const other = tokenProviderFor(`jwt,priv-key=${rsa.priv},sign-method=RS256`, 300, Date.now) as JwtTokens;
    assert.is(await signer.verify(await other.sign('eve', 1)), undefined);
    for (const bad of [
      'jwt,sign-method=RS256',
      'jwt,priv-key=/nonexistent,sign-method=RS256',
      'jwt,priv-key=/nonexistent,sign-method=XX256',
      'jwt,ttl',
      'nosuch',
      'simple,a=1,a=2',
    ])
      assert.throws(() => tokenProviderFor(bad, 300, Date.now), /auth: invalid auth options/, bad);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('failed logins slow one user down, not another; a success resets; the table is bounded', () => {
  let now = 0;
  const l = new LoginLimiter({ freeFailures: 2, baseDelayMs: 100, maxDelayMs: 400, usersMax: 3, now: () => now });
  l.failed('a');
  l.failed('a');
  assert.ok(l.allowed('a'));
  l.failed('a');
  assert.not.ok(l.allowed('a'));
  assert.ok(l.allowed('b'));
  now = 100;
  assert.ok(l.allowed('a'));
  l.failed('a');
  now = 250;
  assert.not.ok(l.allowed('a'));
  now = 300;
  assert.ok(l.allowed('a'));
  l.succeeded('a');
  l.failed('a');
  assert.ok(l.allowed('a'));
  for (const u of ['x', 'y', 'z', 'w']) l.failed(u);
  assert.is(l.size, 3);
});

test("one user's password checks run two at a time; more wait in that user's bounded queue", async () => {
  const slots = new UserSlots(2, 2, () => new Error('etcdserver: too many requests'));
  const order: string[] = [];
  await slots.acquire('a');
  await slots.acquire('a');
  const w1 = slots.acquire('a').then(() => order.push('a3'));
  const w2 = slots.acquire('a').then(() => order.push('a4'));
  let refused = '';
  await slots.acquire('a').catch((e: Error) => (refused = e.message));
  assert.is(refused, 'etcdserver: too many requests');
  await slots.acquire('b'); // another user is not held up
  slots.release('a');
  await w1;
  assert.equal(order, ['a3']);
  slots.release('a');
  await w2;
  assert.equal(order, ['a3', 'a4']);
  slots.release('a');
  slots.release('a');
  slots.release('b');
  assert.is(slots.size, 0);
});

const GO_HASHES: ReadonlyArray<[string, string]> = [
  ['pässwörd', '$2a$04$j.xT3.ZssnQkFPdqluoG/.nKRls7w7facwVoMDNbNnW3ogmqlWRzm'],
  ['plain', '$2a$04$eygrnwFpJv1s4Nl4/58fueLLjYOndTZ.Rs0ZF1OckL9uYG05Fdrj.'],
  ['ÿÿÿÿ€€', '$2a$04$3RtAe/8fV.0VXzNY3A6ODO2EpMOYJ9YHEL9tHUYCp1bG5oBZlmdHq'],
];

test("the addon's libcrypt bcrypt and bcryptjs read each other's hashes, $2a$ (etcd's Go) and $2b$ alike", () => {
  assert.is(bcryptImpl(), 'libcrypt');
  const native = run({ op: 'hash', password: 'pässwörd', cost: 4 }) as string;
  assert.match(native, /^\$2b\$04\$/);
  assert.ok(bcrypt.compareSync('pässwörd', native));
  assert.not.ok(bcrypt.compareSync('passwörd', native));
  // Hashes etcd 3.4 stores (golang.org/x/crypto/bcrypt, cost 4), incl. 8-bit passwords: both read them.
  for (const [pw, h] of GO_HASHES) {
    assert.ok(run({ op: 'compare', password: pw, hash: h }), pw);
    assert.ok(bcrypt.compareSync(pw, h), pw);
    assert.not.ok(run({ op: 'compare', password: `${pw}!`, hash: h }), pw);
  }
  assert.not.ok(run({ op: 'compare', password: '', hash: '' }));
  assert.not.ok(run({ op: 'compare', password: 'x', hash: 'not a hash' }));
});

test('the hashing pool refuses work past its queue bound with etcd\'s "too many requests"', async () => {
  const pool = new HashPool({ threads: 1, queueMax: 2 });
  try {
    const ok = [pool.hash('p', 8), pool.hash('q', 8)];
    let refused = '';
    await pool.compare('p', 'x').catch((e: Error) => {
      refused = e.message;
    });
    assert.is(refused, 'etcdserver: too many requests');
    const [h] = await Promise.all(ok);
    assert.ok(await pool.compare('p', h!));
    assert.not.ok(await pool.compare('q', h!));
    assert.is(pool.pending, 0);
  } finally {
    await pool.close();
  }
});

function memberAuth(clientCertAuth: boolean): MemberAuth {
  const ms = memStore();
  const store = AuthStore.load(ms);
  const tokens = new SimpleTokens({ ttlMs: 60_000, now: Date.now });
  tokens.enable();
  tokens.assign('tokenuser', 'abcdefghijklmnop', 1);
  return new MemberAuth({
    store,
    tokens,
    hasher: new HashPool({ threads: 1, queueMax: 1 }),
    limiter: new LoginLimiter({ freeFailures: 5, baseDelayMs: 100, maxDelayMs: 1000, usersMax: 10, now: Date.now }),
    bcryptCost: 4,
    clientCertAuth,
    appliedIndex: () => 1,
    waitApplied: async () => false,
    linearizableRead: async () => {},
    propose: async () => ({ response: {} }),
    log: silentLogger,
    requestTimeoutMs: 100,
  });
}

test('with --client-cert-auth the certificate CN is the user of a call without a token; a token wins', async () => {
  const on = memberAuth(true);
  assert.equal(await on.identify(new FixedContext({ certCommonName: 'alice' })), { username: 'alice', revision: 1 });
  assert.equal(await on.identify(new FixedContext({ certCommonName: 'alice', token: 'abcdefghijklmnop.1' })), {
    username: 'tokenuser',
    revision: 1,
  });
  assert.is(await on.identify(new FixedContext({})), undefined);
  const off = memberAuth(false);
  assert.is(await off.identify(new FixedContext({ certCommonName: 'alice' })), undefined);
  // A token whose entry this member has not applied waits for it, then is refused when it never comes.
  let msg = '';
  try {
    await off.identify(new FixedContext({ token: 'abcdefghijklmnop.5' }));
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.is(msg, 'etcdserver: invalid auth token');
});

test('Authenticate retries while the auth revision moves under it, and never hands out a token it could not re-check', async () => {
  const ms = memStore();
  const store = AuthStore.load(ms);
  store.userAdd('root', b(bcrypt.hashSync('pw', 4)), false, ms);
  store.roleAdd('root', ms);
  store.userGrantRole('root', 'root', ms);
  store.authEnable(ms);
  const tokens = new SimpleTokens({ ttlMs: 60_000, now: Date.now });
  tokens.enable();
  let proposals = 0;
  let churn = 0; // auth changes that land between the password check and the token, per proposal
  const hasher = new HashPool({ threads: 1, queueMax: 4 });
  const auth = new MemberAuth({
    store,
    tokens,
    hasher,
    limiter: new LoginLimiter({ freeFailures: 5, baseDelayMs: 100, maxDelayMs: 1000, usersMax: 10, now: Date.now }),
    bcryptCost: 4,
    clientCertAuth: false,
    appliedIndex: () => proposals,
    waitApplied: async () => true,
    linearizableRead: async () => {},
    propose: async (init) => {
      proposals++;
      if (churn-- > 0) store.roleAdd(`r${proposals}`, ms);
      const a = init.authenticate!;
      const response = { header: {}, token: tokens.assign(a.name ?? '', a.simple_token ?? '', proposals) };
      return { response };
    },
    log: silentLogger,
    requestTimeoutMs: 100,
  });
  try {
    churn = 2;
    const r = await auth.authenticate(new FixedContext({}), 'root', 'pw');
    assert.is(proposals, 3);
    assert.equal(tokens.info(r.token), { username: 'root' });
    churn = 100;
    let err = '';
    await auth.authenticate(new FixedContext({}), 'root', 'pw').catch((e: Error) => (err = e.message));
    assert.is(err, 'etcdserver: revision of auth store is old');
    assert.is(proposals, 13);
  } finally {
    await hasher.close();
  }
});

test('watch requests behind a create that waits for its caller are held in order, and the stream pauses at the bound', async () => {
  let release: ((v: undefined) => void) | undefined;
  let calls = 0;
  const s = {
    auth: {
      identify: () => (calls++ === 0 ? new Promise<undefined>((r) => (release = r)) : undefined),
      store: { isRangePermitted: () => {} },
    },
  } as unknown as MemberApi;
  const seen: number[] = [];
  const ws = {
    onRequest: (r: WatchRequest) => seen.push(r.create_request?.watch_id ?? -r.cancel_request!.watch_id),
    refuse: () => {},
  } as unknown as WatchStream;
  const flow: string[] = [];
  const stream = { pause: () => flow.push('pause'), resume: () => flow.push('resume') } as unknown as RpcBidiStream<
    WatchRequest,
    WatchResponseInit
  >;
  const gate = watchAuthGate(s, new FixedContext({}), ws, stream);
  const create = (id: number): WatchRequest => decodeWatchRequest(encodeWatchRequest({ create_request: { key: b('k'), watch_id: id } }));
  const cancel = (id: number): WatchRequest => decodeWatchRequest(encodeWatchRequest({ cancel_request: { watch_id: id } }));
  gate(create(1));
  for (let i = 2; i <= WATCH_REQUESTS_HELD_MAX + 2; i++) gate(i % 2 === 0 ? cancel(i) : create(i));
  assert.equal(seen, []);
  assert.equal(flow, ['pause']);
  release?.(undefined);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(
    seen.map(Math.abs),
    Array.from({ length: WATCH_REQUESTS_HELD_MAX + 2 }, (_, i) => i + 1),
  );
  assert.equal(flow, ['pause', 'resume']);
});

test.run();
