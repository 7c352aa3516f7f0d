// Failed logins slow down per user: after a few wrong passwords in a row, that user's next attempts are
// refused at once (same answer as a wrong password, no bcrypt work) for a delay that doubles with each
// further failure, up to a ceiling. Other users are not affected; a correct password resets the count.
// The table of users is bounded: the least recently failing user is forgotten first.

export interface LoginLimiterOptions {
  /** Wrong passwords in a row that cost nothing more. */
  freeFailures: number;
  /** The first delay after them (ms); doubles with every further failure. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Users tracked at most. */
  usersMax: number;
  now: () => number;
}

export const LOGIN_LIMITER_DEFAULTS = { freeFailures: 5, baseDelayMs: 100, maxDelayMs: 5000, usersMax: 10_000 } as const;

/**
 * The limiter.
 *
 *   if (!limiter.allowed(user)) throw Errors.AuthFailed();
 *   ok ? limiter.succeeded(user) : limiter.failed(user);
 */
export class LoginLimiter {
  /** user → failures in a row and until when attempts are refused; Map order = least recently failed first. */
  private readonly users = new Map<string, { failures: number; blockedUntil: number }>();

  constructor(private readonly o: LoginLimiterOptions) {}

  get size(): number {
    return this.users.size;
  }

  allowed(user: string): boolean {
    const u = this.users.get(user);
    return u === undefined || u.blockedUntil <= this.o.now();
  }

  failed(user: string): void {
    const u = this.users.get(user) ?? { failures: 0, blockedUntil: 0 };
    this.users.delete(user);
    u.failures++;
    const over = u.failures - this.o.freeFailures;
    if (over > 0) u.blockedUntil = this.o.now() + Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.min(over - 1, 30));
    while (this.users.size >= this.o.usersMax) this.users.delete(this.users.keys().next().value as string);
    this.users.set(user, u);
  }

  succeeded(user: string): void {
    this.users.delete(user);
  }
}
