// Clients waiting for their Raft entry to be applied, keyed by request ID. Bounded, and swept for
// timeouts by one timer instead of a timer per request (Map order is insertion order, so the
// oldest waiters are always at the front).
import { type EtcdError, Errors } from '../errors.js';

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: EtcdError): void;
  deadlineMs: number;
}

/**
 * Pending proposals.
 *
 *   const w = new WaitRegistry<Result>(100_000);
 *   const p = w.register(id, Date.now() + 7000); node.propose(data);
 *   // later, when the entry is applied:
 *   w.trigger(id, result);
 */
export class WaitRegistry<T> {
  private readonly waiters = new Map<bigint, Waiter<T>>();

  constructor(private readonly waitersMax: number) {}

  get size(): number {
    return this.waiters.size;
  }

  /** Registers a waiter; rejects at once with TooManyRequests when the registry is full. */
  register(id: bigint, deadlineMs: number): Promise<T> {
    if (this.waiters.size >= this.waitersMax) return Promise.reject(Errors.TooManyRequests());
    return new Promise<T>((resolve, reject) => {
      this.waiters.set(id, { resolve, reject, deadlineMs });
    });
  }

  has(id: bigint): boolean {
    return this.waiters.has(id);
  }

  /** Completes a waiter; false if nobody waits for id (another member proposed it, or it timed out). */
  trigger(id: bigint, value: T): boolean {
    const w = this.waiters.get(id);
    if (!w) return false;
    this.waiters.delete(id);
    w.resolve(value);
    return true;
  }

  fail(id: bigint, err: EtcdError): boolean {
    const w = this.waiters.get(id);
    if (!w) return false;
    this.waiters.delete(id);
    w.reject(err);
    return true;
  }

  /** Rejects every waiter whose deadline passed with the error `timeoutError()` returns. */
  sweep(nowMs: number, timeoutError: () => EtcdError): void {
    for (const [id, w] of this.waiters) {
      if (w.deadlineMs > nowMs) continue;
      this.waiters.delete(id);
      w.reject(timeoutError());
    }
  }

  /** Rejects everything (shutdown). */
  failAll(err: EtcdError): void {
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
  }
}
