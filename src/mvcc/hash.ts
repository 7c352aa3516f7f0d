// CRC-32C (Castagnoli), incremental: the checksum etcd's HashKV computes over the key bucket.

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/**
 * Continues a CRC-32C over `data`. Start with crc = 0; the result is the finished checksum and
 * can be passed back in to continue it (like Go's crc32.Update).
 *
 *   let h = crc32c(0, a); h = crc32c(h, b); // == crc32c(0, a ++ b)
 */
export function crc32c(crc: number, data: Uint8Array): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
