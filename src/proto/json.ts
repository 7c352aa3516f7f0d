// Protobuf JSON primitives for the generated codecs: the mapping etcd 3.4's gateway uses
// (grpc-gateway v1 with OrigName=true, EmitDefaults=false). Parsing errors are ProtoDecodeError
// with a message naming the field, so the gateway can answer InvalidArgument.
import { ProtoDecodeError } from './wire.js';

/** A JSON value as JSON.parse returns it and JSON.stringify accepts it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
/** A JSON object. */
export interface JsonObject {
  [key: string]: JsonValue;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const INTEGER_TEXT = /^-?[0-9]+$/;
// Standard or URL-safe alphabet, padding optional (a lone trailing character is never valid).
const BASE64_TEXT = /^[A-Za-z0-9+/_-]*={0,2}$/;

function fail(field: string, reason: string): ProtoDecodeError {
  return new ProtoDecodeError(`${field}: ${reason}`);
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
  if (typeof v !== 'object' || Array.isArray(v)) throw fail(field, 'expected a JSON object');
  return v as Record<string, unknown>;
}

/** A repeated field: a JSON array, or null for empty. */
export function arrayFromJson(v: unknown, field: string): unknown[] {
  if (v === null) return [];
  if (!Array.isArray(v)) throw fail(field, 'expected a JSON array');
  return v;
}

/** bytes: base64, standard or URL-safe alphabet, with or without padding. */
export function bytesFromJson(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string') throw fail(field, 'expected a base64 string');
  if (v.length === 0) return new Uint8Array(0);
  const pad = v.endsWith('==') ? 2 : v.endsWith('=') ? 1 : 0;
  if (!BASE64_TEXT.test(v) || (pad > 0 ? v.length % 4 !== 0 : v.length % 4 === 1)) {
    throw fail(field, 'illegal base64 data');
  }
  // Buffer decodes both alphabets; the checks above make sure it does not skip anything.
  const b = Buffer.from(v, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** string. */
export function stringFromJson(v: unknown, field: string): string {
  if (typeof v !== 'string') throw fail(field, 'expected a string');
  return v;
}

/** bool: only true/false, as Go's decoder. */
export function boolFromJson(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw fail(field, 'expected true or false');
  return v;
}

/** An integer given as a JSON number or a decimal string, as a bigint, range-checked. */
function integerFromJson(v: unknown, field: string, min: bigint, max: bigint, kind: string): bigint {
  let n: bigint;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw fail(field, `${v} is not an integer`);
    // A JSON number beyond 2^53 was already rounded by JSON.parse: refuse rather than guess.
    if (!Number.isSafeInteger(v)) throw fail(field, `${v} is not exact; send 64-bit values as strings`);
    n = BigInt(v);
  } else if (typeof v === 'string') {
    if (!INTEGER_TEXT.test(v)) throw fail(field, `invalid ${kind} ${JSON.stringify(v)}`);
    n = BigInt(v);
  } else {
    throw fail(field, `expected a ${kind} as a number or a string`);
  }
  if (n < min || n > max) throw fail(field, `${kind} ${n} out of range`);
  return n;
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
  throw fail(field, 'expected a number');
}

/**
 * An enum: its name, or its number (open enums keep unknown numbers). `enumName` is the
 * enum's full proto name, used in the message like Go's "unknown value ... for enum ...".
 */
export function enumFromJson(v: unknown, field: string, values: Readonly<Record<string, number>>, enumName: string): number {
  if (typeof v === 'string') {
    const n = Object.hasOwn(values, v) ? values[v] : undefined;
    if (n === undefined) throw fail(field, `unknown value ${JSON.stringify(v)} for enum ${enumName}`);
    return n;
  }
  if (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) return v;
  throw fail(field, `expected a name or a number of enum ${enumName}`);
}
