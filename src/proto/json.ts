// Protobuf JSON primitives for the generated codecs: the mapping etcd 3.4's gateway uses
// (grpc-gateway v1 with OrigName=true, EmitDefaults=false). Parsing errors are JsonFieldError (a
// ProtoDecodeError) with a message naming the field, and the text etcd's gateway answers for the same
// input (Go's encoding/json under golang/protobuf's jsonpb), so the gateway can answer as etcd does.
import { ProtoDecodeError } from './wire.js';
import { goScanValue } from './go_json.js';

/** A JSON value as JSON.parse returns it and JSON.stringify accepts it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
/** A JSON object. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/**
 * A JSON value that does not fit its field. `message` names the field (`RangeRequest.key: ...`);
 * `goText` is etcd 3.4's gateway's text for it (`json: cannot unmarshal number into Go value of type []uint8`).
 */
export class JsonFieldError extends ProtoDecodeError {
  readonly goText: string;
  constructor(message: string, goText: string) {
    super(message);
    this.goText = goText;
  }
}

/** The name Go's encoding/json gives a JSON value's kind in its UnmarshalTypeError. */
function goKind(v: unknown): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'array';
  return 'object';
}

/** Go's `json: cannot unmarshal <kind> into Go value of type <goType>`. */
function mismatch(field: string, reason: string, v: unknown, goType: string, kind = goKind(v)): JsonFieldError {
  return new JsonFieldError(`${field}: ${reason}`, `json: cannot unmarshal ${kind} into Go value of type ${goType}`);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const INTEGER_TEXT = /^-?[0-9]+$/;
// A JSON number literal (what jsonpb accepts inside a quoted 64-bit integer).
const NUMBER_TEXT = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;
// Standard alphabet with padding, as Go's base64.StdEncoding (which skips \r and \n).
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;

function fail(field: string, reason: string, goText: string): JsonFieldError {
  return new JsonFieldError(`${field}: ${reason}`, goText);
}

/** Standard base64 with padding, as Go's encoding/json writes []byte. */
export function bytesToJson(v: Uint8Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

/** A signed 64-bit bigint as the decimal string protobuf JSON uses for int64. */
export function int64BigToJson(v: bigint): string {
  return BigInt.asIntN(64, v).toString();
}

/** An unsigned 64-bit bigint as the decimal string protobuf JSON uses for uint64. */
export function uint64BigToJson(v: bigint): string {
  return BigInt.asUintN(64, v).toString();
}

/** float/double: JSON numbers, except the non-finite values, which protobuf JSON spells as strings. */
export function floatToJson(v: number): JsonValue {
  if (Number.isFinite(v)) return v;
  return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
}

/** An enum value as its name, or as the number when the value is not in the enum (open enums). */
export function enumToJson(v: number, names: Record<number, string>): JsonValue {
  const name = names[v];
  return name === undefined ? v : name;
}

/** A message value: a JSON object, or null/undefined for "not set". */
export function objectFromJson(v: unknown, field: string): Record<string, unknown> | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw mismatch(field, 'expected a JSON object', v, 'map[string]json.RawMessage');
  return v as Record<string, unknown>;
}

/** A repeated field: a JSON array, or null for empty. */
export function arrayFromJson(v: unknown, field: string): unknown[] {
  if (v === null) return [];
  if (!Array.isArray(v)) throw mismatch(field, 'expected a JSON array', v, '[]json.RawMessage');
  return v;
}

/** bytes: base64 in the standard alphabet with padding (line breaks skipped), as etcd 3.4's gateway takes it. */
export function bytesFromJson(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string') {
    if (Array.isArray(v)) return bytesFromJsonArray(v, field);
    throw mismatch(field, 'expected a base64 string', v, '[]uint8');
  }
  if (v.length === 0) return new Uint8Array(0);
  let text = v;
  if (text.includes('\n') || text.includes('\r')) text = text.replace(/[\r\n]/g, '');
  if (!BASE64_TEXT.test(text) || text.length % 4 !== 0) {
    const at = base64ErrorOffset(Buffer.from(v, 'utf8'));
    throw fail(field, `illegal base64 data at input byte ${at}`, `illegal base64 data at input byte ${at}`);
  }
  // Buffer would skip what it does not know; the checks above leave it nothing to skip.
  const b = Buffer.from(text, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Go's encoding/json also fills a []byte from an array of numbers 0..255. */
function bytesFromJsonArray(a: unknown[], field: string): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (typeof x !== 'number') throw mismatch(field, 'expected a base64 string', x, 'uint8');
    if (!Number.isInteger(x) || x < 0 || x > 255) throw mismatch(field, 'expected a base64 string', x, 'uint8', `number ${String(x)}`);
    out[i] = x;
  }
  return out;
}

const B64_ALPHABET = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') B64_ALPHABET[c.charCodeAt(0)] = 1;
const CR = 13;
const LF = 10;
const PAD = 61;

/**
 * Where Go's base64.StdEncoding.Decode reports a CorruptInputError in `src` (its decodeQuantum,
 * step by step), or -1 if it would decode it.
 */
function base64ErrorOffset(src: Uint8Array): number {
  let si = 0;
  const n = src.length;
  for (;;) {
    let j = 0;
    for (; j < 4; j++) {
      if (si === n) {
        if (j === 0) return -1;
        return si - j;
      }
      const c = src[si++];
      if (B64_ALPHABET[c] === 1) continue;
      if (c === LF || c === CR) {
        j--;
        continue;
      }
      if (c !== PAD) return si - 1;
      if (j < 2) return si - 1;
      if (j === 2) {
        while (si < n && (src[si] === LF || src[si] === CR)) si++;
        if (si === n) return n;
        if (src[si] !== PAD) return si - 1;
        si++;
      }
      while (si < n && (src[si] === LF || src[si] === CR)) si++;
      return si < n ? si : -1;
    }
  }
}

/** string. */
export function stringFromJson(v: unknown, field: string): string {
  if (typeof v !== 'string') throw mismatch(field, 'expected a string', v, 'string');
  return v;
}

/** bool: only true/false, as Go's decoder. */
export function boolFromJson(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw mismatch(field, 'expected true or false', v, 'bool');
  return v;
}

/** An integer given as a JSON number or a decimal string, as a bigint, range-checked. */
// jsonpb reads a quoted integer by parsing what is inside the quotes as JSON: Go's texts follow from that.
function integerFromJson(v: unknown, field: string, min: bigint, max: bigint, kind: string): bigint {
  let n: bigint;
  const goNumber = (text: string): string => `json: cannot unmarshal number ${text} into Go value of type ${kind}`;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw fail(field, `${v} is not an integer`, goNumber(String(v)));
    // A JSON number beyond 2^53 was already rounded by JSON.parse: refuse rather than guess.
    if (!Number.isSafeInteger(v)) throw fail(field, `${v} is not exact; send 64-bit values as strings`, goNumber(String(v)));
    n = BigInt(v);
  } else if (typeof v === 'string') {
    const text = v.trim();
    if (!INTEGER_TEXT.test(text)) {
      const reason = `invalid ${kind} ${JSON.stringify(v)}`;
      if (NUMBER_TEXT.test(text)) throw fail(field, reason, goNumber(text));
      throw fail(field, reason, goInnerText(text, kind));
    }
    n = BigInt(text);
    if (n < min || n > max) throw fail(field, `${kind} ${n} out of range`, goNumber(text));
    return n;
  } else {
    throw mismatch(field, `expected a ${kind} as a number or a string`, v, kind);
  }
  if (n < min || n > max) throw fail(field, `${kind} ${n} out of range`, goNumber(String(v)));
  return n;
}

/** What Go says about a quoted integer whose inside is not a JSON number. */
function goInnerText(text: string, kind: string): string {
  if (text === '') return 'unexpected end of JSON input';
  if (text === 'true' || text === 'false') return `json: cannot unmarshal bool into Go value of type ${kind}`;
  if (text === 'null') return `json: cannot unmarshal null into Go value of type ${kind}`;
  const c = text[0];
  if (c === '"') return `json: cannot unmarshal string into Go value of type ${kind}`;
  const scan = goScanValue(text, 0, true);
  if (scan.kind === 'error') return scan.text;
  if (c === '{') return `json: cannot unmarshal object into Go value of type ${kind}`;
  if (c === '[') return `json: cannot unmarshal array into Go value of type ${kind}`;
  return `json: cannot unmarshal number ${text} into Go value of type ${kind}`;
}

const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** int64 held as a number (values beyond ±2^53 are refused). */
export function int64FromJson(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  return Number(integerFromJson(v, field, SAFE_MIN, SAFE_MAX, 'int64'));
}

/** uint64 held as a number (values beyond 2^53 are refused). */
export function uint64FromJson(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  return Number(integerFromJson(v, field, 0n, SAFE_MAX, 'uint64'));
}

/** int64 held as a bigint. */
export function int64BigFromJson(v: unknown, field: string): bigint {
  return integerFromJson(v, field, INT64_MIN, INT64_MAX, 'int64');
}

/** uint64 held as a bigint. */
export function uint64BigFromJson(v: unknown, field: string): bigint {
  return integerFromJson(v, field, 0n, UINT64_MAX, 'uint64');
}

/** int32 (also sint32/sfixed32). */
export function int32FromJson(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) return v;
  return Number(integerFromJson(v, field, -2147483648n, 2147483647n, 'int32'));
}

/** uint32 (also fixed32). */
export function uint32FromJson(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 4294967295) return v;
  return Number(integerFromJson(v, field, 0n, 4294967295n, 'uint32'));
}

/** float/double: a number, a numeric string, or "NaN"/"Infinity"/"-Infinity". */
export function floatFromJson(v: unknown, field: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    if (v === 'NaN') return NaN;
    if (v === 'Infinity') return Infinity;
    if (v === '-Infinity') return -Infinity;
    const n = Number(v);
    if (v.trim() !== '' && Number.isFinite(n)) return n;
  }
  throw mismatch(field, 'expected a number', v, 'float64');
}

/**
 * An enum: its name, or its number (open enums keep unknown numbers). `enumName` is the
 * enum's full proto name, used in the message like Go's "unknown value ... for enum ...".
 */
export function enumFromJson(v: unknown, field: string, values: Readonly<Record<string, number>>, enumName: string): number {
  if (typeof v === 'string') {
    const n = Object.hasOwn(values, v) ? values[v] : undefined;
    if (n === undefined) {
      const text = `unknown value ${JSON.stringify(v)} for enum ${enumName}`;
      throw fail(field, text, text);
    }
    return n;
  }
  if (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) return v;
  throw mismatch(field, `expected a name or a number of enum ${enumName}`, v, enumName);
}
