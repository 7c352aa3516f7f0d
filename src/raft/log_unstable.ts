// The tail of the log that is not yet durable: entries (and possibly an incoming snapshot) that the next
// Ready hands to the caller for persisting. Once persisted, advance() moves them to Storage.

import { RaftInvariantError } from './errors.js';
import { type Entry, entrySizeBytes, type RaftLogger, type Snapshot } from './types.js';

/**
 * unstable.entries[i] has log index offset + i. When a snapshot is pending, offset = snapshot index + 1
 * and the entries (if any) follow it.
 */
export class Unstable {
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];
  offset: number;
  /**
   * `entries` was handed out (in a Ready) and must not change: the next append copies it first.
   * Otherwise appends go in place, so many proposals between two Readies cost linear, not quadratic, time.
   */
  entriesShared = false;

  constructor(
    offset: number,
    private readonly logger: RaftLogger,
  ) {
    this.offset = offset;
  }

  /** The first index if a snapshot is pending (its index + 1), else undefined. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot !== undefined ? this.snapshot.metadata.index + 1 : undefined;
  }

  /** The last index held here (last entry, else pending snapshot), or undefined. */
  maybeLastIndex(): number | undefined {
    if (this.entries.length !== 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== undefined) return this.snapshot.metadata.index;
    return undefined;
  }

  /** The term of entry i if known here, else undefined. */
  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset].term;
  }

  /**
   * Entries up to (i, t) were persisted. Ignored if entry i is no longer here with term t (it was replaced
   * by a conflicting append after the Ready was taken) — those new entries are not durable yet.
   */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined) return;
    if (gt === t && i >= this.offset) {
      this.entries = this.entries.slice(i + 1 - this.offset);
      this.entriesShared = false;
      this.offset = i + 1;
    }
  }

  /** The pending snapshot at index i was persisted. */
  stableSnapTo(i: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === i) this.snapshot = undefined;
  }

  /** Replaces everything with the snapshot. */
  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.entriesShared = false;
    this.snapshot = s;
  }

  /** Appends ents, first truncating anything at or after ents[0].index. */
  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0].index;
    if (after === this.offset + this.entries.length) {
      // The common case: a plain append.
      if (this.entriesShared) {
        this.entries = this.entries.concat(ents);
        this.entriesShared = false;
      } else {
        for (const e of ents) this.entries.push(e);
      }
    } else if (after <= this.offset) {
      this.logger.info(`replace the unstable entries from index ${after}`);
      this.offset = after;
      this.entries = ents.slice();
      this.entriesShared = false;
    } else {
      this.logger.info(`truncate the unstable entries before index ${after}`);
      this.entries = this.slice(this.offset, after).concat(ents);
      this.entriesShared = false;
    }
  }

  /** Entries [lo, hi), which must lie within the unstable entries. A copy. */
  slice(lo: number, hi: number): Entry[] {
    this.checkBounds(lo, hi);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }

  /**
   * The end (exclusive) of the longest run from lo (at most to hi) whose entry sizes, added to
   * usedBytes, stay within maxSizeBytes; at least lo+1 when nothing was used yet.
   */
  limitEnd(lo: number, hi: number, maxSizeBytes: number, usedBytes: number): number {
    this.checkBounds(lo, hi);
    let size = usedBytes;
    let end = lo;
    for (; end < hi; end++) {
      const s = entrySizeBytes(this.entries[end - this.offset]);
      if (size + s > maxSizeBytes && !(end === lo && usedBytes === 0)) break;
      size += s;
    }
    return end;
  }

  private checkBounds(lo: number, hi: number): void {
    if (lo > hi) throw new RaftInvariantError(`invalid unstable.slice ${lo} > ${hi}`);
    const upper = this.offset + this.entries.length;
    if (lo < this.offset || hi > upper) {
      throw new RaftInvariantError(`unstable.slice[${lo},${hi}) out of bound [${this.offset},${upper}]`);
    }
  }
}
