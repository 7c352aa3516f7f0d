// Record framing on the TypeScript side: encoding what a save hands to the writer (CRCs are filled by the
// writer thread) and the verifying scan used by recovery. Layout and rationale: native/record.h.
import { WalCorruptError } from './errors.js';

export const HEADER_BYTES = 16;
export const MARKER = 0xa5;
const PAYLOAD_BYTES_MAX = 1 << 30;

/** Record types (native/record.h RecordType). */
export const RecordType = { crcCarry: 1, metadata: 2, hardState: 3, entry: 4, snapshot: 5 } as const;

export const ENTRY_HEAD_BYTES = 20; // index u64, term u64, entry type u32
export const HARD_STATE_BYTES = 24; // term u64, vote u64, commit u64
export const SNAPSHOT_BYTES = 16; // index u64, term u64

const TWO_32 = 0x1_0000_0000;

/** Size on disk of a record with `payloadBytes` of payload. */
export function recordBytes(payloadBytes: number): number {
  return (HEADER_BYTES + payloadBytes + 1 + 7) & ~7;
}

/** Writes a record's header (CRCs zero), zero padding and marker around a payload the caller writes at
 *  `at + HEADER_BYTES`. Returns the offset after the record. */
export function frameRecord(buf: Uint8Array, view: DataView, at: number, type: number, payloadBytes: number): number {
  const size = recordBytes(payloadBytes);
  view.setUint32(at, payloadBytes, true);
  view.setUint32(at + 4, type, true); // type byte then three reserved zero bytes
  view.setUint32(at + 8, 0, true);
  view.setUint32(at + 12, 0, true);
  const padStart = at + HEADER_BYTES + payloadBytes;
  buf.fill(0, padStart, at + size - 1);
  buf[at + size - 1] = MARKER;
  return at + size;
}

/** Stores a non-negative safe integer as u64 LE without going through BigInt. */
export function setU64(view: DataView, at: number, n: number): void {
  view.setUint32(at, n >>> 0, true);
  view.setUint32(at + 4, Math.floor(n / TWO_32), true);
}

/** Reads a u64 LE that must be a safe integer. */
export function getU64(view: DataView, at: number): number {
  const hi = view.getUint32(at + 4, true);
  if (hi > 0x1fffff) throw new RangeError('u64 beyond 2^53');
  return hi * TWO_32 + view.getUint32(at, true);
}

/** One verified record of a segment: where its payload is in the segment's buffer. */
export interface ScannedRecord {
  type: number;
  offset: number;
  payloadStart: number;
  payloadEnd: number;
}

/** Result of scanning one segment. `endOffset` is where valid records end; `torn` says a torn tail was found
 *  there (only ever in the last segment). */
export interface SegmentScan {
  records: ScannedRecord[];
  endOffset: number;
  chain: number;
  torn: boolean;
}

export type CrcFn = (seed: number, buf: Uint8Array, start: number, end: number) => number;

const ZERO_CHUNK = new Uint8Array(64 * 1024);
/** The unit a disk may keep or lose on its own at a power loss (tools/powerloss tears at this size too). */
const TORN_PAGE_BYTES = 4096;
/**
 * Farther than this past the end of the valid records, a non-zero byte is damage, not a torn write: the
 * writer has one write in flight at a time, a batch of at most --wal-batch-max-bytes (1 MiB by default) or
 * one append larger than that (bounded by the request size limits).
 */
const TORN_WRITE_BYTES_MAX = 8 * 1024 * 1024;

/** True if buf[start, end) holds only zero bytes (memcmp against a zero chunk). */
export function allZero(buf: Uint8Array, start: number, end: number): boolean {
  if (end - start <= 64) {
    for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
    return true;
  }
  for (let at = start; at < end; at += ZERO_CHUNK.length) {
    const stop = Math.min(end, at + ZERO_CHUNK.length);
    if (Buffer.compare(buf.subarray(at, stop), ZERO_CHUNK.subarray(0, stop - at)) !== 0) return false;
  }
  return true;
}

/**
 * Verifies every byte of one segment and lists its records. `chainIn` is the chain value the previous segment
 * ended with (undefined for the first segment read: its carry record is trusted to state it). A record that
 * fails verification is a torn tail only in the last segment and only if what a crash leaves is consistent with
 * it: nothing but zeros after it and its final marker byte never written; anything else throws WalCorruptError.
 */
export function scanSegment(buf: Uint8Array, file: string, chainIn: number | undefined, isLast: boolean, crc: CrcFn): SegmentScan {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: ScannedRecord[] = [];
  let chain = chainIn ?? 0;
  let at = 0;
  const n = buf.length;
  const corrupt = (why: string) => new WalCorruptError(file, at, why);
  /**
   * A power loss, unlike a process crash, can keep a later page of the last unsynced write and lose an
   * earlier one (the disk writes pages in any order). Such a tail starting at `from` is torn, not damaged,
   * when a lost page shows where the write broke off — zeros from `from` to its page's end, or a whole zero
   * page inside the record `from` starts (up to `recordEnd`) — and nothing non-zero lies further than one
   * write could reach.
   */
  const pageTorn = (from: number, recordEnd: number): boolean => {
    if (!isLast) return false;
    let last = n - 1;
    while (last >= from && buf[last] === 0) last--;
    if (last >= from + TORN_WRITE_BYTES_MAX) return false;
    const pageEnd = (Math.floor(from / TORN_PAGE_BYTES) + 1) * TORN_PAGE_BYTES;
    if (allZero(buf, from, Math.min(pageEnd, n))) return true;
    for (let p = pageEnd; p < Math.min(recordEnd, n); p += TORN_PAGE_BYTES) {
      if (allZero(buf, p, Math.min(p + TORN_PAGE_BYTES, n))) return true;
    }
    return false;
  };
  const tornOr = (why: string, tornOk: boolean): SegmentScan => {
    if (isLast && tornOk) return { records, endOffset: at, chain, torn: true };
    throw corrupt(why);
  };
  while (at < n) {
    if (n - at < HEADER_BYTES) {
      if (allZero(buf, at, n)) break;
      return tornOr('truncated record header', true);
    }
    if (allZero(buf, at, at + HEADER_BYTES)) {
      // End of the records. What follows must be untouched preallocated space: zeros only.
      if (!allZero(buf, at + HEADER_BYTES, n)) {
        if (pageTorn(at, at)) return { records, endOffset: at, chain, torn: true };
        let bad = at + HEADER_BYTES;
        while (buf[bad] === 0) bad++;
        throw new WalCorruptError(file, bad, `non-zero byte after the end of the records (at ${at})`);
      }
      break;
    }
    const headerCrc = view.getUint32(at + 12, true);
    if (crc(0, buf, at, at + 12) !== headerCrc) {
      // A header cut short by a crash leaves only zeros behind it; a damaged header of a written record does not
      // (at least its marker byte follows).
      return tornOr('header checksum mismatch', allZero(buf, at + HEADER_BYTES, n) || pageTorn(at, at + HEADER_BYTES));
    }
    const len = view.getUint32(at, true);
    const type = buf[at + 4]!;
    if (
      type < RecordType.crcCarry ||
      type > RecordType.snapshot ||
      buf[at + 5] !== 0 ||
      buf[at + 6] !== 0 ||
      buf[at + 7] !== 0 ||
      len > PAYLOAD_BYTES_MAX
    ) {
      throw corrupt(`bad record header (type ${type}, length ${len})`);
    }
    const size = recordBytes(len);
    if (at + size > n) return tornOr(`record of ${size} bytes runs past the end of the file`, true);
    const dataCrc = view.getUint32(at + 8, true);
    const end = at + size;
    let seed = chain;
    if (type === RecordType.crcCarry) {
      if (at !== 0) throw corrupt('checksum carry record inside a segment');
      if (len !== 4) throw corrupt('checksum carry record of wrong length');
      const carried = view.getUint32(at + HEADER_BYTES, true);
      seed = 0; // carries are checksummed on their own; see native/record.h
      if (chainIn !== undefined && carried !== chainIn)
        throw corrupt(`checksum chain broken: segment starts from ${carried}, previous ended at ${chainIn}`);
    } else if (at === 0) {
      throw corrupt('segment does not start with a checksum carry record');
    }
    if (buf[end - 1] !== MARKER || crc(seed, buf, at + HEADER_BYTES, end) !== dataCrc || !allZero(buf, at + HEADER_BYTES + len, end - 1)) {
      return tornOr('data checksum mismatch', (buf[end - 1] === 0 && allZero(buf, end, n)) || pageTorn(at, end));
    }
    chain = type === RecordType.crcCarry ? view.getUint32(at + HEADER_BYTES, true) : dataCrc;
    records.push({ type, offset: at, payloadStart: at + HEADER_BYTES, payloadEnd: at + HEADER_BYTES + len });
    at = end;
  }
  return { records, endOffset: at, chain, torn: false };
}
