// Auto-compaction as etcd 3.4 does it (--auto-compaction-mode/--auto-compaction-retention). Only the
// leader compacts (others keep sampling, so a new leader can start at once); compactions go through
// Raft like a client's. Driven by tick(nowMs) so tests run it without real time.
import type { Logger } from '../log.js';
import { EtcdError, Errors } from '../errors.js';

/** What a compactor needs from the member. */
export interface CompactorHost {
  currentRevision(): number;
  isLeader(): boolean;
  /** Proposes a compaction; rejects with etcd's errors. */
  compact(revision: number): Promise<void>;
  log: Logger;
}

/** A running compactor; the member calls tick() every tickIntervalMs. */
export interface Compactor {
  readonly tickIntervalMs: number;
  tick(nowMs: number): void;
}

const HOUR_MS = 3_600_000;
const RETRY_DIVISOR = 10;
/** How often revision mode looks (etcd: 5 minutes). */
const REVISION_CHECK_INTERVAL_MS = 5 * 60_000;

function isCompactedError(err: unknown): boolean {
  return err instanceof EtcdError && err.message === Errors.Compacted().message;
}

/**
 * Periodic mode: keeps a window of revisions sampled every min(period, 1h)/10 and, once per
 * min(period, 1h) (the first time after a whole period), compacts to the revision sampled one period ago.
 *
 *   const c = new PeriodicCompactor(3_600_000, host); setInterval(() => c.tick(Date.now()), c.tickIntervalMs);
 */
export class PeriodicCompactor implements Compactor {
  readonly tickIntervalMs: number;
  private readonly compactIntervalMs: number;
  private readonly retentions: number;
  private revs: number[] = [];
  private lastSuccessMs: number;
  private baseIntervalMs: number;
  private inflight = false;

  constructor(
    private readonly periodMs: number,
    private readonly host: CompactorHost,
    startMs: number,
  ) {
    if (!(periodMs > 0)) throw new RangeError('periodic compaction needs a positive period');
    this.compactIntervalMs = Math.min(periodMs, HOUR_MS);
    this.tickIntervalMs = this.compactIntervalMs / RETRY_DIVISOR;
    this.retentions = Math.floor(periodMs / this.tickIntervalMs) + 1;
    this.lastSuccessMs = startMs;
    this.baseIntervalMs = periodMs;
  }

  tick(nowMs: number): void {
    this.revs.push(this.host.currentRevision());
    if (this.revs.length > this.retentions) this.revs.shift(); // revs[0] is the revision one period ago
    if (this.inflight || !this.host.isLeader()) return;
    if (nowMs - this.lastSuccessMs < this.baseIntervalMs) return;
    this.baseIntervalMs = this.compactIntervalMs;
    const rev = this.revs[0];
    this.inflight = true;
    this.host.log.info('starting auto periodic compaction', { revision: rev, 'compact-period-ms': this.periodMs });
    this.host.compact(rev).then(
      () => this.done(nowMs, rev),
      (err: unknown) => {
        if (isCompactedError(err)) this.done(nowMs, rev);
        else {
          this.inflight = false;
          this.host.log.warn('failed auto periodic compaction', { revision: rev, 'retry-interval-ms': this.tickIntervalMs, error: err });
        }
      },
    );
  }

  private done(nowMs: number, rev: number): void {
    this.inflight = false;
    this.lastSuccessMs = nowMs;
    this.host.log.info('completed auto periodic compaction', { revision: rev });
  }
}

/**
 * Revision mode: every check interval, compacts to current − retention unless that revision was
 * already compacted by the previous check.
 */
export class RevisionCompactor implements Compactor {
  private prev = 0;
  private inflight = false;

  constructor(
    private readonly retention: number,
    private readonly host: CompactorHost,
    readonly tickIntervalMs = REVISION_CHECK_INTERVAL_MS,
  ) {
    if (!(retention > 0)) throw new RangeError('revision compaction needs a positive retention');
  }

  tick(_nowMs: number): void {
    if (this.inflight || !this.host.isLeader()) return;
    const rev = this.host.currentRevision() - this.retention;
    if (rev <= 0 || rev === this.prev) return;
    this.inflight = true;
    this.host.log.info('starting auto revision compaction', { revision: rev, 'revision-compaction-retention': this.retention });
    this.host.compact(rev).then(
      () => this.done(rev),
      (err: unknown) => {
        if (isCompactedError(err)) this.done(rev);
        else {
          this.inflight = false;
          this.host.log.warn('failed auto revision compaction', { revision: rev, error: err });
        }
      },
    );
  }

  private done(rev: number): void {
    this.inflight = false;
    this.prev = rev;
    this.host.log.info('completed auto revision compaction', { revision: rev });
  }
}
