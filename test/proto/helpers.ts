// Shared by the test/proto suites: the schema model, protobufjs's reflection codec as the
// reference, name-based access to our generated codecs, a seeded RNG and random messages.
import type protobuf from 'protobufjs';
import { findRepoRoot } from '../../tools/protogen/paths.js';
import { loadSchema, loadProtobufRoot } from '../../tools/protogen/load.js';
import { includeDirs, spliceFields, targets } from '../../tools/protogen/config.js';
import type { FieldModel, MessageModel, EnumModel, FileModel } from '../../tools/protogen/model.js';
import type { ProtoReader, ProtoWriter } from '../../src/proto/wire.js';
import type { JsonObject } from '../../src/proto/json.js';
import * as kv from '../../src/proto/kv.js';
import * as auth from '../../src/proto/auth.js';
import * as rpc from '../../src/proto/rpc.js';
import * as v3lock from '../../src/proto/v3lock.js';
import * as v3election from '../../src/proto/v3election.js';
import * as internal from '../../src/proto/internal.js';
import * as alltypes from './gen/alltypes.js';

export const repoRoot = findRepoRoot(import.meta.url);
export const schema: FileModel[] = loadSchema(repoRoot, targets, includeDirs, spliceFields);
export const pbRoot: protobuf.Root = loadProtobufRoot(
  repoRoot,
  targets.map((t) => t.proto),
  includeDirs,
);

const modules: Record<string, Record<string, unknown>> = {
  'src/proto/kv.ts': kv,
  'src/proto/auth.ts': auth,
  'src/proto/rpc.ts': rpc,
  'src/proto/v3lock.ts': v3lock,
  'src/proto/v3election.ts': v3election,
  'src/proto/internal.ts': internal,
  'test/proto/gen/alltypes.ts': alltypes,
};

export const messages = new Map<string, MessageModel>();
export const enums = new Map<string, EnumModel>();
const outOf = new Map<string, string>();
for (const f of schema) {
  for (const d of f.decls) {
    if (d.kind === 'message') {
      messages.set(d.message.fullName, d.message);
      outOf.set(d.message.fullName, f.out);
    }
    if (d.kind === 'enum') enums.set(d.enum.fullName, d.enum);
  }
}

/** Our generated functions for one message, found by name. */
export interface Codec {
  size(m: unknown): number;
  write(m: unknown, w: ProtoWriter): void;
  encode(m: unknown): Uint8Array;
  read(r: ProtoReader, end: number): unknown;
  decode(buf: Uint8Array): unknown;
  toJson(m: unknown): JsonObject;
  fromJson(v: unknown): unknown;
  pb: protobuf.Type;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** The generated codec of a message by full proto name (e.g. 'etcdserverpb.RangeRequest'). */
export function codec(fullName: string): Codec {
  const m = messages.get(fullName);
  const out = outOf.get(fullName);
  if (m === undefined || out === undefined) throw new Error(`no message ${fullName}`);
  const mod = modules[out];
  const get = (name: string): never => {
    const f = mod[name];
    if (typeof f !== 'function') throw new Error(`${out} does not export ${name}`);
    return f as never;
  };
  const N = m.tsName;
  return {
    size: get(`size${N}`),
    write: get(`write${N}`),
    encode: get(`encode${N}`),
    read: get(`read${N}`),
    decode: get(`decode${N}`),
    toJson: get(`${lowerFirst(N)}ToJson`),
    fromJson: get(`${lowerFirst(N)}FromJson`),
    pb: pbRoot.lookupType(fullName),
  };
}

/** mulberry32: a small seeded PRNG so a failing seed replays exactly. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  u32(): number {
    return (this.next() * 4294967296) >>> 0;
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const I64_EDGES = [
  0n,
  1n,
  -1n,
  127n,
  128n,
  2n ** 31n - 1n,
  -(2n ** 31n),
  2n ** 32n,
  2n ** 53n - 1n,
  -(2n ** 53n - 1n),
  2n ** 63n - 1n,
  -(2n ** 63n),
];
const U64_EDGES = [0n, 1n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 63n, 2n ** 64n - 1n];
const SAFE_EDGES = [
  0,
  1,
  -1,
  127,
  128,
  16383,
  16384,
  2 ** 21,
  2 ** 28,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 32,
  2 ** 35,
  2 ** 42,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
];
const CODE_POINTS = [0x41, 0x7a, 0x20, 0x0, 0x7f, 0xe9, 0x3b1, 0x4e2d, 0x1f600, 0x10ffff, 0xfffd, 0x800, 0xffff];

function randomString(rng: Rng): string {
  const n = rng.chance(0.1) ? 200 + rng.int(300) : rng.int(12);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCodePoint(rng.chance(0.6) ? 0x20 + rng.int(95) : rng.pick(CODE_POINTS));
  return s;
}

function randomSafe(rng: Rng, unsigned: boolean): number {
  let v: number;
  if (rng.chance(0.3)) v = rng.pick(SAFE_EDGES);
  else if (rng.chance(0.5)) v = rng.int(1000);
  else v = Math.floor(rng.next() * 2 ** (1 + rng.int(53)));
  if (unsigned) return Math.abs(v);
  return rng.chance(0.3) ? -v : v;
}

function randomScalar(f: FieldModel, rng: Rng): unknown {
  if (f.kind === 'enum') {
    const e = enums.get(f.ref?.fullName ?? '');
    if (e === undefined) throw new Error(`no enum ${f.ref?.fullName}`);
    return rng.chance(0.1) ? 50 + rng.int(100) : rng.pick(e.values).number;
  }
  switch (f.scalar) {
    case 'double':
      return rng.chance(0.2) ? rng.pick([0.5, -1e300, 1e-300, Number.MAX_VALUE, 3]) : (rng.next() - 0.5) * 1e6;
    case 'float':
      return Math.fround(rng.chance(0.2) ? rng.pick([0.5, -3.25e30, 1.5e-30, 7]) : (rng.next() - 0.5) * 1e4);
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      return rng.chance(0.3) ? rng.pick([0, 1, -1, 2147483647, -2147483648]) : rng.u32() | 0;
    case 'uint32':
    case 'fixed32':
      return rng.chance(0.3) ? rng.pick([0, 1, 127, 128, 4294967295]) : rng.u32();
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      if (f.big) return rng.chance(0.4) ? rng.pick(I64_EDGES) : BigInt.asIntN(64, rng.u64());
      return randomSafe(rng, false);
    case 'uint64':
    case 'fixed64':
      if (f.big) return rng.chance(0.4) ? rng.pick(U64_EDGES) : rng.u64();
      return randomSafe(rng, true);
    case 'bool':
      return rng.chance(0.5);
    case 'string':
      return randomString(rng);
    case 'bytes':
      return rng.bytes(rng.chance(0.05) ? 70000 + rng.int(1000) : rng.chance(0.3) ? 0 : rng.int(40));
    default:
      throw new Error(`unhandled scalar ${f.scalar}`);
  }
}

function zeroOf(f: FieldModel): unknown {
  if (f.kind === 'enum') return 0;
  switch (f.scalar) {
    case 'bool':
      return false;
    case 'string':
      return '';
    case 'bytes':
      return new Uint8Array(0);
    default:
      return f.big ? 0n : 0;
  }
}

/**
 * A random message in the decoded shape (every non-oneof field present, zeros where unset, at most
 * one oneof member). `depth` bounds nesting so recursive messages stay small.
 */
export function randomMessage(fullName: string, rng: Rng, depth = 0): Record<string, unknown> {
  const m = messages.get(fullName);
  if (m === undefined) throw new Error(`no message ${fullName}`);
  const o: Record<string, unknown> = {};
  const chosen = new Map<string, string>();
  for (const oo of m.oneofs) if (rng.chance(0.8)) chosen.set(oo.name, rng.pick(oo.fields));
  const fill = rng.chance(0.2) ? 1 : rng.chance(0.5) ? 0.7 : 0.3;
  for (const f of m.fields) {
    const deeper = depth < 4;
    if (f.oneof !== undefined) {
      if (chosen.get(f.oneof) !== f.name) continue;
      o[f.name] = f.kind === 'message' ? randomMessage(f.ref?.fullName ?? '', rng, depth + 1) : randomScalar(f, rng);
      continue;
    }
    if (f.repeated) {
      const n = !deeper && f.kind === 'message' ? 0 : rng.chance(fill) ? rng.int(f.kind === 'message' ? 4 : 6) : 0;
      const a: unknown[] = [];
      for (let i = 0; i < n; i++)
        a.push(f.kind === 'message' ? randomMessage(f.ref?.fullName ?? '', rng, depth + 1) : randomScalar(f, rng));
      o[f.name] = a;
      continue;
    }
    if (f.kind === 'message') {
      o[f.name] = deeper && rng.chance(fill) ? randomMessage(f.ref?.fullName ?? '', rng, depth + 1) : undefined;
      continue;
    }
    o[f.name] = rng.chance(fill) ? randomScalar(f, rng) : zeroOf(f);
  }
  return o;
}

/**
 * Our in-memory value in protobufjs's fromObject input shape, leaving out zero values (protobufjs
 * writes any field that is set, we write only non-zero ones) but keeping oneof members.
 */
export function toPbObject(fullName: string, v: Record<string, unknown>): Record<string, unknown> {
  const m = messages.get(fullName);
  if (m === undefined) throw new Error(`no message ${fullName}`);
  const out: Record<string, unknown> = {};
  const conv = (f: FieldModel, x: unknown): unknown => {
    if (f.kind === 'message') return toPbObject(f.ref?.fullName ?? '', x as Record<string, unknown>);
    if (typeof x === 'bigint') return x.toString();
    return x;
  };
  for (const f of m.fields) {
    const x = v[f.name];
    if (x === undefined) continue;
    if (f.repeated) {
      const a = x as unknown[];
      if (a.length > 0) out[f.name] = a.map((e) => conv(f, e));
      continue;
    }
    if (f.oneof === undefined && f.kind !== 'message') {
      const zero = x === 0 || x === 0n || x === false || x === '' || (x instanceof Uint8Array && x.length === 0);
      if (zero) continue;
    }
    out[f.name] = conv(f, x);
  }
  return out;
}

/** A canonical, comparable form: bytes as hex, bigints tagged, keys sorted, undefined kept visible. */
export function canon(x: unknown): unknown {
  if (x instanceof Uint8Array) return `bytes:${Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex')}`;
  if (typeof x === 'bigint') return `big:${x}`;
  if (x === undefined) return '<undefined>';
  if (typeof x === 'number' && Object.is(x, -0)) return 0;
  if (Array.isArray(x)) return x.map(canon);
  if (x !== null && typeof x === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(x).sort()) o[k] = canon((x as Record<string, unknown>)[k]);
    return o;
  }
  return x;
}

/** Every message full name of the etcd protos and the test fixture. */
export function allMessageNames(): string[] {
  return [...messages.keys()];
}

/** protobufjs toObject options that produce the same JSON mapping as etcd's gateway. */
export const pbJsonOptions: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  bytes: String,
  defaults: false,
  arrays: false,
  json: true,
};

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
