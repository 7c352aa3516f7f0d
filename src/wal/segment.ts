// Segment file names (%016x-%016x.wal: sequence number, first Raft index) and directory listing.
import { readdirSync } from 'node:fs';

/** A segment file found in the WAL directory. */
export interface SegmentName {
  name: string;
  seq: number;
  firstIndex: number;
}

const NAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

/** File name of segment `seq` whose first entry is `firstIndex`, e.g. segmentName(1, 0x20) = '0000000000000001-0000000000000020.wal'. */
export function segmentName(seq: number, firstIndex: number): string {
  return `${seq.toString(16).padStart(16, '0')}-${firstIndex.toString(16).padStart(16, '0')}.wal`;
}

/** Parses a segment file name; undefined for anything else (temp files, strangers). */
export function parseSegmentName(name: string): SegmentName | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  const seq = Number.parseInt(m[1]!, 16);
  const firstIndex = Number.parseInt(m[2]!, 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return undefined;
  return { name, seq, firstIndex };
}

/** Segments of `names` in sequence order. */
export function sortSegments(names: readonly string[]): SegmentName[] {
  const out: SegmentName[] = [];
  for (const n of names) {
    const s = parseSegmentName(n);
    if (s) out.push(s);
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/** Sorted segments in `dir` (startup only: synchronous). */
export function listSegments(dir: string): SegmentName[] {
  return sortSegments(readdirSync(dir));
}

/** Index into `segs` of the segment recovery from snapshot index `index` starts at: the newest segment whose first
 *  index is at most `index` (later segments can only hold entries after it, earlier ones only older ones). -1: none. */
export function searchStartSegment(segs: readonly SegmentName[], index: number): number {
  for (let i = segs.length - 1; i >= 0; i--) if (segs[i]!.firstIndex <= index) return i;
  return -1;
}
