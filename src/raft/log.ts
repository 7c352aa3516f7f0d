// The Raft log as the algorithm sees it: durable entries in Storage followed by the unstable tail, plus
// the commit and applied cursors.

import { CompactedError, RaftInvariantError, UnavailableError } from './errors.js';
import { Unstable } from './log_unstable.js';
import type { Storage } from './storage.js';
import { type Entry, entrySizeBytes, limitSize, type RaftLogger, type Snapshot } from './types.js';

/** No size limit. */
export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/** Entries 1..lastIndex(): storage holds [firstIndex, unstable.offset), unstable the rest. */
export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known to be on a quorum of durable logs. */
  committed: number;
  /** Highest index the application has applied. applied ≤ committed. */
  applied: number;
  /**
   * Highest index handed to the application to apply (in an outstanding Ready). applied ≤ applying ≤
   * committed; applied < applying while a Ready is being handled.
   */
  applying: number;

  constructor(
    readonly storage: Storage,
    private readonly logger: RaftLogger,
    /** Limit on the bytes of committed entries handed out in one Ready. */
    private readonly maxNextEntsSizeBytes: number = NO_LIMIT,
  ) {
    const firstIndex = storage.firstIndex();
    const lastIndex = storage.lastIndex();
    this.unstable = new Unstable(lastIndex + 1, logger);
    this.committed = firstIndex - 1;
    this.applied = firstIndex - 1;
    this.applying = firstIndex - 1;
  }

  toString(): string {
    return `committed=${this.committed}, applied=${this.applied}, unstable.offset=${this.unstable.offset}, len(unstable.Entries)=${this.unstable.entries.length}`;
  }

  /**
   * Appends ents after (index, logTerm) if the log has that entry, truncating any conflicting suffix,
   * and moves the commit index to min(committed, last new index). Returns the last new index, or
   * undefined when (index, logTerm) does not match (the caller rejects the append).
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNewIndex = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) {
        throw new RaftInvariantError(`entry ${ci} conflict with committed entry [committed(${this.committed})]`);
      }
      const offset = index + 1;
      this.append(ci - offset === 0 ? ents : ents.slice(ci - offset));
    }
    this.commitTo(Math.min(committed, lastNewIndex));
    return lastNewIndex;
  }

  /** Appends ents (which may overwrite an uncommitted suffix). Returns the new last index. */
  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    if (after < this.committed) {
      throw new RaftInvariantError(`after(${after}) is out of range [committed(${this.committed})]`);
    }
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry of ents that is missing from the log or has a different term there,
   * or 0 when all are present. ents must be contiguous.
   */
  findConflict(ents: Entry[]): number {
    for (const ne of ents) {
      if (!this.matchTerm(ne.index, ne.term)) {
        if (ne.index <= this.lastIndex()) {
          this.logger.info(
            `found conflict at index ${ne.index} [existing term: ${this.zeroTermOnCompacted(ne.index)}, conflicting term: ${ne.term}]`,
          );
        }
        return ne.index;
      }
    }
    return 0;
  }

  /**
   * The largest index ≤ index whose term is ≤ term (terms below the log read as 0, so it stops there).
   * Used to skip a whole divergent term at once when an append is rejected.
   */
  findConflictByTerm(index: number, term: number): number {
    const li = this.lastIndex();
    if (index > li) return index;
    for (;;) {
      let t: number;
      try {
        t = this.term(index);
      } catch (e) {
        if (e instanceof CompactedError || e instanceof UnavailableError) break;
        throw e;
      }
      if (t <= term) break;
      index--;
    }
    return index;
  }

  /** The entries not yet durable, for the next Ready. The array is never mutated afterwards. */
  unstableEntries(): Entry[] {
    // Marked shared even when empty: a Ready holding this (empty) array must not see later appends,
    // or advance() would take entries proposed after ready() as persisted.
    this.unstable.entriesShared = true;
    return this.unstable.entries;
  }

  /** Committed entries not yet applied (size-limited), for the next Ready. */
  nextEnts(): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 > off) return this.slice(off, this.committed + 1, this.maxNextEntsSizeBytes);
    return [];
  }

  /** True when nextEnts() would return something. */
  hasNextEnts(): boolean {
    return this.committed + 1 > Math.max(this.applied + 1, this.firstIndex());
  }

  /** The pending snapshot if any, else Storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /**
   * The last index known durable: everything before the unstable tail. Nothing while an unpersisted
   * snapshot is pending, because Storage then describes a different log.
   */
  persistedIndex(): number {
    if (this.unstable.snapshot !== undefined) return 0;
    return this.unstable.offset - 1;
  }

  /** Moves the commit index up to tocommit (never down). */
  commitTo(tocommit: number): void {
    if (this.committed < tocommit) {
      if (this.lastIndex() < tocommit) {
        throw new RaftInvariantError(
          `tocommit(${tocommit}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`,
        );
      }
      this.committed = tocommit;
    }
  }

  /** The application applied everything up to i. */
  appliedTo(i: number): void {
    if (i === 0) return;
    if (this.committed < i || i < this.applied) {
      throw new RaftInvariantError(`applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    }
    this.applied = i;
    if (this.applying < i) this.applying = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /**
   * The term of entry i: 0 outside [firstIndex-1, lastIndex]; throws CompactedError / UnavailableError
   * when Storage no longer (or not yet) has it.
   */
  term(i: number): number {
    const dummyIndex = this.firstIndex() - 1;
    if (i < dummyIndex || i > this.lastIndex()) return 0;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    return this.storage.term(i);
  }

  /** term(i), with 0 for a compacted index. */
  zeroTermOnCompacted(i: number): number {
    try {
      return this.term(i);
    } catch (e) {
      if (e instanceof CompactedError) return 0;
      throw e;
    }
  }

  /** Entries from i to the end, size-limited. Throws CompactedError if i was compacted. */
  entries(i: number, maxSizeBytes: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSizeBytes);
  }

  /** Every entry held (firstIndex..lastIndex). */
  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), NO_LIMIT);
  }

  /** True when a log ending at (lasti, term) is at least as up to date as this one (Raft §5.4.1). */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  /** True when entry i exists here with this term. */
  matchTerm(i: number, term: number): boolean {
    let t: number;
    try {
      t = this.term(i);
    } catch (e) {
      if (e instanceof CompactedError || e instanceof UnavailableError) return false;
      throw e;
    }
    return t === term;
  }

  /** Commits maxIndex if it is above the commit index and from `term` (only current-term entries count). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.zeroTermOnCompacted(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Replaces the log with a snapshot (pending until persisted). */
  restore(s: Snapshot): void {
    this.logger.info(`log [${this.toString()}] starts to restore snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries [lo, hi) size-limited. Throws CompactedError when lo was compacted. */
  slice(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    this.checkOutOfBounds(lo, hi);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    const uoff = this.unstable.offset;
    if (lo < uoff) {
      const storedHi = Math.min(hi, uoff);
      let stored: Entry[];
      try {
        stored = this.storage.entries(lo, storedHi, maxSizeBytes);
      } catch (e) {
        if (e instanceof UnavailableError) {
          throw new RaftInvariantError(`entries[${lo}:${storedHi}) is unavailable from storage`);
        }
        throw e;
      }
      // Storage already stopped at the size limit: nothing from the unstable part fits.
      if (stored.length < storedHi - lo) return stored;
      // A Storage implementation may ignore the limit; enforce it here.
      ents = limitSize(stored, maxSizeBytes);
      if (ents.length < stored.length) return ents;
    }
    if (hi > uoff) {
      let used = 0;
      for (const e of ents) used += entrySizeBytes(e);
      const from = Math.max(lo, uoff);
      // Copy only what fits.
      const end = this.unstable.limitEnd(from, hi, maxSizeBytes, used);
      if (end > from) {
        const unstable = this.unstable.slice(from, end);
        ents = ents.length > 0 ? ents.concat(unstable) : unstable;
      }
    }
    return ents;
  }

  private checkOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) throw new RaftInvariantError(`invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new CompactedError();
    const li = this.lastIndex();
    if (hi > li + 1) throw new RaftInvariantError(`slice[${lo},${hi}) out of bound [${fi},${li}]`);
  }
}
