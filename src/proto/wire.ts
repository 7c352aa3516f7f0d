// Protobuf wire primitives shared by every generated codec in src/proto/.
// Writers size first and then fill one exact buffer; readers decode straight from the input
// (bytes fields are zero-copy views into it). Malformed input throws ProtoDecodeError, never
// anything else, so the API layer can turn it into InvalidArgument.

export const WireType = { Varint: 0, Fixed64: 1, Bytes: 2, StartGroup: 3, EndGroup: 4, Fixed32: 5 } as const;

const TWO_32 = 4294967296;

/**
 * How deep self-referencing messages (a txn inside a txn) and unknown groups may nest before a
 * decoder gives up. Bounds the recursion, so hostile input cannot overflow the stack. 100 is the
 * C++ protobuf default; every level of a nested txn counts twice (TxnRequest and RequestOp).
 */
export const nestingDepthMax = 100;

/** Malformed protobuf (or protobuf JSON) input. */
export class ProtoDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtoDecodeError';
  }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: false });

// Scratch space for float/double conversion, so no DataView is created per value.
const scratchF64 = new Float64Array(1);
const scratchF32 = new Float32Array(1);
const scratchF64Bytes = new Uint8Array(scratchF64.buffer);
const scratchF32Bytes = new Uint8Array(scratchF32.buffer);

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
  // bits = 32 + bit length of the high word; 7 bits per byte
  return Math.ceil((64 - Math.clz32(Math.floor(v / TWO_32))) / 7);
}

/** Bytes of an int32 field's varint: negatives are sign-extended to 10 bytes. */
export function sizeInt32(v: number): number {
  return v < 0 ? 10 : sizeVarint32(v);
}

// Splitting a bigint into 32-bit halves costs several BigInt operations, and most bigints written
// are the same two IDs in every response header (cluster and member). Remembering the last two
// splits makes those nearly free; the initial entries are valid splits of -1n.
let splitKey0 = -1n,
  splitLo0 = 0xffffffff,
  splitHi0 = 0xffffffff;
let splitKey1 = -1n,
  splitLo1 = 0xffffffff,
  splitHi1 = 0xffffffff;
let splitNext = 0;
let splitLo = 0,
  splitHi = 0;

/** Sets splitLo/splitHi to the unsigned 32-bit halves of v's 64-bit two's complement. */
function splitBig(v: bigint): void {
  if (v === splitKey0) {
    splitLo = splitLo0;
    splitHi = splitHi0;
    return;
  }
  if (v === splitKey1) {
    splitLo = splitLo1;
    splitHi = splitHi1;
    return;
  }
  const u = BigInt.asUintN(64, v);
  splitLo = Number(u & 0xffffffffn);
  splitHi = Number(u >> 32n);
  if (splitNext === 0) {
    splitKey0 = v;
    splitLo0 = splitLo;
    splitHi0 = splitHi;
    splitNext = 1;
  } else {
    splitKey1 = v;
    splitLo1 = splitLo;
    splitHi1 = splitHi;
    splitNext = 0;
  }
}

/** Bytes of a varint holding the 64-bit two's complement of v. */
export function sizeVarintBig(v: bigint): number {
  splitBig(v);
  if (splitHi === 0) return sizeVarint32(splitLo);
  return Math.ceil((64 - Math.clz32(splitHi)) / 7);
}

/** Bytes of a sint32 (zigzag) varint. */
export function sizeSint32(v: number): number {
  return sizeVarint32(((v << 1) ^ (v >> 31)) >>> 0);
}

/** Bytes of a sint64 (zigzag) varint from a safe-integer number. */
export function sizeSint64(v: number): number {
  // |v| < 2^53, so 2|v| < 2^54 is exact: no 64-bit split needed just to size it.
  return sizeVarint64(v >= 0 ? v * 2 : -v * 2 - 1);
}

/** Bytes of a sint64 (zigzag) varint from a bigint. */
export function sizeSint64Big(v: bigint): number {
  const s = BigInt.asIntN(64, v);
  return sizeVarintBig(s >= 0n ? s << 1n : (-s << 1n) - 1n);
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
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  /** int32 field: negatives are sign-extended to 10 bytes, as protobuf requires. */
  int32(v: number): void {
    if (v >= 0) this.uint32(v);
    else this.varint64(v >>> 0, 0xffffffff);
  }

  /** sint32 field (zigzag). */
  sint32(v: number): void {
    this.uint32(((v << 1) ^ (v >> 31)) >>> 0);
  }

  /** int64/uint64 field from a safe-integer number (negatives as 64-bit two's complement). */
  int64(v: number): void {
    if (v >= 0 && v < TWO_32) {
      this.uint32(v);
      return;
    }
    const hi = Math.floor(v / TWO_32);
    this.varint64((v - hi * TWO_32) >>> 0, hi >>> 0);
  }

  /** int64/uint64 field from a bigint (IDs that do not fit a double). */
  int64Big(v: bigint): void {
    splitBig(v);
    this.varint64(splitLo, splitHi);
  }

  /** sint64 field (zigzag) from a safe-integer number. */
  sint64(v: number): void {
    const hi = Math.floor(v / TWO_32);
    const lo = (v - hi * TWO_32) >>> 0;
    const sign = hi >> 31; // all ones when negative
    this.varint64(((lo << 1) ^ sign) >>> 0, (((hi << 1) | (lo >>> 31)) ^ sign) >>> 0);
  }

  /** sint64 field (zigzag) from a bigint. */
  sint64Big(v: bigint): void {
    const s = BigInt.asIntN(64, v);
    this.int64Big(s >= 0n ? s << 1n : (-s << 1n) - 1n);
  }

  /** A varint from the two 32-bit halves of a 64-bit value. */
  private varint64(lo: number, hi: number): void {
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

  bool(v: boolean): void {
    this.buf[this.pos++] = v ? 1 : 0;
  }

  /** fixed32 and sfixed32 fields. */
  fixed32(v: number): void {
    const b = this.buf,
      p = this.pos;
    b[p] = v & 255;
    b[p + 1] = (v >>> 8) & 255;
    b[p + 2] = (v >>> 16) & 255;
    b[p + 3] = (v >>> 24) & 255;
    this.pos = p + 4;
  }

  /** fixed64 and sfixed64 fields from a safe-integer number. */
  fixed64(v: number): void {
    const hi = Math.floor(v / TWO_32);
    this.fixed32((v - hi * TWO_32) >>> 0);
    this.fixed32(hi >>> 0);
  }

  fixed64Big(v: bigint): void {
    const u = BigInt.asUintN(64, v);
    this.fixed32(Number(u & 0xffffffffn));
    this.fixed32(Number(u >> 32n));
  }

  double(v: number): void {
    scratchF64[0] = v;
    this.buf.set(scratchF64Bytes, this.pos);
    this.pos += 8;
  }

  float(v: number): void {
    scratchF32[0] = v;
    this.buf.set(scratchF32Bytes, this.pos);
    this.pos += 4;
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

// The reverse of splitBig, with the same two-entry memory: the IDs a reader meets (lease IDs,
// header IDs on the client side) repeat, and building a bigint from halves allocates several.
let joinLo0 = 0,
  joinHi0 = 0,
  joinSigned0 = false,
  joinBig0 = 0n;
let joinLo1 = 0,
  joinHi1 = 0,
  joinSigned1 = false,
  joinBig1 = 0n;
let joinNext = 0;

function joinBig(lo: number, hi: number, signed: boolean): bigint {
  if (lo === joinLo0 && hi === joinHi0 && signed === joinSigned0) return joinBig0;
  if (lo === joinLo1 && hi === joinHi1 && signed === joinSigned1) return joinBig1;
  const u = (BigInt(hi) << 32n) | BigInt(lo);
  const v = signed ? BigInt.asIntN(64, u) : u;
  if (joinNext === 0) {
    joinLo0 = lo;
    joinHi0 = hi;
    joinSigned0 = signed;
    joinBig0 = v;
    joinNext = 1;
  } else {
    joinLo1 = lo;
    joinHi1 = hi;
    joinSigned1 = signed;
    joinBig1 = v;
    joinNext = 0;
  }
  return v;
}

/** Reads a message body in buf[pos, end). */
export class ProtoReader {
  buf: Uint8Array;
  pos: number;
  end: number;
  /** Current nesting of self-referencing messages; generated readers bound it by nestingDepthMax. */
  depth: number;
  // The halves of the last 64-bit varint read (kept here so reading one allocates nothing).
  private lo: number;
  private hi: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.depth = 0;
    this.lo = 0;
    this.hi = 0;
  }

  /** A field tag; the caller splits it into `tag >>> 3` and `tag & 7`. */
  tag(): number {
    const p = this.pos;
    if (p < this.end) {
      const b0 = this.buf[p];
      if (b0 < 128) {
        this.pos = p + 1;
        return b0;
      }
    }
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

  sint32(): number {
    const v = this.uint32();
    return (v >>> 1) ^ -(v & 1);
  }

  /** Reads a 64-bit varint into this.lo / this.hi (unsigned 32-bit halves). */
  private varint64(): void {
    const b = this.buf;
    let p = this.pos;
    let lo = 0,
      hi = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) throw new ProtoDecodeError('truncated varint');
      const byte = b[p++];
      if (shift < 28) lo |= (byte & 127) << shift;
      else if (shift === 28) {
        lo |= (byte & 15) << 28;
        hi |= (byte & 127) >>> 4;
      } else if (shift < 64) hi |= (byte & 127) << (shift - 32);
      if (byte < 128) break;
      shift += 7;
      if (shift > 63) throw new ProtoDecodeError('varint longer than 10 bytes');
    }
    this.pos = p;
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /** int64 as a number; values outside ±2^53 cannot be represented and are rejected. */
  int64(): number {
    const b = this.buf;
    // Fast path: a varint of at most 3 bytes.
    const p = this.pos;
    if (p + 4 <= this.end) {
      const b0 = b[p];
      if (b0 < 128) {
        this.pos = p + 1;
        return b0;
      }
      const b1 = b[p + 1];
      if (b1 < 128) {
        this.pos = p + 2;
        return (b0 & 127) | (b1 << 7);
      }
      const b2 = b[p + 2];
      if (b2 < 128) {
        this.pos = p + 3;
        return (b0 & 127) | ((b1 & 127) << 7) | (b2 << 14);
      }
    }
    this.varint64();
    const v = (this.hi | 0) * TWO_32 + this.lo;
    if (!Number.isSafeInteger(v)) throw new ProtoDecodeError('int64 value out of range');
    return v;
  }

  /** uint64 as a number; values above 2^53 are rejected. */
  uint64(): number {
    const p = this.pos;
    if (p < this.end) {
      const b0 = this.buf[p];
      if (b0 < 128) {
        this.pos = p + 1;
        return b0;
      }
    }
    this.varint64();
    const v = this.hi * TWO_32 + this.lo;
    if (!Number.isSafeInteger(v)) throw new ProtoDecodeError('uint64 value out of range');
    return v;
  }

  /** int64 as a signed bigint. */
  int64Big(): bigint {
    this.varint64();
    if (this.hi === 0) return BigInt(this.lo);
    return joinBig(this.lo, this.hi, true);
  }

  /** uint64 as an unsigned bigint. */
  uint64Big(): bigint {
    this.varint64();
    if (this.hi === 0) return BigInt(this.lo);
    return joinBig(this.lo, this.hi, false);
  }

  /** sint64 (zigzag) as a number; values outside ±2^53 are rejected. */
  sint64(): number {
    this.varint64();
    const lo = this.lo,
      hi = this.hi;
    const sign = -(lo & 1);
    const v = (((hi >>> 1) ^ sign) | 0) * TWO_32 + ((((lo >>> 1) | (hi << 31)) ^ sign) >>> 0);
    if (!Number.isSafeInteger(v)) throw new ProtoDecodeError('sint64 value out of range');
    return v;
  }

  /** sint64 (zigzag) as a bigint. */
  sint64Big(): bigint {
    this.varint64();
    const u = (BigInt(this.hi) << 32n) | BigInt(this.lo);
    return (u & 1n) === 0n ? u >> 1n : -(u >> 1n) - 1n;
  }

  bool(): boolean {
    const p = this.pos;
    if (p < this.end) {
      const b0 = this.buf[p];
      if (b0 < 128) {
        this.pos = p + 1;
        return b0 !== 0;
      }
    }
    this.varint64();
    return (this.lo | this.hi) !== 0;
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) throw new ProtoDecodeError('truncated fixed32');
    const b = this.buf,
      p = this.pos;
    this.pos = p + 4;
    return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
  }

  sfixed32(): number {
    return this.fixed32() | 0;
  }

  /** fixed64 as a number; values above 2^53 are rejected. */
  fixed64(): number {
    const lo = this.fixed32();
    const v = this.fixed32() * TWO_32 + lo;
    if (!Number.isSafeInteger(v)) throw new ProtoDecodeError('fixed64 value out of range');
    return v;
  }

  /** sfixed64 as a number; values outside ±2^53 are rejected. */
  sfixed64(): number {
    const lo = this.fixed32();
    const v = (this.fixed32() | 0) * TWO_32 + lo;
    if (!Number.isSafeInteger(v)) throw new ProtoDecodeError('sfixed64 value out of range');
    return v;
  }

  fixed64Big(): bigint {
    const lo = this.fixed32();
    const hi = this.fixed32();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  sfixed64Big(): bigint {
    return BigInt.asIntN(64, this.fixed64Big());
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new ProtoDecodeError('truncated double');
    const b = this.buf,
      p = this.pos;
    for (let i = 0; i < 8; i++) scratchF64Bytes[i] = b[p + i];
    this.pos = p + 8;
    return scratchF64[0];
  }

  float(): number {
    if (this.pos + 4 > this.end) throw new ProtoDecodeError('truncated float');
    const b = this.buf,
      p = this.pos;
    scratchF32Bytes[0] = b[p];
    scratchF32Bytes[1] = b[p + 1];
    scratchF32Bytes[2] = b[p + 2];
    scratchF32Bytes[3] = b[p + 3];
    this.pos = p + 4;
    return scratchF32[0];
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
        this.skipGroup(0, 1);
        return;
      default:
        throw new ProtoDecodeError(`invalid wire type ${wireType}`);
    }
  }

  /** Skips an unknown field whose tag was just read; rejects field number 0 and unmatched groups. */
  skipField(tag: number): void {
    const field = tag >>> 3;
    if (field === 0) throw new ProtoDecodeError('illegal field number 0');
    if ((tag & 7) === WireType.StartGroup) this.skipGroup(field, 1);
    else this.skip(tag & 7);
  }

  /** Skips a group body up to its end tag; field 0 = accept any end tag. */
  private skipGroup(field: number, depth: number): void {
    if (depth > nestingDepthMax) throw new ProtoDecodeError('groups nested too deeply');
    for (;;) {
      const t = this.tag();
      const wt = t & 7;
      if (wt === WireType.EndGroup) {
        if (field !== 0 && t >>> 3 !== field) throw new ProtoDecodeError('end group tag does not match its start');
        return;
      }
      if (t >>> 3 === 0) throw new ProtoDecodeError('illegal field number 0');
      if (wt === WireType.StartGroup) this.skipGroup(t >>> 3, depth + 1);
      else this.skip(wt);
    }
  }
}

/** The error generated readers throw for a known field that arrives with the wrong wire type. */
export function wrongWireType(message: string, field: string, tag: number): ProtoDecodeError {
  return new ProtoDecodeError(`${message}.${field}: wrong wire type ${tag & 7}`);
}

/** An empty byte string, shared so decoded defaults cost no allocation. */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);
