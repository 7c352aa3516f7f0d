// The auth side of applying (etcd 3.4's authApplierV3 and the auth requests of applierV3backend): who sent
// a committed request is in its header (user name and the auth revision its credentials were checked
// at), so every member decides the same for it at the same log index. Auth management needs root; the
// KV and lease checks are in src/auth/checks.ts.
import type { InternalRequest } from '../proto/internal.js';
import type { AuthInfo, AuthStore } from '../auth/store.js';
import type { TokenProvider } from '../auth/tokens.js';
import type { ResponseHeaderInit } from '../proto/rpc.js';
import type { MetaStore } from './membership.js';

/** The request's sender as its header says (undefined: none, which with auth on is ErrUserEmpty). */
export function authInfoOf(req: InternalRequest): AuthInfo | undefined {
  const h = req.header;
  return h === undefined ? undefined : { username: h.username, revision: h.auth_revision };
}

/** etcd's needAdminPermission: every auth management request but Authenticate, UserGet and RoleGet. */
export function needsAdmin(req: InternalRequest): boolean {
  return (
    req.auth_enable !== undefined ||
    req.auth_disable !== undefined ||
    req.auth_user_add !== undefined ||
    req.auth_user_delete !== undefined ||
    req.auth_user_change_password !== undefined ||
    req.auth_user_grant_role !== undefined ||
    req.auth_user_revoke_role !== undefined ||
    req.auth_role_add !== undefined ||
    req.auth_role_grant_permission !== undefined ||
    req.auth_role_revoke_permission !== undefined ||
    req.auth_role_delete !== undefined ||
    req.auth_user_list !== undefined ||
    req.auth_role_list !== undefined
  );
}

export function isAuthRequest(req: InternalRequest): boolean {
  return needsAdmin(req) || req.authenticate !== undefined || req.auth_user_get !== undefined || req.auth_role_get !== undefined;
}

/** Applies an auth request (the admin check was made); throws etcd's auth errors. */
export function applyAuth(
  as: AuthStore,
  tokens: TokenProvider,
  req: InternalRequest,
  ai: AuthInfo | undefined,
  index: number,
  store: MetaStore,
  revision: number,
): { header?: ResponseHeaderInit } & Record<string, unknown> {
  const header = { revision };
  if (req.auth_enable) {
    as.authEnable(store);
  } else if (req.auth_disable) {
    as.authDisable(store);
  } else if (req.authenticate) {
    const a = req.authenticate;
    as.authenticate(a.name);
    // A simple token is registered on every member; a JWT is signed by the member that proposed it.
    const token = tokens.kind === 'simple' ? tokens.assign(a.name, a.simple_token, index) : '';
    return { header, token, authRevision: as.revision };
  } else if (req.auth_user_add) {
    const r = req.auth_user_add;
    // The log carries the bcrypt hash in `password` (the API layer hashed it): never the password.
    as.userAdd(r.name, Buffer.from(r.password, 'utf8'), r.options?.no_password ?? false, store);
  } else if (req.auth_user_delete) {
    as.userDelete(req.auth_user_delete.name, store);
  } else if (req.auth_user_change_password) {
    const r = req.auth_user_change_password;
    as.userChangePassword(r.name, Buffer.from(r.password, 'utf8'), store);
  } else if (req.auth_user_grant_role) {
    as.userGrantRole(req.auth_user_grant_role.user, req.auth_user_grant_role.role, store);
  } else if (req.auth_user_revoke_role) {
    as.userRevokeRole(req.auth_user_revoke_role.name, req.auth_user_revoke_role.role, store);
  } else if (req.auth_user_get) {
    // Root, or the user asking about themselves.
    if (req.auth_user_get.name !== (ai?.username ?? '')) as.isAdminPermitted(ai);
    return { header, roles: as.userGet(req.auth_user_get.name) };
  } else if (req.auth_user_list) {
    return { header, users: as.userList() };
  } else if (req.auth_role_add) {
    as.roleAdd(req.auth_role_add.name, store);
  } else if (req.auth_role_delete) {
    as.roleDelete(req.auth_role_delete.role, store);
  } else if (req.auth_role_get) {
    // Root, or a user holding the role.
    if (!as.hasRole(ai?.username ?? '', req.auth_role_get.role)) as.isAdminPermitted(ai);
    return { header, perm: as.roleGet(req.auth_role_get.role) };
  } else if (req.auth_role_list) {
    return { header, roles: as.roleList() };
  } else if (req.auth_role_grant_permission) {
    const r = req.auth_role_grant_permission;
    const p = r.perm ?? { permType: 0, key: new Uint8Array(0), range_end: new Uint8Array(0) };
    as.roleGrantPermission(r.name, p, store);
  } else if (req.auth_role_revoke_permission) {
    const r = req.auth_role_revoke_permission;
    as.roleRevokePermission(r.role, r.key, r.range_end, store);
  }
  return { header };
}
