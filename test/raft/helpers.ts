// Small builders shared by the raft unit tests.

import { MemoryStorage } from '../../src/raft/storage.js';
import { type ConfState, emptyConfState, type Entry, EntryType, type Snapshot } from '../../src/raft/types.js';

/** An entry with the given index and term (payload "i/t" unless given). */
export function ent(index: number, term: number, data?: string): Entry {
  return { index, term, type: EntryType.Normal, data: new TextEncoder().encode(data ?? '') };
}

/** Entries with these terms at indexes from..from+terms.length-1. */
export function ents(from: number, terms: number[]): Entry[] {
  return terms.map((t, i) => ent(from + i, t));
}

/** Storage holding a snapshot at (index, term) with these voters, then the given entries. */
export function storageWith(snapIndex: number, snapTerm: number, voters: bigint[], entries: Entry[] = []): MemoryStorage {
  const s = new MemoryStorage();
  if (snapIndex > 0) s.applySnapshot(snapshot(snapIndex, snapTerm, { ...emptyConfState(), voters }));
  s.append(entries);
  return s;
}

/** A snapshot with empty data. */
export function snapshot(index: number, term: number, cs: ConfState = emptyConfState()): Snapshot {
  return { data: new Uint8Array(0), metadata: { index, term, conf_state: cs } };
}

/** Index/term pairs of entries, for compact assertions. */
export function it(es: Entry[]): string {
  return es.map((e) => `${e.index}/${e.term}`).join(' ');
}
