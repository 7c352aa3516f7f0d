// etcdserverpb.Auth: enabling and disabling auth, Authenticate, users and roles. Every call but
// Authenticate's password check is one Raft entry carrying the caller (the applier checks root access
// where etcd does, so every member answers the same); passwords are hashed on the hashing pool before
// they are proposed, so the log, the backend and snapshots only ever see bcrypt hashes.
import type { MemberApi } from '../server/member_api.js';
import type { CallContext } from './context.js';
import { EtcdError, GrpcCode, toEtcdError } from '../errors.js';
import type { InternalRequestInit } from '../proto/internal.js';
import type {
  AuthUserAddRequest,
  AuthUserChangePasswordRequest,
  AuthenticateRequest,
  AuthenticateResponseInit,
  ResponseHeaderInit,
} from '../proto/rpc.js';

/** An auth request as a proposal, without the caller (added from the call's context). */
export type AuthProposal = Omit<InternalRequestInit, 'ID' | 'header'>;

export async function proposeAuth(s: MemberApi, ctx: CallContext, init: AuthProposal): Promise<{ header?: ResponseHeaderInit }> {
  const ai = await s.auth.identify(ctx);
  const r = await s.propose({ ...init, header: s.auth.header(ai) });
  const res = r.response as { header?: ResponseHeaderInit; authRevision?: unknown };
  res.header = s.header(res.header?.revision);
  return res;
}

/** Refuses a non-root caller before the password is hashed (the applier checks again, authoritatively). */
async function admin(s: MemberApi, ctx: CallContext): Promise<void> {
  const ai = await s.auth.identify(ctx);
  if (s.auth.store.enabled) s.auth.store.isAdminPermitted(ai);
}

export async function serveUserAdd(s: MemberApi, req: AuthUserAddRequest, ctx: CallContext): Promise<unknown> {
  await admin(s, ctx);
  const noPassword = req.options?.no_password ?? false;
  const hash = noPassword || req.name === '' ? '' : await s.auth.hashPassword(req.password);
  return proposeAuth(s, ctx, { auth_user_add: { name: req.name, password: hash, options: { no_password: noPassword } } });
}

export async function serveUserChangePassword(s: MemberApi, req: AuthUserChangePasswordRequest, ctx: CallContext): Promise<unknown> {
  await admin(s, ctx);
  const hash = await s.auth.hashPassword(req.password);
  return proposeAuth(s, ctx, { auth_user_change_password: { name: req.name, password: hash } });
}

export async function serveAuthenticate(s: MemberApi, req: AuthenticateRequest, ctx: CallContext): Promise<AuthenticateResponseInit> {
  const r = await s.auth.authenticate(ctx, req.name, req.password);
  return { header: s.header(r.revision || undefined), token: r.token };
}

/** etcd's auth package errors, by the text of the etcdserver error a member raises for them. */
const AUTH_PACKAGE_ERRORS: ReadonlySet<string> = new Set(
  ['user name is empty', 'user not found', 'permission denied', 'invalid auth token', 'revision in header is old'].map(
    (m) => `etcdserver: ${m}`,
  ),
);

/**
 * etcd 3.4's admin check on maintenance RPCs (authMaintenanceServer.isAuthenticated) returns the auth
 * package's own error, untranslated: clients see code Unknown and `auth: permission denied`.
 */
export async function requireAdminAsEtcd(s: MemberApi, ctx: CallContext): Promise<void> {
  try {
    await s.auth.requireAdmin(ctx);
  } catch (err) {
    const e = toEtcdError(err);
    if (AUTH_PACKAGE_ERRORS.has(e.message)) throw new EtcdError(GrpcCode.Unknown, `auth: ${e.message.slice('etcdserver: '.length)}`);
    throw err;
  }
}
