// bcrypt off the event loop: a small Piscina pool of its own (independent of --worker-threads, which may
// be 0), started on first use so a member without auth pays nothing. Its queue is bounded: a flood of
// Authenticate calls past it is refused with etcd's "too many requests" instead of growing memory.
import { Piscina } from 'piscina';
import { Errors } from '../errors.js';
import type { HashTask } from './hash_worker.js';

/** What hashes and compares passwords: the thread pool, or an inline fake in tests. */
export interface PasswordHasher {
  hash(password: string, cost: number): Promise<string>;
  compare(password: string, hash: string): Promise<boolean>;
  close(): Promise<void>;
}

export interface HashPoolOptions {
  threads: number;
  /** Tasks that may wait for a thread; past it calls fail with ErrTooManyRequests. */
  queueMax: number;
  /** For tests: the worker module. */
  filename?: string;
}

/** Threads of the password pool: one is enough to keep the event loop free; two use a 2-core machine. */
export const HASH_POOL_THREADS_DEFAULT = 2;
/** Password checks that may wait for a thread (each ~45 ms of CPU at cost 10: seconds of work at most). */
export const HASH_QUEUE_MAX_DEFAULT = 256;

/**
 * The pool.
 *
 *   const h = new HashPool({ threads: 2, queueMax: 256 });
 *   const ok = await h.compare(password, storedHash);
 */
export class HashPool implements PasswordHasher {
  private pool: Piscina<HashTask, string | boolean> | undefined;
  private queued = 0;

  constructor(private readonly o: HashPoolOptions) {}

  private run(task: HashTask): Promise<string | boolean> {
    if (this.queued >= this.o.queueMax) return Promise.reject(Errors.TooManyRequests());
    this.pool ??= new Piscina<HashTask, string | boolean>({
      filename: this.o.filename ?? new URL('./hash_worker.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: this.o.threads,
      idleTimeout: 60_000,
      maxQueue: Number.POSITIVE_INFINITY,
      recordTiming: false,
    });
    this.queued++;
    return this.pool.run(task).finally(() => {
      this.queued--;
    });
  }

  /** Tasks accepted and not finished. */
  get pending(): number {
    return this.queued;
  }

  async hash(password: string, cost: number): Promise<string> {
    return (await this.run({ op: 'hash', password, cost })) as string;
  }

  async compare(password: string, hash: string): Promise<boolean> {
    return (await this.run({ op: 'compare', password, hash })) as boolean;
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = undefined;
    await p?.destroy();
  }
}
