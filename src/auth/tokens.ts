// Auth tokens as etcd 3.4 makes them (--auth-token): `simple` tokens are `<16 random letters>.<raft index>`,
// kept in every member's memory (each member registers the token when it applies the Authenticate entry)
// and forgotten after --auth-token-ttl seconds unused; `jwt` tokens are signed JWTs carrying the user name
// and the auth revision they were issued at, valid on every member that has the key, until they expire.
import { randomInt, createPublicKey, type KeyObject } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { EtcdError, GrpcCode } from '../errors.js';

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const SIMPLE_TOKEN_LENGTH = 16;

/** A used simple token moves to the end of the LRU order at most this often (etcd's TTL resolution is 1 s). */
const TOKEN_REORDER_MS = 1000;

/** Simple tokens one member keeps at most; past it the least recently used goes first. */
export const SIMPLE_TOKENS_MAX_DEFAULT = 100_000;
/** Verified JWTs remembered so a request does not verify a signature again (bounded, least recently used goes). */
export const JWT_CACHE_MAX_DEFAULT = 10_000;

/** auth.ErrInvalidAuthOpts and friends: a bad --auth-token stops the member at start, as etcd. */
export function invalidOpts(detail: string): Error {
  return new Error(`auth: invalid auth options: ${detail}`);
}

/** The identity a token stands for; a simple token's revision is whatever the store's is when it is used. */
export interface TokenInfo {
  username: string;
  /** The auth revision the token was issued at (JWT); undefined for simple tokens. */
  revision?: number;
}

export interface SimpleTokenOptions {
  ttlMs: number;
  now: () => number;
  tokensMax?: number;
}

/**
 * Simple tokens.
 *
 *   const prefix = tokens.genPrefix();             // API layer, before proposing
 *   tokens.assign(user, prefix, entryIndex);       // every member, while applying
 *   tokens.info(token)?.username                   // per request
 */
export class SimpleTokens {
  readonly kind = 'simple';
  /**
   * token → user, when it expires and when it last moved to the end of the Map (Map order = least recently
   * used first, up to TOKEN_REORDER_MS: a token used on every request moves once a second, not per request).
   */
  private readonly tokens = new Map<string, { user: string; expiresAt: number; movedAt: number }>();
  private enabled = false;

  constructor(private readonly o: SimpleTokenOptions) {}

  get size(): number {
    return this.tokens.size;
  }

  genPrefix(): string {
    let s = '';
    for (let i = 0; i < SIMPLE_TOKEN_LENGTH; i++) s += LETTERS[randomInt(LETTERS.length)];
    return s;
  }

  /** The raft index a simple token names (the member must have applied it before the token is known), or undefined when malformed. */
  indexOf(token: string): number | undefined {
    const parts = token.split('.');
    if (parts.length !== 2 || !/^[+-]?\d+$/.test(parts[1])) return undefined;
    const n = Number(parts[1]);
    return Number.isSafeInteger(n) ? n : undefined;
  }

  assign(user: string, prefix: string, index: number): string {
    const token = `${prefix}.${index}`;
    if (!this.enabled) return token;
    this.tokens.delete(token);
    const max = this.o.tokensMax ?? SIMPLE_TOKENS_MAX_DEFAULT;
    while (this.tokens.size >= max) {
      const oldest = this.tokens.keys().next().value as string;
      this.tokens.delete(oldest);
    }
    const now = this.o.now();
    this.tokens.set(token, { user, expiresAt: now + this.o.ttlMs, movedAt: now });
    return token;
  }

  /** The user of a live token (its TTL starts again), or undefined. */
  info(token: string): TokenInfo | undefined {
    const t = this.tokens.get(token);
    if (t === undefined) return undefined;
    const now = this.o.now();
    if (t.expiresAt <= now) {
      this.tokens.delete(token);
      return undefined;
    }
    t.expiresAt = now + this.o.ttlMs;
    if (now - t.movedAt >= TOKEN_REORDER_MS) {
      t.movedAt = now;
      this.tokens.delete(token);
      this.tokens.set(token, t);
    }
    return { username: t.user };
  }

  /**
   * Drops expired tokens (etcd's TTL keeper, once a second). Stops at the first live token that moved to
   * the end within the last TTL: every token before it expired or was used (and moved) since.
   */
  sweep(): void {
    const now = this.o.now();
    for (const [k, t] of this.tokens) {
      if (t.expiresAt > now) {
        if (t.movedAt + this.o.ttlMs > now) break;
        continue;
      }
      this.tokens.delete(k);
    }
  }

  invalidateUser(user: string): void {
    for (const [k, t] of this.tokens) if (t.user === user) this.tokens.delete(k);
  }

  enable(): void {
    this.enabled = true;
  }

  disable(): void {
    this.enabled = false;
    this.tokens.clear();
  }
}

/** The JWT signing methods etcd accepts (golang-jwt's names), plus EdDSA (etcd 3.5). */
export const JWT_METHODS = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'HS256',
  'HS384',
  'HS512',
  'EdDSA',
]);

export interface JwtOptions {
  signMethod: string;
  privateKey: KeyObject | undefined;
  publicKey: KeyObject | undefined;
  ttlMs: number;
  now: () => number;
  cacheMax?: number;
}

/**
 * JWT tokens, signed and verified with jose. A verified token is remembered (until it expires) so the
 * requests that carry it are checked without a signature verification each.
 *
 *   const token = await jwt.sign('alice', revision);
 *   jwt.cached(token) ?? (await jwt.verify(token))
 */
export class JwtTokens {
  readonly kind = 'jwt';
  private readonly cache = new Map<string, { info: TokenInfo; expMs: number }>();

  constructor(private readonly o: JwtOptions) {}

  get verifyOnly(): boolean {
    return this.o.privateKey === undefined || this.o.privateKey.type === 'public';
  }

  genPrefix(): string {
    return '';
  }

  async sign(username: string, revision: number): Promise<string> {
    // etcd's ErrVerifyOnly: a member given only the public key cannot issue tokens.
    if (this.verifyOnly) throw new EtcdError(GrpcCode.Unknown, 'auth: token signing attempted with verify-only key');
    const exp = Math.floor((this.o.now() + this.o.ttlMs) / 1000);
    // golang-jwt writes MapClaims in key order: exp, revision, username.
    return new SignJWT({ exp, revision, username })
      .setProtectedHeader({ alg: this.o.signMethod, typ: 'JWT' })
      .sign(this.o.privateKey as KeyObject);
  }

  /** A token verified before and not expired since, or undefined (then verify()). */
  cached(token: string): TokenInfo | undefined {
    const c = this.cache.get(token);
    if (c === undefined) return undefined;
    if (c.expMs <= this.o.now()) {
      this.cache.delete(token);
      return undefined;
    }
    return c.info;
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  /** Verifies signature, method and expiry; undefined for any invalid token. */
  async verify(token: string): Promise<TokenInfo | undefined> {
    const key = this.o.publicKey ?? this.o.privateKey;
    if (key === undefined) return undefined;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, key.type === 'private' ? createPublicKey(key) : key, {
        algorithms: [this.o.signMethod],
        currentDate: new Date(this.o.now()),
      }));
    } catch {
      return undefined;
    }
    const { username, revision, exp } = payload;
    if (typeof username !== 'string' || typeof revision !== 'number') return undefined;
    const info = { username, revision };
    const max = this.o.cacheMax ?? JWT_CACHE_MAX_DEFAULT;
    while (this.cache.size >= max) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(token, { info, expMs: typeof exp === 'number' ? exp * 1000 : Number.POSITIVE_INFINITY });
    return info;
  }

  enable(): void {}
  disable(): void {}
  invalidateUser(_user: string): void {}
}

/** `--auth-token ''`: no tokens (etcd's nop provider: Authenticate fails, tokens are invalid). */
export class NoTokens {
  readonly kind = 'none';
  genPrefix(): string {
    return '';
  }
  enable(): void {}
  disable(): void {}
  invalidateUser(_user: string): void {}
}

export type TokenProvider = SimpleTokens | JwtTokens | NoTokens;

/** etcd's decomposeOpts: `type,k=v,k=v` with no repeated key. */
export function parseAuthTokenOption(opt: string): { type: string; opts: Map<string, string> } {
  const parts = opt.split(',');
  const opts = new Map<string, string>();
  for (const p of parts.slice(1)) {
    const kv = p.split('=');
    if (kv.length !== 2) throw invalidOpts(`invalid token specific option: ${opt}`);
    if (opts.has(kv[0])) throw invalidOpts(`duplicated parameter ${kv[0]}`);
    opts.set(kv[0], kv[1]);
  }
  return { type: parts[0], opts };
}
