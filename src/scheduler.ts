// Deferred work as the member's parts see it: Node's timers in production, a manual queue in deterministic
// tests (test/server/ready_loop.test.ts).

/** Deferred work: Node's timers in production, a manual queue in deterministic tests. */
export interface Scheduler {
  /** Runs fn after the current turn's I/O (setImmediate). */
  immediate(fn: () => void): void;
  /** Runs fn once after ms; the handle cancels it. */
  timeout(fn: () => void, ms: number): unknown;
  /** Runs fn every ms; the handle cancels it. */
  interval(fn: () => void, ms: number): unknown;
  cancel(handle: unknown): void;
  /** Milliseconds since the epoch. */
  now(): number;
}

/** Node's timers. */
export const nodeScheduler: Scheduler = {
  immediate: (fn) => {
    setImmediate(fn);
  },
  timeout: (fn, ms) => setTimeout(fn, ms),
  interval: (fn, ms) => setInterval(fn, ms),
  cancel: (h) => {
    clearTimeout(h as NodeJS.Timeout);
  },
  now: () => Date.now(),
};
