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

/**
 * Password checks of one user run at most `perUser` at a time; the rest wait in that user's own queue (at
 * most `waitingMax`, past it ErrTooManyRequests). So one user's flood of logins never fills the hashing
 * pool ahead of other users', and a user being guessed at is slowed down by LoginLimiter before most of
 * the queued guesses cost a hash.
 *
 *   await slots.acquire(user);
 *   try { await compare(...) } finally { slots.release(user); }
 */
export class UserSlots {
  private readonly users = new Map<string, { running: number; waiting: Array<() => void> }>();

  constructor(
    private readonly perUser: number,
    private readonly waitingMax: number,
    private readonly tooMany: () => Error,
  ) {}

  /** Users with a check running or waiting. */
  get size(): number {
    return this.users.size;
  }

  acquire(user: string): Promise<void> {
    let u = this.users.get(user);
    if (u === undefined) {
      u = { running: 0, waiting: [] };
      this.users.set(user, u);
    }
    if (u.running < this.perUser) {
      u.running++;
      return Promise.resolve();
    }
    if (u.waiting.length >= this.waitingMax) return Promise.reject(this.tooMany());
    const slot = u;
    return new Promise<void>((resolve) => slot.waiting.push(resolve));
  }

  release(user: string): void {
    const u = this.users.get(user);
    if (u === undefined) return;
    const next = u.waiting.shift();
    if (next !== undefined) {
      next();
      return;
    }
    u.running--;
    if (u.running === 0) this.users.delete(user);
  }
}

/** Password checks of one user at a time, and how many more may wait (see UserSlots). */
export const USER_SLOTS_DEFAULTS = { perUser: 2, waitingMax: 256 } as const;
