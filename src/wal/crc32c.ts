// CRC-32C in TypeScript (slicing-by-8). Recovery uses the addon's hardware CRC; this one is the cross-check in
// tests and the comparison in bench/wal (see bench/RESULTS.md, WAL section, for the recovery-time numbers).

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

/** Extends `crc` over bytes [start, end) of `buf`, e.g. `crc32cJs(0, Buffer.from('123456789'))` is 0xe3069283. */
export function crc32cJs(crc: number, buf: Uint8Array, start = 0, end = buf.length): number {
  let c = ~crc;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ c;
    const hi = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
    c =
      table[7 * 256 + (lo & 0xff)]! ^ table[6 * 256 + ((lo >>> 8) & 0xff)]! ^
      table[5 * 256 + ((lo >>> 16) & 0xff)]! ^ table[4 * 256 + (lo >>> 24)]! ^
      table[3 * 256 + (hi & 0xff)]! ^ table[2 * 256 + ((hi >>> 8) & 0xff)]! ^
      table[256 + ((hi >>> 16) & 0xff)]! ^ table[hi >>> 24]!;
  }
  for (; i < end; i++) c = (c >>> 8) ^ table[(c ^ buf[i]!) & 0xff]!;
  return ~c >>> 0;
}
