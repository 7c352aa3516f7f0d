// The member's auth front: who a call comes from (its token, or its certificate's CN with
// --client-cert-auth), the checks etcd 3.4 makes before serving a read, the header a proposal carries so
// the applier can check it, and Authenticate (password checked on the hashing pool, then a Raft entry
// that registers or signs the token). Everything that changes auth state goes through Raft (apply_auth.ts).
import { Errors, toEtcdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { InternalRequestInit, RequestHeaderInit } from '../proto/internal.js';
import type { TxnRequest } from '../proto/rpc.js';
import type { ApplyResult } from './apply.js';
import { checkTxnAuth } from '../auth/checks.js';
import type { PasswordHasher } from '../auth/hash_pool.js';
import { USER_SLOTS_DEFAULTS, UserSlots, type LoginLimiter } from '../auth/login_limiter.js';
import { noPasswordUserError, type AuthInfo, type AuthStore } from '../auth/store.js';
import type { TokenProvider } from '../auth/tokens.js';

/** What the member needs of a call to know who makes it (the API's CallContext has it). */
export interface CallCredentials {
  readonly token: string | undefined;
  readonly certCommonName: string | undefined;
  readonly deadlineMs: number;
}

export interface MemberAuthDeps {
  store: AuthStore;
  tokens: TokenProvider;
  hasher: PasswordHasher;
  limiter: LoginLimiter;
  bcryptCost: number;
  /** --client-cert-auth: a verified client certificate's CN is the user when the call has no token. */
  clientCertAuth: boolean;
  appliedIndex(): number;
  /** Resolves true once `index` is applied, false at `deadlineMs`. */
  waitApplied(index: number, deadlineMs: number): Promise<boolean>;
  linearizableRead(): Promise<void>;
  propose(init: Omit<InternalRequestInit, 'ID'>): Promise<ApplyResult>;
  log: Logger;
  /** The longest a call waits for a simple token's entry to be applied here (etcd waits for the call's context). */
  requestTimeoutMs: number;
}

/**
 * Tries Authenticate makes when the auth revision moved between the password check and the token (etcd
 * retries without bound); then it fails with ErrAuthOldRevision rather than loop under constant auth changes.
 */
const AUTHENTICATE_TRIES_MAX = 10;

function textOf(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('utf8');
}

/**
 * The member's auth.
 *
 *   const ai = await auth.identify(ctx);        // undefined: no credentials
 *   auth.store.isRangePermitted(ai, key, end);  // throws etcd's errors
 *   await s.propose({ put, header: auth.header(ai) });
 */
export class MemberAuth {
  readonly store: AuthStore;
  /** One user's password checks never take more than two of the pool's threads at once. */
  private readonly slots = new UserSlots(USER_SLOTS_DEFAULTS.perUser, USER_SLOTS_DEFAULTS.waitingMax, () => Errors.TooManyRequests());

  constructor(private readonly d: MemberAuthDeps) {
    this.store = d.store;
  }

  /**
   * etcd's AuthInfoFromCtx: the token's user (ErrInvalidAuthToken if it is not a live token), else with
   * --client-cert-auth the certificate's CN, else nobody. Synchronous unless a JWT must be verified for
   * the first time or a simple token's entry is not applied here yet.
   */
  identify(ctx: CallCredentials): AuthInfo | undefined | Promise<AuthInfo | undefined> {
    const token = ctx.token;
    if (token === undefined) {
      if (!this.d.clientCertAuth || ctx.certCommonName === undefined) return undefined;
      return { username: ctx.certCommonName, revision: this.store.revision };
    }
    const t = this.d.tokens;
    switch (t.kind) {
      case 'simple': {
        // A token this member holds was registered when its entry applied here: no index to wait for.
        const live = t.info(token);
        if (live !== undefined) return { username: live.username, revision: this.store.revision };
        const index = t.indexOf(token);
        if (index === undefined) throw Errors.InvalidAuthToken();
        if (index > this.d.appliedIndex()) return this.identifyLater(token, index, ctx);
        throw Errors.InvalidAuthToken();
      }
      case 'jwt': {
        const c = t.cached(token);
        if (c !== undefined) return { username: c.username, revision: c.revision ?? 0 };
        return t.verify(token).then((info) => {
          if (info === undefined) {
            this.d.log.warn('invalid auth token');
            throw Errors.InvalidAuthToken();
          }
          return { username: info.username, revision: info.revision ?? 0 };
        });
      }
      default:
        throw Errors.InvalidAuthToken();
    }
  }

  private simpleInfo(token: string): AuthInfo {
    const info = (this.d.tokens as { info(t: string): { username: string } | undefined }).info(token);
    if (info === undefined) throw Errors.InvalidAuthToken();
    return { username: info.username, revision: this.store.revision };
  }

  private async identifyLater(token: string, index: number, ctx: CallCredentials): Promise<AuthInfo> {
    const deadline = Math.min(ctx.deadlineMs, Date.now() + this.d.requestTimeoutMs);
    if (!(await this.d.waitApplied(index, deadline))) throw Errors.InvalidAuthToken();
    return this.simpleInfo(token);
  }

  /** The header a proposal carries for the applier's checks (none without credentials). */
  header(ai: AuthInfo | undefined): RequestHeaderInit | undefined {
    return ai === undefined ? undefined : { username: ai.username, auth_revision: ai.revision };
  }

  /** etcd's doSerialize tail: a read served while the auth store changed under it is refused. */
  checkStillCurrent(ai: AuthInfo | undefined): void {
    if (ai !== undefined && ai.revision !== 0 && ai.revision !== this.store.revision) throw Errors.AuthOldRevision();
  }

  checkTxnRead(ai: AuthInfo | undefined, req: TxnRequest): void {
    checkTxnAuth(this.store, ai, req);
  }

  /** Admin RPCs (Defragment, Snapshot, Hash, HashKV, member changes in etcd 3.4): root only. */
  async requireAdmin(ctx: CallCredentials): Promise<void> {
    this.store.isAdminPermitted(await this.identify(ctx));
  }

  /** A bcrypt hash of `password` at --bcrypt-cost, made on the hashing pool. */
  hashPassword(password: string): Promise<string> {
    return this.d.hasher.hash(password, this.d.bcryptCost);
  }

  /** etcd's CheckPassword: the auth revision the password was checked at. Throws etcd's errors. */
  private async checkPassword(name: string, password: string): Promise<number> {
    const s = this.store;
    if (!s.enabled) throw Errors.AuthNotEnabled();
    const u = s.user(name);
    if (u === undefined) throw Errors.AuthFailed();
    if (u.options?.no_password) throw noPasswordUserError();
    const revision = s.revision;
    const hash = textOf(u.password);
    const limiter = this.d.limiter;
    await this.slots.acquire(name);
    let ok: boolean;
    try {
      // Checked once the user's turn came: guesses queued behind failures are refused without a hash.
      if (!limiter.allowed(name)) throw Errors.AuthFailed();
      ok = await this.d.hasher.compare(password, hash);
    } finally {
      this.slots.release(name);
    }
    if (!ok) {
      limiter.failed(name);
      this.d.log.info('invalid password', { 'user-name': name });
      throw Errors.AuthFailed();
    }
    limiter.succeeded(name);
    return revision;
  }

  /**
   * etcd's Authenticate: linearizable read, password check, then an entry that makes the token on every
   * member (simple) or tells the proposer the revision to sign (JWT). The password never enters the log.
   */
  async authenticate(ctx: CallCredentials, name: string, password: string): Promise<{ token: string; revision: number }> {
    await this.d.linearizableRead();
    const ai = await this.identify(ctx);
    for (let i = 0; ; i++) {
      let checked: number;
      try {
        checked = await this.checkPassword(name, password);
      } catch (err) {
        const e = toEtcdError(err);
        if (e.message !== Errors.AuthNotEnabled().message)
          this.d.log.warn('invalid authentication was requested', { user: name, error: e.message });
        throw e;
      }
      const r = await this.d.propose({ header: this.header(ai), authenticate: { name, simple_token: this.d.tokens.genPrefix() } });
      const res = r.response as { token: string; authRevision: number; header?: { revision?: number } };
      let token = res.token;
      const t = this.d.tokens;
      if (t.kind === 'jwt') token = await t.sign(name, res.authRevision);
      else if (t.kind === 'none') throw Errors.AuthFailed();
      if (checked === this.store.revision) return { token, revision: res.header?.revision ?? 0 };
      // The password may have changed since it was checked: never hand out that token.
      if (i + 1 >= AUTHENTICATE_TRIES_MAX) throw Errors.AuthOldRevision();
      this.d.log.info('revision when password checked became stale; retrying');
    }
  }
}
