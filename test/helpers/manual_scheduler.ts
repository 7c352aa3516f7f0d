// A Scheduler whose work runs only when a test says so: queued work on runQueued()/drain(), timers when
// the test moves the clock with advance(). The member's parts and the watch hub take it in place of
// Node's timers, so their tests need no real time.
import type { Scheduler } from '../../src/scheduler.js';

export class ManualScheduler implements Scheduler {
  private queue: Array<() => void> = [];
  private timers = new Map<number, { at: number; fn: () => void; every: number }>();
  private seq = 0;
  nowMs = 1_000_000;

  immediate(fn: () => void): void {
    this.queue.push(fn);
  }

  timeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.nowMs + ms, fn, every: 0 });
    return id;
  }

  interval(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.nowMs + ms, fn, every: ms });
    return id;
  }

  cancel(h: unknown): void {
    this.timers.delete(h as number);
  }

  now = (): number => this.nowMs;

  /** Runs what is queued now (not what that queues); true if anything ran. */
  runQueued(): boolean {
    const q = this.queue;
    this.queue = [];
    for (const fn of q) fn();
    return q.length > 0;
  }

  /** Runs queued work until none is left (what it queues included), at most `roundsMax` rounds. */
  drain(roundsMax = 1000): void {
    for (let i = 0; i < roundsMax && this.runQueued(); i++);
  }

  /** Moves the clock and fires the timers due. */
  advance(ms: number): void {
    this.nowMs += ms;
    for (const [id, t] of [...this.timers]) {
      if (t.at > this.nowMs) continue;
      if (t.every > 0) t.at += t.every;
      else this.timers.delete(id);
      t.fn();
    }
  }
}
