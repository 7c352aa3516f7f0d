// What raft reads from the durable log (the Storage interface) and MemoryStorage, the in-memory copy of
// everything since the last snapshot that the server rebuilds from its WAL on restart.

import { CompactedError, RaftInvariantError, SnapOutOfDateError, UnavailableError } from './errors.js';
import {
  cloneConfState,
  type ConfState,
  EMPTY_BYTES,
  type Entry,
  EntryType,
  emptyHardState,
  emptySnapshot,
  type HardState,
  entrySizeBytes,
  type Snapshot,
} from './types.js';

/**
 * The durable log as raft sees it. Everything it returns must already be durable: raft treats entries
 * in Storage as persisted. Methods throw CompactedError / UnavailableError as documented; any other
 * exception is fatal to the member.
 */
export interface Storage {
  /** The persisted HardState and the ConfState of the latest snapshot. Called once at start. */
  initialState(): { hardState: HardState; confState: ConfState };
  /**
   * Entries [lo, hi) limited to maxSizeBytes in total (at least one entry if any are in range).
   * Throws CompactedError if lo ≤ the snapshot index, UnavailableError if there are no entries.
   */
  entries(lo: number, hi: number, maxSizeBytes: number): Entry[];
  /** Term of entry i, for i in [firstIndex()-1, lastIndex()]. CompactedError below, UnavailableError above. */
  term(i: number): number;
  /** Index of the last entry (the snapshot index when there are none). */
  lastIndex(): number;
  /** Index of the first entry still held (snapshot index + 1). */
  firstIndex(): number;
  /** The latest snapshot. May throw SnapshotTemporarilyUnavailableError (raft retries later). */
  snapshot(): Snapshot;
}

/**
 * Storage kept in memory. `ents[0]` is a dummy entry holding the snapshot's index and term, so term()
 * works at firstIndex()-1.
 *
 *   const s = new MemoryStorage();
 *   s.append(rd.entries); if (rd.hardState) s.setHardState(rd.hardState);
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = emptyHardState();
  private snap: Snapshot = emptySnapshot();
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES }];

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.snap.metadata.conf_state) };
  }

  /** Records the HardState (after it was made durable). */
  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw new CompactedError();
    if (hi > this.lastIndex() + 1) {
      throw new RaftInvariantError(`entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    }
    if (this.ents.length === 1) throw new UnavailableError();
    if (lo >= hi) return [];
    // Find the size-limited end first so only what is returned gets copied.
    let end = lo - offset;
    const last = hi - offset;
    let size = entrySizeBytes(this.ents[end]);
    end++;
    for (; end < last; end++) {
      size += entrySizeBytes(this.ents[end]);
      if (size > maxSizeBytes) break;
    }
    return this.ents.slice(lo - offset, end);
  }

  term(i: number): number {
    const offset = this.ents[0].index;
    if (i < offset) throw new CompactedError();
    if (i - offset >= this.ents.length) throw new UnavailableError();
    return this.ents[i - offset].term;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces everything with the snapshot (after it was made durable). Throws SnapOutOfDateError if older. */
  applySnapshot(snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) throw new SnapOutOfDateError();
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: EntryType.Normal, data: EMPTY_BYTES }];
  }

  /**
   * Makes a snapshot at index i (≤ lastIndex, > the current snapshot) holding `data` and the membership
   * `cs` (keeps the previous ConfState when cs is omitted). Does not compact; call compact() for that.
   */
  createSnapshot(i: number, cs: ConfState | undefined, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new SnapOutOfDateError();
    const offset = this.ents[0].index;
    if (i > this.lastIndex()) {
      throw new RaftInvariantError(`snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    }
    this.snap = {
      data,
      metadata: {
        index: i,
        term: this.ents[i - offset].term,
        conf_state: cs ? cloneConfState(cs) : this.snap.metadata.conf_state,
      },
    };
    return this.snap;
  }

  /** Drops entries before compactIndex (which becomes the dummy). Throws CompactedError if already gone. */
  compact(compactIndex: number): void {
    const offset = this.ents[0].index;
    if (compactIndex <= offset) throw new CompactedError();
    if (compactIndex > this.lastIndex()) {
      throw new RaftInvariantError(`compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    }
    const i = compactIndex - offset;
    const head = this.ents[i];
    const rest = this.ents.slice(i + 1);
    rest.unshift({ term: head.term, index: head.index, type: EntryType.Normal, data: EMPTY_BYTES });
    this.ents = rest;
  }

  /**
   * Appends entries (after they were made durable). Entries that overlap the log replace the existing
   * tail from their first index; entries already compacted are skipped.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return;
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    const offset = entries[0].index - this.ents[0].index;
    if (this.ents.length > offset) {
      this.ents.length = offset;
      for (const e of entries) this.ents.push(e);
    } else if (this.ents.length === offset) {
      for (const e of entries) this.ents.push(e);
    } else {
      throw new RaftInvariantError(`missing log entry [last: ${this.lastIndex()}, append at: ${entries[0].index}]`);
    }
  }
}
