// HPACK (RFC 7541) for the raw HTTP/2 engine (api/h2/session.ts) and the bench's client: a complete
// decoder (static and dynamic table, Huffman strings, table size updates) so any peer's header blocks can
// be read, and a stateless encoder (indexed static entries and literals without indexing), so a block
// encoded once can be sent on any connection.
import { HUFFMAN_CODES } from './huffman-codes.js';

/** A malformed header block; the connection that sent it cannot be trusted further. */
export class HpackError extends Error {}

/** RFC 7541 Appendix A: index i + 1 is STATIC_TABLE[i]. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** Per-entry overhead counted against the dynamic table size (RFC 7541 §4.1). */
const ENTRY_OVERHEAD_BYTES = 32;
/** Longest header string the decoder accepts; a response header is far smaller. */
const STRING_BYTES_MAX = 64 * 1024;

// ---- Huffman ----

/** Decoding tree: node n has children TREE[2n] (bit 0) and TREE[2n + 1] (bit 1); a child < 0 is leaf -(symbol + 1). */
const EOS = 256;
const TREE = buildTree();

function buildTree(): Int32Array {
  const tree = new Int32Array(2 * 512);
  let nodes = 1;
  const insert = (sym: number, code: number, bits: number): void => {
    let n = 0;
    for (let i = bits - 1; i >= 0; i--) {
      const slot = 2 * n + ((code >>> i) & 1);
      if (i === 0) {
        if (tree[slot] !== 0) throw new Error('hpack: Huffman table is not prefix-free');
        tree[slot] = -(sym + 1);
      } else {
        if (tree[slot] < 0) throw new Error('hpack: Huffman table is not prefix-free');
        if (tree[slot] === 0) tree[slot] = nodes++;
        n = tree[slot];
      }
    }
  };
  for (let s = 0; s < 256; s++) insert(s, HUFFMAN_CODES[2 * s], HUFFMAN_CODES[2 * s + 1]);
  insert(EOS, 0x3fffffff, 30);
  return tree;
}

/** Decodes a Huffman-coded string to latin1 text; rejects EOS inside the data and bad padding. */
export function huffmanDecode(src: Uint8Array, start: number, end: number): string {
  let out = '';
  let n = 0;
  let depth = 0;
  let allOnes = true;
  for (let i = start; i < end; i++) {
    const byte = src[i];
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >>> b) & 1;
      const next = TREE[2 * n + bit];
      if (next < 0) {
        const sym = -next - 1;
        if (sym === EOS) throw new HpackError('hpack: EOS in a Huffman string');
        out += String.fromCharCode(sym);
        n = 0;
        depth = 0;
        allOnes = true;
      } else {
        if (next === 0) throw new HpackError('hpack: invalid Huffman code');
        n = next;
        depth++;
        if (bit === 0) allOnes = false;
      }
    }
  }
  // Padding: at most 7 bits, all ones (a prefix of EOS).
  if (depth > 7 || !allOnes) throw new HpackError('hpack: bad Huffman padding');
  return out;
}

/** Huffman-encodes latin1 text (for tests and for callers that want compact literals). */
export function huffmanEncode(text: string): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    const s = text.charCodeAt(i) & 0xff;
    const code = HUFFMAN_CODES[2 * s];
    const len = HUFFMAN_CODES[2 * s + 1];
    for (let k = len - 1; k >= 0; k--) {
      acc = (acc << 1) | ((code >>> k) & 1);
      if (++bits === 8) {
        out.push(acc & 0xff);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | (0xff >>> bits)) & 0xff);
  return Uint8Array.from(out);
}

// ---- integers and strings ----

/** Appends an HPACK integer with an N-bit prefix; `first` holds the pattern bits above the prefix. */
export function encodeInt(out: number[], first: number, prefixBits: number, value: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(first | value);
    return;
  }
  out.push(first | max);
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function encodeRawString(out: number[], s: string): void {
  encodeInt(out, 0, 7, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/**
 * A header block that needs no decoder state: exact static matches are indexed, everything else is a
 * literal without indexing (with a static name index when there is one). So one block can be sent on any
 * connection, any number of times.
 *
 *   encodeStatelessBlock([[':method', 'POST'], [':path', '/etcdserverpb.KV/Put'], ['te', 'trailers']])
 */
export function encodeStatelessBlock(headers: readonly (readonly [string, string])[]): Uint8Array {
  const out: number[] = [];
  for (const [name, value] of headers) {
    let exact = 0;
    let nameOnly = 0;
    for (let i = 0; i < STATIC_TABLE.length; i++) {
      if (STATIC_TABLE[i][0] !== name) continue;
      if (nameOnly === 0) nameOnly = i + 1;
      if (STATIC_TABLE[i][1] === value) {
        exact = i + 1;
        break;
      }
    }
    if (exact > 0) {
      encodeInt(out, 0x80, 7, exact);
      continue;
    }
    if (nameOnly > 0) encodeInt(out, 0x00, 4, nameOnly);
    else {
      out.push(0x00);
      encodeRawString(out, name);
    }
    encodeRawString(out, value);
  }
  return Uint8Array.from(out);
}

// ---- decoder ----

/**
 * Decodes header blocks of one connection, keeping its dynamic table.
 *
 *   const d = new HpackDecoder(4096);
 *   const fields: string[] = [];
 *   d.decode(block, 0, block.length, fields);   // fields = [name0, value0, name1, value1, ...]
 */
export class HpackDecoder {
  /** Newest first. */
  private readonly dynamic: [string, string][] = [];
  private dynamicBytes = 0;
  private limitBytes: number;
  private maxBytes: number;
  private pos = 0;

  /** limitBytes: the SETTINGS_HEADER_TABLE_SIZE this side announced (the encoder may not exceed it). */
  constructor(limitBytes = 4096) {
    this.limitBytes = limitBytes;
    this.maxBytes = limitBytes;
  }

  /** Entries in the dynamic table (for tests). */
  get dynamicSize(): number {
    return this.dynamic.length;
  }

  /** Appends name, value pairs of the block src[start, end) to fields. Throws HpackError. */
  decode(src: Uint8Array, start: number, end: number, fields: string[]): void {
    this.pos = start;
    let mayResize = true;
    while (this.pos < end) {
      const b = src[this.pos];
      if (b & 0x80) {
        const idx = this.int(src, end, 7);
        const e = this.entry(idx);
        fields.push(e[0], e[1]);
        mayResize = false;
      } else if (b & 0x40) {
        const idx = this.int(src, end, 6);
        const name = idx === 0 ? this.str(src, end) : this.entry(idx)[0];
        const value = this.str(src, end);
        fields.push(name, value);
        this.add(name, value);
        mayResize = false;
      } else if (b & 0x20) {
        // A table size update is only allowed at the start of a block.
        if (!mayResize) throw new HpackError('hpack: table size update after a header field');
        const size = this.int(src, end, 5);
        if (size > this.limitBytes) throw new HpackError(`hpack: table size ${size} above the announced ${this.limitBytes}`);
        this.maxBytes = size;
        this.evict(0);
      } else {
        // 0000xxxx without indexing, 0001xxxx never indexed: same decoding.
        const idx = this.int(src, end, 4);
        const name = idx === 0 ? this.str(src, end) : this.entry(idx)[0];
        const value = this.str(src, end);
        fields.push(name, value);
        mayResize = false;
      }
    }
  }

  private int(src: Uint8Array, end: number, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let v = src[this.pos++] & max;
    if (v < max) return v;
    let shift = 0;
    for (;;) {
      if (this.pos >= end) throw new HpackError('hpack: truncated integer');
      const b = src[this.pos++];
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) return v;
      if (shift > 28) throw new HpackError('hpack: integer too large');
    }
  }

  private str(src: Uint8Array, end: number): string {
    if (this.pos >= end) throw new HpackError('hpack: truncated string');
    const huffman = (src[this.pos] & 0x80) !== 0;
    const len = this.int(src, end, 7);
    if (len > STRING_BYTES_MAX || this.pos + len > end) throw new HpackError('hpack: string overruns the block');
    const from = this.pos;
    this.pos += len;
    if (huffman) return huffmanDecode(src, from, from + len);
    if (src instanceof Buffer) return src.toString('latin1', from, from + len);
    let s = '';
    for (let i = from; i < from + len; i++) s += String.fromCharCode(src[i]);
    return s;
  }

  private entry(idx: number): readonly [string, string] {
    if (idx === 0) throw new HpackError('hpack: index 0');
    if (idx <= STATIC_TABLE.length) return STATIC_TABLE[idx - 1];
    const e = this.dynamic[idx - STATIC_TABLE.length - 1];
    if (e === undefined) throw new HpackError(`hpack: index ${idx} beyond the tables`);
    return e;
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD_BYTES;
    if (size > this.maxBytes) {
      // An entry larger than the table empties it and is not added (RFC 7541 §4.4).
      this.dynamic.length = 0;
      this.dynamicBytes = 0;
      return;
    }
    this.evict(size);
    this.dynamic.unshift([name, value]);
    this.dynamicBytes += size;
  }

  private evict(room: number): void {
    while (this.dynamic.length > 0 && this.dynamicBytes + room > this.maxBytes) {
      const e = this.dynamic.pop()!;
      this.dynamicBytes -= e[0].length + e[1].length + ENTRY_OVERHEAD_BYTES;
    }
  }
}
