// Linearizable reads by ReadIndex: all reads that arrive while one ReadIndex round is in flight share
// the next round (one heartbeat round for many reads), and each read is released once the applied
// index reaches the index its round returned.
import { type EtcdError, Errors } from '../errors.js';

interface Round {
  ctx: Uint8Array;
  waiters: Array<Waiter>;
  startedMs: number;
  lastRequestMs: number;
}

interface Waiter {
  resolve(): void;
  reject(err: EtcdError): void;
}

interface Parked {
  index: number;
  waiters: Waiter[];
}

export interface ReadIndexOptions {
  /** Asks Raft for a read index tagged with ctx (RawNode.readIndex). */
  requestReadIndex(ctx: Uint8Array): void;
  /** The applied index right now. */
  appliedIndex(): number;
  /** Re-ask when a round got no answer for this long (Raft drops it while there is no leader); etcd: 500 ms. */
  retryMs: number;
  /** Give up after this long (etcd: the request timeout). */
  timeoutMs: number;
  /** Most reads waiting at once; more get TooManyRequests. */
  waitersMax: number;
}

/**
 * Coalesces linearizable reads into ReadIndex rounds.
 *
 *   await reads.wait();      // in the Range handler, then read locally
 *   reads.onReadState(ctx, index);  reads.onApplied(applied);  // from the Ready loop
 */
export class ReadIndexBatcher {
  private pending: Waiter[] = [];
  private round: Round | undefined;
  private parked: Parked[] = [];
  private roundSeq = 0;
  private waiting = 0;

  constructor(private readonly opts: ReadIndexOptions) {}

  /** Resolves when a read issued now may be served from the local state machine. */
  wait(): Promise<void> {
    if (this.waiting >= this.opts.waitersMax) return Promise.reject(Errors.TooManyRequests());
    this.waiting++;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      if (!this.round) this.startRound(Date.now());
    });
  }

  private startRound(nowMs: number): void {
    const ctx = Buffer.allocUnsafe(8);
    ctx.writeDoubleBE(++this.roundSeq, 0);
    this.round = { ctx, waiters: this.pending, startedMs: nowMs, lastRequestMs: nowMs };
    this.pending = [];
    this.opts.requestReadIndex(ctx);
  }

  /** A ReadState came out of Raft's Ready. */
  onReadState(ctx: Uint8Array, index: number): void {
    const round = this.round;
    if (!round || Buffer.compare(round.ctx, ctx) !== 0) return; // an answer to a round we gave up on
    this.round = undefined;
    if (this.opts.appliedIndex() >= index) this.release(round.waiters);
    else this.parked.push({ index, waiters: round.waiters });
    if (this.pending.length > 0) this.startRound(Date.now());
  }

  /** The applied index moved; releases reads whose index is reached. */
  onApplied(applied: number): void {
    if (this.parked.length === 0) return;
    let kept = 0;
    for (const p of this.parked) {
      if (p.index <= applied) this.release(p.waiters);
      else this.parked[kept++] = p;
    }
    this.parked.length = kept;
  }

  private release(waiters: Waiter[]): void {
    this.waiting -= waiters.length;
    for (const w of waiters) w.resolve();
  }

  /** etcd_server_read_indexes_failed_total: reads whose ReadIndex failed (timeout, leader change, stop). */
  failed = 0;
  /** etcd_server_slow_read_indexes_total: ReadIndex rounds that timed out. */
  slow = 0;

  private failWaiters(waiters: Waiter[], err: EtcdError): void {
    this.waiting -= waiters.length;
    this.failed += waiters.length;
    for (const w of waiters) w.reject(err);
  }

  /** Called periodically: re-asks for an unanswered round, fails rounds that took too long. */
  tick(nowMs: number): void {
    const round = this.round;
    if (!round) return;
    if (nowMs - round.startedMs >= this.opts.timeoutMs) {
      this.round = undefined;
      this.slow++;
      this.failWaiters(round.waiters, Errors.Timeout());
      if (this.pending.length > 0) this.startRound(nowMs);
    } else if (nowMs - round.lastRequestMs >= this.opts.retryMs) {
      round.lastRequestMs = nowMs;
      this.opts.requestReadIndex(round.ctx);
    }
  }

  /** Fails everything in flight (leader change or shutdown). */
  failAll(err: EtcdError): void {
    if (this.round) this.failWaiters(this.round.waiters, err);
    this.round = undefined;
    this.failWaiters(this.pending, err);
    this.pending = [];
    for (const p of this.parked) this.failWaiters(p.waiters, err);
    this.parked = [];
  }
}
