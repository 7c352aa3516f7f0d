// The auth store: users, roles, their key permissions, whether auth is on and the auth revision, as etcd
// 3.4 keeps them (auth/store.go). Changed only by applying committed requests, so every member holds the
// same state at the same log index; kept in the backend's `auth`, `authUsers` and `authRoles` buckets
// (users and roles as authpb messages; passwords only as bcrypt hashes), so snapshots and restarts carry it.
import { Errors, EtcdError, GrpcCode } from '../errors.js';
import { decodeRole, decodeUser, encodeRole, encodeUser, Permission_Type, type Permission, type Role, type User } from '../proto/auth.js';
import { UserPerms } from './perms.js';

/** The backend's small tables, as the member's store offers them (server/membership.ts MetaStore). */
export interface MetaStore {
  metaGet(bucket: string, key: Uint8Array): Uint8Array | undefined;
  metaPut(bucket: string, key: Uint8Array, value: Uint8Array): void;
  metaDelete(bucket: string, key: Uint8Array): void;
  metaScan(bucket: string): Iterable<[Uint8Array, Uint8Array]>;
}

const AUTH = 'auth';
const USERS = 'authUsers';
const ROLES = 'authRoles';
const ENABLED_KEY = Buffer.from('authEnabled');
const REVISION_KEY = Buffer.from('authRevision');

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';

/** Who a request comes from: the user and the auth revision its credentials were checked at (0 = none). */
export interface AuthInfo {
  username: string;
  revision: number;
}

/**
 * The caller of the member's own requests (revoking expired leases): root, at a revision no change can pass,
 * as etcd's WithRoot (a root token minted for the purpose). Auth on implies root exists with the root role.
 */
export const MEMBER_AS_ROOT = { username: 'root', auth_revision: Number.MAX_SAFE_INTEGER } as const;

/** etcd's ErrNoPasswordUser has no gRPC mapping: clients see it as Unknown with auth's own text. */
export function noPasswordUserError(): EtcdError {
  return new EtcdError(GrpcCode.Unknown, 'auth: authentication failed, password was given for no password user');
}

function u64(n: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function utf8(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

function text(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('utf8');
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** Go's sort.Strings order (bytewise), which the backend's key order also is. */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * The auth state of one member.
 *
 *   const auth = AuthStore.load(store);
 *   auth.userAdd('root', hash, false, store);      // while applying, through Raft
 *   auth.isRangePermitted({ username, revision }, key, rangeEnd);
 */
export class AuthStore {
  private enabledFlag = false;
  private rev = 0;
  private readonly users = new Map<string, User>();
  private readonly roles = new Map<string, Role>();
  private perms = new Map<string, UserPerms>();
  /** Called with a user name whose password changed or who was deleted (simple tokens of theirs go). */
  onUserInvalidated: (name: string) => void = () => {};
  /** Called when auth is turned on or off. */
  onEnabledChange: (enabled: boolean) => void = () => {};

  static load(store: MetaStore): AuthStore {
    const a = new AuthStore();
    a.reload(store);
    return a;
  }

  /** Reads everything again from a (new) backend: after a snapshot from the leader replaced it. */
  reload(store: MetaStore): void {
    const was = this.enabledFlag;
    const en = store.metaGet(AUTH, ENABLED_KEY);
    this.enabledFlag = en !== undefined && en.length === 1 && en[0] === 1;
    const r = store.metaGet(AUTH, REVISION_KEY);
    // etcd writes revision 1 when it creates the store; a fresh backend here is at 1 too.
    this.rev = r !== undefined && r.length === 8 ? Number(Buffer.from(r).readBigUInt64BE(0)) : 1;
    this.users.clear();
    this.roles.clear();
    for (const [k, v] of store.metaScan(USERS)) this.users.set(text(k), decodeUser(v));
    for (const [k, v] of store.metaScan(ROLES)) this.roles.set(text(k), decodeRole(v));
    this.refreshPerms();
    if (was !== this.enabledFlag) this.onEnabledChange(this.enabledFlag);
  }

  get enabled(): boolean {
    return this.enabledFlag;
  }

  /** The auth revision: raised by every change of users, roles or permissions, and by AuthDisable. */
  get revision(): number {
    return this.rev;
  }

  hasUser(name: string): boolean {
    return this.users.has(name);
  }

  /** The user as stored (its password is the bcrypt hash), or undefined. */
  user(name: string): User | undefined {
    return this.users.get(name);
  }

  // ---- permission checks (etcd's Is*Permitted) ----

  private isOpPermitted(ai: AuthInfo | undefined, key: Uint8Array, rangeEnd: Uint8Array | undefined, type: number): void {
    if (!this.enabledFlag) return;
    if (ai === undefined || ai.revision === 0) throw Errors.UserEmpty();
    if (ai.revision < this.rev) throw Errors.AuthOldRevision();
    const u = this.users.get(ai.username);
    if (u === undefined) throw Errors.PermissionDenied();
    if (u.roles.includes(ROOT_ROLE)) return;
    if (this.perms.get(ai.username)?.permitted(key, rangeEnd, type)) return;
    throw Errors.PermissionDenied();
  }

  isRangePermitted(ai: AuthInfo | undefined, key: Uint8Array, rangeEnd: Uint8Array | undefined): void {
    this.isOpPermitted(ai, key, rangeEnd, Permission_Type.READ);
  }

  isPutPermitted(ai: AuthInfo | undefined, key: Uint8Array): void {
    this.isOpPermitted(ai, key, undefined, Permission_Type.WRITE);
  }

  isDeleteRangePermitted(ai: AuthInfo | undefined, key: Uint8Array, rangeEnd: Uint8Array | undefined): void {
    this.isOpPermitted(ai, key, rangeEnd, Permission_Type.WRITE);
  }

  /** Root only (admin RPCs and auth management); no revision check, as etcd. */
  isAdminPermitted(ai: AuthInfo | undefined): void {
    if (!this.enabledFlag) return;
    if (ai === undefined || ai.username === '') throw Errors.UserEmpty();
    const u = this.users.get(ai.username);
    if (u === undefined) throw Errors.UserNotFound();
    if (!u.roles.includes(ROOT_ROLE)) throw Errors.PermissionDenied();
  }

  hasRole(user: string, role: string): boolean {
    return this.users.get(user)?.roles.includes(role) ?? false;
  }

  // ---- changes (applied through Raft) ----

  private commitRevision(store: MetaStore): void {
    this.rev++;
    store.metaPut(AUTH, REVISION_KEY, u64(this.rev));
  }

  private putUser(u: User, store: MetaStore): void {
    store.metaPut(USERS, u.name, encodeUser(u));
    this.users.set(text(u.name), u);
  }

  private putRole(r: Role, store: MetaStore): void {
    store.metaPut(ROLES, r.name, encodeRole(r));
    this.roles.set(text(r.name), r);
  }

  /** Every change ends here: revision up, permission cache rebuilt (etcd's refreshRangePermCache). */
  private changed(store: MetaStore): void {
    this.commitRevision(store);
    this.refreshPerms();
  }

  private refreshPerms(): void {
    const next = new Map<string, UserPerms>();
    for (const [name, u] of this.users) {
      const all: Permission[] = [];
      for (const r of u.roles) {
        const role = this.roles.get(r);
        if (role !== undefined) all.push(...role.keyPermission);
      }
      next.set(name, UserPerms.of(all));
    }
    this.perms = next;
  }

  authEnable(store: MetaStore): void {
    if (this.enabledFlag) return;
    const root = this.users.get(ROOT_USER);
    if (root === undefined) throw Errors.RootUserNotExist();
    if (!root.roles.includes(ROOT_ROLE)) throw Errors.RootRoleNotExist();
    store.metaPut(AUTH, ENABLED_KEY, Uint8Array.of(1));
    this.enabledFlag = true;
    this.refreshPerms();
    this.onEnabledChange(true);
  }

  authDisable(store: MetaStore): void {
    if (!this.enabledFlag) return;
    store.metaPut(AUTH, ENABLED_KEY, Uint8Array.of(0));
    this.commitRevision(store);
    this.enabledFlag = false;
    this.onEnabledChange(false);
  }

  /** Who may get a token (the password was checked before the request was proposed). */
  authenticate(name: string): void {
    if (!this.enabledFlag) throw Errors.AuthNotEnabled();
    const u = this.users.get(name);
    if (u === undefined || u.options?.no_password) throw Errors.AuthFailed();
  }

  /** `hash` is the bcrypt hash the API layer made (empty for a no-password user); never a password. */
  userAdd(name: string, hash: Uint8Array, noPassword: boolean, store: MetaStore): void {
    if (name.length === 0) throw Errors.UserEmpty();
    if (this.users.has(name)) throw Errors.UserAlreadyExist();
    this.putUser(
      { name: utf8(name), password: noPassword ? new Uint8Array(0) : hash, roles: [], options: { no_password: noPassword } },
      store,
    );
    this.changed(store);
  }

  userDelete(name: string, store: MetaStore): void {
    if (this.enabledFlag && name === ROOT_USER) throw Errors.InvalidAuthMgmt();
    if (!this.users.has(name)) throw Errors.UserNotFound();
    store.metaDelete(USERS, utf8(name));
    this.users.delete(name);
    this.changed(store);
    this.onUserInvalidated(name);
  }

  userChangePassword(name: string, hash: Uint8Array, store: MetaStore): void {
    const u = this.users.get(name);
    if (u === undefined) throw Errors.UserNotFound();
    this.putUser({ ...u, password: hash }, store);
    this.changed(store);
    this.onUserInvalidated(name);
  }

  userGrantRole(name: string, role: string, store: MetaStore): void {
    const u = this.users.get(name);
    if (u === undefined) throw Errors.UserNotFound();
    if (role !== ROOT_ROLE && !this.roles.has(role)) throw Errors.RoleNotFound();
    if (u.roles.includes(role)) return;
    this.putUser({ ...u, roles: [...u.roles, role].sort(byBytes) }, store);
    this.changed(store);
  }

  userGet(name: string): string[] {
    const u = this.users.get(name);
    if (u === undefined) throw Errors.UserNotFound();
    return [...u.roles];
  }

  userList(): string[] {
    return [...this.users.keys()].sort(byBytes);
  }

  userRevokeRole(name: string, role: string, store: MetaStore): void {
    if (this.enabledFlag && name === ROOT_USER && role === ROOT_ROLE) throw Errors.InvalidAuthMgmt();
    const u = this.users.get(name);
    if (u === undefined) throw Errors.UserNotFound();
    const roles = u.roles.filter((r) => r !== role);
    if (roles.length === u.roles.length) throw Errors.RoleNotGranted();
    this.putUser({ ...u, roles }, store);
    this.changed(store);
  }

  roleAdd(name: string, store: MetaStore): void {
    if (name.length === 0) throw Errors.RoleEmpty();
    if (this.roles.has(name)) throw Errors.RoleAlreadyExist();
    this.putRole({ name: utf8(name), keyPermission: [] }, store);
    this.changed(store);
  }

  roleGet(name: string): Permission[] {
    const r = this.roles.get(name);
    if (r === undefined) throw Errors.RoleNotFound();
    return [...r.keyPermission];
  }

  roleList(): string[] {
    return [...this.roles.keys()].sort(byBytes);
  }

  roleDelete(name: string, store: MetaStore): void {
    if (this.enabledFlag && name === ROOT_ROLE) throw Errors.InvalidAuthMgmt();
    if (!this.roles.has(name)) throw Errors.RoleNotFound();
    store.metaDelete(ROLES, utf8(name));
    this.roles.delete(name);
    for (const u of [...this.users.values()]) {
      if (u.roles.includes(name)) this.putUser({ ...u, roles: u.roles.filter((r) => r !== name) }, store);
    }
    this.changed(store);
  }

  roleGrantPermission(name: string, perm: Permission, store: MetaStore): void {
    const r = this.roles.get(name);
    if (r === undefined) throw Errors.RoleNotFound();
    const perms = r.keyPermission.map((p) => ({ ...p }));
    // etcd looks at the first permission whose key is >= the new one only (sort.Search).
    const idx = perms.findIndex((p) => Buffer.compare(p.key, perm.key) >= 0);
    if (idx >= 0 && bytesEqual(perms[idx].key, perm.key) && bytesEqual(perms[idx].range_end, perm.range_end)) {
      perms[idx].permType = perm.permType;
    } else {
      perms.push({ key: perm.key, range_end: perm.range_end, permType: perm.permType });
      perms.sort((a, b) => Buffer.compare(a.key, b.key));
    }
    this.putRole({ name: r.name, keyPermission: perms }, store);
    this.changed(store);
  }

  roleRevokePermission(name: string, key: Uint8Array, rangeEnd: Uint8Array, store: MetaStore): void {
    const r = this.roles.get(name);
    if (r === undefined) throw Errors.RoleNotFound();
    const perms = r.keyPermission.filter((p) => !bytesEqual(p.key, key) || !bytesEqual(p.range_end, rangeEnd));
    if (perms.length === r.keyPermission.length) throw Errors.PermissionNotGranted();
    this.putRole({ name: r.name, keyPermission: perms }, store);
    this.changed(store);
  }
}
