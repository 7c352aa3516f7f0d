// Revisions and their on-disk keys. A revision is (main, sub): main counts write transactions,
// sub numbers the changes inside one. On disk they are etcd's bbolt keys, byte for byte.

/** Bytes of a revision key: 8-byte big-endian main, '_', 8-byte big-endian sub. */
export const revBytesLen = 17;
/** A tombstone's key carries one more byte, the mark 't'. */
export const markedRevBytesLen = 18;
/** The tombstone mark byte, 't'. */
const tombstoneMark = 0x74;

const TWO_32 = 4294967296;

/** Writes the 17-byte key of (main, sub) into `out` at offset 0. */
export function writeRevBytes(out: Uint8Array, main: number, sub: number): void {
  writeU64(out, 0, main);
  out[8] = 0x5f; // '_'
  writeU64(out, 9, sub);
}

/** Marks the 17-byte key written into `out` (at least 18 bytes long) as a tombstone's. */
export function markRevBytesTombstone(out: Uint8Array): void {
  out[revBytesLen] = tombstoneMark;
}

/** A new key for revision (main, sub); with `tombstone` the 18-byte marked form. */
export function revKey(main: number, sub: number, tombstone = false): Buffer {
  const b = Buffer.allocUnsafe(tombstone ? markedRevBytesLen : revBytesLen);
  writeRevBytes(b, main, sub);
  if (tombstone) b[revBytesLen] = tombstoneMark;
  return b;
}

/** The main revision of a revision key. */
export function revKeyMain(b: Uint8Array): number {
  return readU64(b, 0);
}

/** The sub revision of a revision key. */
export function revKeySub(b: Uint8Array): number {
  return readU64(b, 9);
}

/** True for the 18-byte tombstone form. */
export function isTombstoneKey(b: Uint8Array): boolean {
  return b.length === markedRevBytesLen && b[revBytesLen] === tombstoneMark;
}

/** Throws unless `b` has the shape of a revision key (guards against reading a foreign file). */
export function assertRevKey(b: Uint8Array): void {
  if ((b.length !== revBytesLen && !isTombstoneKey(b)) || b[8] !== 0x5f) {
    throw new Error(`mvcc: malformed revision key ${Buffer.from(b).toString('hex')}`);
  }
}

/** Big-endian 8 bytes of a non-negative safe integer. */
export function writeU64(out: Uint8Array, off: number, v: number): void {
  if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v))) throw new Error(`mvcc: revision out of range: ${v}`);
  const hi = Math.floor(v / TWO_32);
  const lo = v - hi * TWO_32;
  out[off] = hi >>> 24;
  out[off + 1] = (hi >>> 16) & 0xff;
  out[off + 2] = (hi >>> 8) & 0xff;
  out[off + 3] = hi & 0xff;
  out[off + 4] = lo >>> 24;
  out[off + 5] = (lo >>> 16) & 0xff;
  out[off + 6] = (lo >>> 8) & 0xff;
  out[off + 7] = lo & 0xff;
}

/** Reads big-endian 8 bytes as a number; values past 2^53 are corruption. */
export function readU64(b: Uint8Array, off: number): number {
  const hi = ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
  const lo = ((b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7]) >>> 0;
  if (hi > 0x1fffff) throw new Error('mvcc: 64-bit value past 2^53');
  return hi * TWO_32 + lo;
}
