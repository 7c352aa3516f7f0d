// The auth oracle scenario's steps: etcdctl's user, role and auth commands, and a permission matrix (every
// operation × no user, wrong password, read-only, write-only, prefix and root users). Run on one member by
// auth-etcdctl.test.ts and on three by auth-etcdctl-cluster.test.ts.
import type { Step } from '../helpers/scenario.js';

const ROOT = ['--user', 'root:rootpw'];
const step = (...args: string[]): Step => ({ args });
const asRoot = (...args: string[]): Step => ({ args: [...ROOT, ...args] });

/** Who runs the matrix's operations. */
const CALLERS: ReadonlyArray<readonly string[]> = [
  [],
  ['--user', 'root:wrong'],
  ['--user', 'ro:ropw'],
  ['--user', 'wo:wopw'],
  ['--user', 'px:pxpw'],
  ROOT,
];

/** One operation for every caller. */
function forAll(args: readonly string[], stdin?: string): Step[] {
  return CALLERS.map((c) => ({ args: [...c, ...args], stdin }));
}

const TXN = 'mod("/a/1") > "0"\n\nput /a/2 t\n\nget /p/x\n\n';
/** A txn that only reads, but compares a key outside /p/. */
const TXN_COMPARE = 'mod("k1") > "0"\n\nget /p/x\n\nget /p/y\n\n';

export const STEPS: Step[] = [
  // Auth cannot be enabled before a root user exists (etcdctl itself adds the root role when only that is
  // missing, so ErrRootRoleNotExist is compared in auth-clients.test.ts).
  step('auth', 'enable'),
  step('user', 'add', 'root:rootpw'),
  step('role', 'add', 'root'),
  step('user', 'grant-role', 'root', 'root'),
  step('user', 'add', 'root:again'),
  step('role', 'add', 'root'),
  // Roles: read-only on /a/ (prefix), write-only on /a/, read-write on /p/ (prefix) and one key, a range, from a key.
  step('role', 'add', 'rd'),
  step('role', 'add', 'wr'),
  step('role', 'add', 'pr'),
  step('role', 'grant-permission', 'rd', 'read', '/a/', '--prefix'),
  step('role', 'grant-permission', 'wr', 'write', '/a/', '--prefix'),
  step('role', 'grant-permission', 'pr', 'readwrite', '/p/', '--prefix'),
  step('role', 'grant-permission', 'pr', 'read', 'k1'),
  step('role', 'grant-permission', 'pr', 'read', 'r1', 'r5'),
  step('role', 'grant-permission', 'pr', 'write', 'z', '--from-key'),
  step('role', 'grant-permission', 'pr', 'readwrite', 'k1'),
  step('role', 'grant-permission', 'nosuch', 'read', 'k1'),
  step('role', 'get', 'pr'),
  step('role', 'get', 'nosuch'),
  step('role', 'list'),
  step('user', 'add', 'ro', '--new-user-password=ropw', '--interactive=false'),
  step('user', 'add', 'wo:wopw'),
  step('user', 'add', 'px:pxpw'),
  step('user', 'add', 'nop', '--no-password'),
  step('user', 'grant-role', 'ro', 'rd'),
  step('user', 'grant-role', 'wo', 'wr'),
  step('user', 'grant-role', 'px', 'pr'),
  step('user', 'grant-role', 'px', 'rd'),
  step('user', 'grant-role', 'px', 'nosuch'),
  step('user', 'grant-role', 'nobody', 'rd'),
  step('user', 'revoke-role', 'px', 'rd'),
  step('user', 'revoke-role', 'px', 'rd'),
  step('user', 'get', 'px'),
  step('user', 'get', 'px', '--detail'),
  step('user', 'get', 'nobody'),
  step('user', 'list'),
  step('put', '/a/1', 'one'),
  step('put', '/p/x', 'px'),
  step('auth', 'enable'),
  step('auth', 'enable'),
  // With auth on: who may manage it.
  step('user', 'list'),
  ...forAll(['user', 'list']),
  ...forAll(['role', 'get', 'rd']),
  ...forAll(['user', 'get', 'ro']),
  asRoot('user', 'delete', 'root'),
  asRoot('role', 'delete', 'root'),
  asRoot('user', 'revoke-role', 'root', 'root'),
  asRoot('role', 'revoke-permission', 'pr', 'nokey'),
  step('--user', 'nop:x', 'get', 'k1'),
  step('--user', 'nobody:x', 'get', 'k1'),
  // The matrix.
  ...forAll(['get', '/a/1']),
  ...forAll(['get', '/a/', '--prefix']),
  ...forAll(['get', '/', '--prefix']),
  ...forAll(['get', 'r2']),
  ...forAll(['get', 'r1', 'r5']),
  ...forAll(['get', 'r1', 'r6']),
  ...forAll(['put', '/a/1', 'v']),
  ...forAll(['put', 'zz', 'v']),
  ...forAll(['put', '/p/x', 'v', '--prev-kv']),
  ...forAll(['del', '/a/9']),
  ...forAll(['del', '/p/', '--prefix', '--prev-kv']),
  ...forAll(['txn'], TXN),
  ...forAll(['txn'], TXN_COMPARE),
  ...forAll(['lock', '/l/m', 'echo', 'locked']),
  { args: [...ROOT, 'lease', 'grant', '100'], captureLease: true },
  asRoot('put', '/a/l', 'leased', `--lease=\${LEASE_1}`),
  // Without --keys: etcd 3.4.23 also answers --keys to anyone (CVE-2023-32082); tetcd checks READ on the
  // keys as later etcd does (test/cluster/auth.test.ts).
  ...forAll(['lease', 'timetolive', `\${LEASE_1}`]),
  ...forAll(['put', '/p/l', 'v', `--lease=\${LEASE_1}`]),
  ...forAll(['lease', 'revoke', `\${LEASE_1}`]),
  ...forAll(['member', 'list']),
  // Membership changes are root's (an unknown ID: the permission check comes first); MoveLeader checks none.
  ...forAll(['member', 'remove', '1234']),
  ...forAll(['member', 'promote', '1234']),
  ...forAll(['move-leader', '1234']),
  ...forAll(['endpoint', 'status']),
  ...forAll(['endpoint', 'health']),
  ...forAll(['alarm', 'list']),
  ...forAll(['compact', '2']),
  // Permission changes take effect at once, for tokens issued before them too.
  asRoot('role', 'revoke-permission', 'rd', '/a/', '--prefix'),
  step('--user', 'ro:ropw', 'get', '/a/1'),
  asRoot('role', 'grant-permission', 'rd', 'read', '/a/1'),
  step('--user', 'ro:ropw', 'get', '/a/1'),
  asRoot('user', 'revoke-role', 'ro', 'rd'),
  step('--user', 'ro:ropw', 'get', '/a/1'),
  asRoot('role', 'delete', 'wr'),
  step('--user', 'wo:wopw', 'put', '/a/1', 'w'),
  asRoot('user', 'get', 'wo'),
  { args: [...ROOT, 'user', 'passwd', 'px', '--interactive=false'], stdin: 'newpw\n' },
  step('--user', 'px:pxpw', 'get', 'k1'),
  step('--user', 'px:newpw', 'get', 'k1'),
  asRoot('user', 'delete', 'px'),
  step('--user', 'px:newpw', 'get', 'k1'),
  asRoot('user', 'delete', 'px'),
  asRoot('role', 'delete', 'nosuch'),
  asRoot('role', 'add', ''),
  step('--user', 'ro:ropw', 'auth', 'disable'),
  asRoot('auth', 'disable'),
  step('get', '/a/1'),
  step('--user', 'root:rootpw', 'get', '/a/1'),
  step('user', 'delete', 'root'),
  step('user', 'list'),
];
