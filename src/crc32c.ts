// CRC-32C (Castagnoli) in TypeScript, slicing-by-8: the one implementation outside the addon. Its users: etcd's
// HashKV over the key bucket (mvcc), snapshot file checksums (server), the WAL tools, and the cross-check of the
// addon's hardware CRC in tests and bench/wal (WAL recovery itself uses the addon: bench/RESULTS.md, WAL section).

const table = new Int32Array(8 * 256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  table[i] = c;
}
for (let i = 0; i < 256; i++) {
  for (let s = 1; s < 8; s++) {
    const prev = table[(s - 1) * 256 + i]!;
    table[s * 256 + i] = (prev >>> 8) ^ table[prev & 0xff]!;
  }
}

/**
 * Extends `crc` over bytes [start, end) of `buf`. Start with crc = 0; the result is the finished checksum and can
 * be passed back in to continue it (like Go's crc32.Update).
 *
 *   crc32c(0, Buffer.from('123456789'))            // 0xe3069283
 *   let h = crc32c(0, a); h = crc32c(h, b);        // == crc32c(0, a ++ b)
 */
export function crc32c(crc: number, buf: Uint8Array, start = 0, end = buf.length): number {
  let c = ~crc;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ c;
    const hi = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
    c =
      table[7 * 256 + (lo & 0xff)]! ^
      table[6 * 256 + ((lo >>> 8) & 0xff)]! ^
      table[5 * 256 + ((lo >>> 16) & 0xff)]! ^
      table[4 * 256 + (lo >>> 24)]! ^
      table[3 * 256 + (hi & 0xff)]! ^
      table[2 * 256 + ((hi >>> 8) & 0xff)]! ^
      table[256 + ((hi >>> 16) & 0xff)]! ^
      table[hi >>> 24]!;
  }
  for (; i < end; i++) c = (c >>> 8) ^ table[(c ^ buf[i]!) & 0xff]!;
  return ~c >>> 0;
}
