// Protobuf wire primitives shared by every generated codec in src/proto/.
// Writers size first and then fill one exact buffer; readers decode straight from the input
// (bytes fields are zero-copy views into it). Malformed input throws ProtoDecodeError, never
// anything else, so the API layer can turn it into InvalidArgument.

export const WireType = { Varint: 0, Fixed64: 1, Bytes: 2, StartGroup: 3, EndGroup: 4, Fixed32: 5 } as const;

const TWO_32 = 4294967296;

/** Malformed protobuf input. */
export class ProtoDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtoDecodeError';
  }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: false });

/** Bytes of a varint holding the unsigned 32-bit value v. */
export function sizeVarint32(v: number): number {
  v >>>= 0;
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

/** Bytes of an int64/uint64 varint holding the (safe-integer) number v; negatives take 10. */
export function sizeVarint64(v: number): number {
  if (v < 0) return 10;
  if (v < TWO_32) return sizeVarint32(v);
  let n = 5;
  v = Math.floor(v / 0x800000000); // 2^35: the first five bytes carry 35 bits
  while (v > 0) { n++; v = Math.floor(v / 128); }
  return n;
}

/** Bytes of a varint holding the 64-bit two's complement of v. */
export function sizeVarintBig(v: bigint): number {
  let u = BigInt.asUintN(64, v);
  let n = 1;
  while (u >= 128n) { n++; u >>= 7n; }
  return n;
}

/** Bytes of a length-delimited field body of `len` bytes, including its length prefix. */
export function sizeDelimited(len: number): number {
  return sizeVarint32(len) + len;
}

/** UTF-8 length of a string without encoding it. */
export function sizeString(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Fills a buffer whose exact size was computed beforehand. */
export class ProtoWriter {
  readonly buf: Uint8Array;
  pos: number;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
    this.pos = 0;
  }

  /** The filled buffer; asserts the size computed beforehand was exact. */
  finish(): Uint8Array {
    if (this.pos !== this.buf.length) throw new Error(`protobuf size mismatch: wrote ${this.pos} of ${this.buf.length}`);
    return this.buf;
  }

  tag(field: number, wireType: number): void {
    this.uint32(((field << 3) | wireType) >>> 0);
  }

  uint32(v: number): void {
    v >>>= 0;
    const b = this.buf;
    let p = this.pos;
    while (v > 127) { b[p++] = (v & 127) | 128; v >>>= 7; }
    b[p++] = v;
    this.pos = p;
  }

  /** int32 field: negatives are sign-extended to 10 bytes, as protobuf requires. */
  int32(v: number): void {
    if (v >= 0) this.uint32(v);
    else this.int64(v);
  }

  /** int64/uint64 field from a safe-integer number (negatives as 64-bit two's complement). */
  int64(v: number): void {
    if (v >= 0 && v < TWO_32) { this.uint32(v); return; }
    let hi = Math.floor(v / TWO_32);
    let lo = (v - hi * TWO_32) >>> 0;
    hi >>>= 0;
    const b = this.buf;
    let p = this.pos;
    while (hi > 0 || lo > 127) {
      b[p++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  /** int64/uint64 field from a bigint (IDs that do not fit a double). */
  int64Big(v: bigint): void {
    let u = BigInt.asUintN(64, v);
    const b = this.buf;
    let p = this.pos;
    while (u >= 128n) { b[p++] = Number(u & 127n) | 128; u >>= 7n; }
    b[p++] = Number(u);
    this.pos = p;
  }

  sint64(v: number): void {
    // zigzag on a double: 2v for v >= 0, -2v-1 for v < 0
    this.int64(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  bool(v: boolean): void {
    this.buf[this.pos++] = v ? 1 : 0;
  }

  fixed32(v: number): void {
    const b = this.buf, p = this.pos;
    b[p] = v & 255; b[p + 1] = (v >>> 8) & 255; b[p + 2] = (v >>> 16) & 255; b[p + 3] = (v >>> 24) & 255;
    this.pos = p + 4;
  }

  fixed64Big(v: bigint): void {
    const u = BigInt.asUintN(64, v);
    this.fixed32(Number(u & 0xffffffffn));
    this.fixed32(Number(u >> 32n));
  }

  double(v: number): void {
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).setFloat64(0, v, true);
    this.pos += 8;
  }

  /** Length-prefixed bytes. */
  bytes(v: Uint8Array): void {
    this.uint32(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  /** Raw bytes with no prefix (an already encoded message body). */
  raw(v: Uint8Array): void {
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  /** Length-prefixed UTF-8; `byteLength` is what sizeString returned for it. */
  string(v: string, byteLength: number): void {
    this.uint32(byteLength);
    if (byteLength > 0) {
      const { written } = textEncoder.encodeInto(v, this.buf.subarray(this.pos, this.pos + byteLength));
      if (written !== byteLength) throw new Error('protobuf string size mismatch');
    }
    this.pos += byteLength;
  }
}

/** Reads a message body in buf[pos, end). */
export class ProtoReader {
  buf: Uint8Array;
  pos: number;
  end: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  /** A field tag; the caller splits it into `tag >>> 3` and `tag & 7`. */
  tag(): number {
    return this.uint32();
  }

  uint32(): number {
    const b = this.buf;
    let p = this.pos;
    let v = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) throw new ProtoDecodeError('truncated varint');
      const byte = b[p++];
      if (shift < 28) v |= (byte & 127) << shift;
      else if (shift === 28) v |= (byte & 15) << 28; // keep the low 32 bits, as protobuf does
      if (byte < 128) break;
      shift += 7;
      if (shift > 63) throw new ProtoDecodeError('varint longer than 10 bytes');
    }
    this.pos = p;
    return v >>> 0;
  }

  int32(): number {
    return this.uint32() | 0;
  }

  /** Reads a 64-bit varint as (lo, hi) 32-bit halves. */
  private varint64(): [number, number] {
    const b = this.buf;
    let p = this.pos;
    let lo = 0, hi = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) throw new ProtoDecodeError('truncated varint');
      const byte = b[p++];
      if (shift < 28) lo |= (byte & 127) << shift;
      else if (shift === 28) { lo |= (byte & 15) << 28; hi |= (byte & 127) >>> 4; }
      else if (shift < 64) hi |= (byte & 127) << (shift - 32);
      if (byte < 128) break;
      shift += 7;
      if (shift > 63) throw new ProtoDecodeError('varint longer than 10 bytes');
    }
    this.pos = p;
    return [lo >>> 0, hi >>> 0];
  }

  /** int64 as a number; values outside ±2^53 cannot be represented and are rejected. */
  int64(): number {
    const b = this.buf;
    // Fast path: a varint of at most 4 bytes.
    const p = this.pos;
    if (p + 4 <= this.end) {
      const b0 = b[p];
      if (b0 < 128) { this.pos = p + 1; return b0; }
      const b1 = b[p + 1];
      if (b1 < 128) { this.pos = p + 2; return (b0 & 127) | (b1 << 7); }
      const b2 = b[p + 2];
      if (b2 < 128) { this.pos = p + 3; return (b0 & 127) | ((b1 & 127) << 7) | (b2 << 14); }
    }
    const [lo, hi] = this.varint64();
    const v = (hi | 0) * TWO_32 + lo;
    if (!Number.isSafeInteger(v)) throw new ProtoDecodeError('int64 value out of range');
    return v;
  }

  /** uint64 as a number; values above 2^53 are rejected. */
  uint64(): number {
    const [lo, hi] = this.varint64();
    const v = hi * TWO_32 + lo;
    if (!Number.isSafeInteger(v)) throw new ProtoDecodeError('uint64 value out of range');
    return v;
  }

  /** int64 as a signed bigint. */
  int64Big(): bigint {
    const [lo, hi] = this.varint64();
    return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
  }

  /** uint64 as an unsigned bigint. */
  uint64Big(): bigint {
    const [lo, hi] = this.varint64();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  sint64(): number {
    const [lo, hi] = this.varint64();
    const u = hi * TWO_32 + lo;
    const v = lo & 1 ? -(u + 1) / 2 : u / 2;
    if (!Number.isSafeInteger(v)) throw new ProtoDecodeError('sint64 value out of range');
    return v;
  }

  bool(): boolean {
    return this.uint32() !== 0;
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) throw new ProtoDecodeError('truncated fixed32');
    const b = this.buf, p = this.pos;
    this.pos = p + 4;
    return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
  }

  fixed64Big(): bigint {
    const lo = this.fixed32();
    const hi = this.fixed32();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new ProtoDecodeError('truncated double');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  /** Length-prefixed bytes as a view into the input (no copy). */
  bytes(): Uint8Array {
    const len = this.uint32();
    const start = this.pos;
    if (len > this.end - start) throw new ProtoDecodeError('length-delimited field runs past the end');
    this.pos = start + len;
    return this.buf.subarray(start, start + len);
  }

  string(): string {
    return textDecoder.decode(this.bytes());
  }

  /** The end offset of an embedded message that starts here (after its length prefix). */
  delimitedEnd(): number {
    const len = this.uint32();
    if (len > this.end - this.pos) throw new ProtoDecodeError('embedded message runs past the end');
    return this.pos + len;
  }

  /** Skips one field of the given wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.Varint:
        this.varint64();
        return;
      case WireType.Fixed64:
        if (this.pos + 8 > this.end) throw new ProtoDecodeError('truncated fixed64');
        this.pos += 8;
        return;
      case WireType.Bytes:
        this.bytes();
        return;
      case WireType.Fixed32:
        if (this.pos + 4 > this.end) throw new ProtoDecodeError('truncated fixed32');
        this.pos += 4;
        return;
      case WireType.StartGroup:
        for (;;) {
          const t = this.tag();
          if ((t & 7) === WireType.EndGroup) return;
          this.skip(t & 7);
        }
      default:
        throw new ProtoDecodeError(`invalid wire type ${wireType}`);
    }
  }
}

/** An empty byte string, shared so decoded defaults cost no allocation. */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);
