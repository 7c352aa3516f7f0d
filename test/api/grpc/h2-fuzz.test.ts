// Robustness of the raw HTTP/2 engine (api/h2/session.ts, GrpcServer engine 'raw') under hostile input.
// Every case runs on its own TCP connection to a live GrpcServer (always engine 'raw', whatever
// TETCD_GRPC_ENGINE says; a default one and one with tight limits):
//
//  - mutation fuzz: valid connections (unary calls, CONTINUATION, padding and priority, HPACK with the
//    dynamic table and Huffman, PING/SETTINGS/WINDOW_UPDATE/RST_STREAM/GOAWAY, several streams, server
//    streaming against small windows, bidi backpressure, window overruns, ping floods) mutated at the
//    header-list, frame (duplicate, drop, swap, type, flags, stream id, length, payload) and byte level,
//    written in random chunk sizes with small delays;
//  - random frame sequences: frames of random type (0-12 mostly), flags and stream ids with lengths that
//    match their payloads: huge WINDOW_UPDATE increments, SETTINGS with random ids and edge values,
//    header blocks of random bytes;
//  - after every batch: no uncaught exception or unhandled rejection in the process, a fresh connection
//    still serves a call (node:http2 client and grpc-js), server.connections and server.activeCalls back to
//    0 within 2 s; and what the server sent each fuzzing client is checked too (SETTINGS first, whole
//    frames, decodable header blocks, the connection closed after a GOAWAY with an error code, GOAWAY's
//    last stream id never raised nor exceeded by a later response);
//  - memory: 2000 HEADERS-only streams on one connection, then the client leaves (every call ends, the
//    session and calls become garbage), the same against maxConcurrentStreams 3, floods of frames that
//    cost the server nothing to answer (empty CONTINUATIONs, rapid reset, ignorable frames) with the
//    heap growth bounded;
//  - a regression case found by the fuzzer (a request header repeated 17 times).
//
// Seeded: the seed is printed, and each case derives its own seed from it, so a failure replays.
//
//   node dist/test/api/grpc/h2-fuzz.test.js                          a random seed
//   H2_FUZZ_SEED=1234 node dist/test/api/grpc/h2-fuzz.test.js        replay one
//   H2_FUZZ_SCALE=4 node dist/test/api/grpc/h2-fuzz.test.js          4× the batches (and the time budget)
//   H2_FUZZ_TRACE=1 ...                                              print every case as it runs
//   H2_FUZZ_CASE='random 1544959627 defaults' ...                    replay one case (label, case seed and
//                                                                    server, as a failure names them), frame by frame
//
// When a batch fails with an exception or a leak, its cases are run again one at a time to find the one
// that reproduces it, and that one is shrunk (frames, then header fields; bounded in time); the failure
// message then shows it frame by frame.
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { randomInt } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { GrpcServer, GrpcServerOptions } from '../../../src/api/grpc/server.js';
import { HpackDecoder, STATIC_TABLE, encodeInt, encodeStatelessBlock, huffmanEncode } from '../../../src/api/h2/hpack.js';
import {
  EchoService,
  callUnary,
  connectRaw,
  decodeEcho,
  encodeEcho,
  frame,
  grpc,
  grpcClient,
  rawRequest,
  sleep,
  startServer,
  unframe,
  type Running,
} from '../helpers.js';
import { rng } from '../../../tools/lib/rng.js';
import {
  PREFACE,
  T_DATA,
  T_HEADERS,
  T_PRIORITY,
  T_RST_STREAM,
  T_SETTINGS,
  T_PUSH_PROMISE,
  T_PING,
  T_GOAWAY,
  T_WINDOW_UPDATE,
  T_CONTINUATION,
  F_END_STREAM,
  F_ACK,
  F_END_HEADERS,
  F_PADDED,
  F_PRIORITY,
  S_HEADER_TABLE_SIZE,
  S_ENABLE_PUSH,
  S_MAX_CONCURRENT_STREAMS,
  S_INITIAL_WINDOW_SIZE,
  S_MAX_FRAME_SIZE,
  S_MAX_HEADER_LIST_SIZE,
} from '../../../src/api/h2/frames.js';

// ---- knobs ----

const SEED =
  process.env.H2_FUZZ_SEED !== undefined && process.env.H2_FUZZ_SEED !== ''
    ? Number(process.env.H2_FUZZ_SEED) >>> 0
    : randomInt(0, 2 ** 32 - 1);
const SCALE = Math.max(1, Number(process.env.H2_FUZZ_SCALE ?? 1) || 1);
const TRACE = process.env.H2_FUZZ_TRACE === '1';
console.log(`h2-fuzz: seed ${SEED} (replay with H2_FUZZ_SEED=${SEED})`);

/** Cases per batch; invariants are checked after every batch. */
const BATCH = 32;
/** Connections in flight at once within a batch. */
const CONCURRENCY = 16;
const MUTATION_BATCHES = 12 * SCALE;
const RANDOM_BATCHES = 8 * SCALE;
/** Wall-clock budgets: no new batch starts past them (the file must stay well under 25 s on a slow box). */
const MUTATION_BUDGET_MS = 7_000 * SCALE;
const RANDOM_BUDGET_MS = 4_000 * SCALE;
/** How long a case listens after its last write, unless the server closes first. */
const CASE_WAIT_MS = 300;
/** Counts must return to 0 within this after the fuzz connections are gone. */
const SETTLE_MS = 2_000;
/** Time allowed for finding and shrinking the culprit of a failed batch. */
const ISOLATE_BUDGET_MS = 8_000;

// ---- recorders ----

const uncaught: { kind: string; err: unknown; suspects: string[] }[] = [];
/** Cases whose connection is open right now: the suspects when something throws. */
const inFlight = new Set<string>();
const onUncaught = (err: unknown): void => {
  uncaught.push({ kind: 'uncaughtException', err, suspects: [...inFlight] });
};
const onRejection = (err: unknown): void => {
  uncaught.push({ kind: 'unhandledRejection', err, suspects: [...inFlight] });
};

/** The errors recorded since `from`, identical ones (same stack) counted once. */
function describeUncaught(from = 0): string {
  const seen = new Map<string, { n: number; suspects: Set<string> }>();
  for (const u of uncaught.slice(from)) {
    const key = `${u.kind}: ${u.err instanceof Error ? u.err.stack : String(u.err)}`;
    const e = seen.get(key) ?? { n: 0, suspects: new Set<string>() };
    e.n++;
    for (const x of u.suspects) e.suspects.add(x);
    seen.set(key, e);
  }
  return [...seen]
    .map(
      ([key, e]) =>
        `${key}${e.n > 1 ? `\n    (${e.n} times)` : ''}\n    (connections open: ${[...e.suspects].slice(0, 4).join('; ') || 'none'}${e.suspects.size > 4 ? `; and ${e.suspects.size - 4} more` : ''})`,
    )
    .join('\n');
}

// ---- HTTP/2 constants ----

const MAX_FRAME = 16_384;
const TYPE_NAMES = [
  'DATA',
  'HEADERS',
  'PRIORITY',
  'RST_STREAM',
  'SETTINGS',
  'PUSH_PROMISE',
  'PING',
  'GOAWAY',
  'WINDOW_UPDATE',
  'CONTINUATION',
];

/** One frame to send. `len` overrides the length field (payload bytes are written as they are). */
interface F {
  type: number;
  flags: number;
  sid: number;
  payload: Buffer;
  len?: number;
  /** The header list a HEADERS frame was encoded from (statelessly), for header-level mutations. */
  fields?: [string, string][];
}

function fr(type: number, flags: number, sid: number, payload: Uint8Array = Buffer.alloc(0), fields?: [string, string][]): F {
  return { type, flags, sid, payload: Buffer.from(payload), fields };
}

function frameBytes(f: F): Buffer {
  const b = Buffer.alloc(9 + f.payload.length);
  b.writeUIntBE((f.len ?? f.payload.length) & 0xffffff, 0, 3);
  b[3] = f.type & 0xff;
  b[4] = f.flags & 0xff;
  b.writeUInt32BE(f.sid >>> 0, 5);
  f.payload.copy(b, 9);
  return b;
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

function settingsPayload(pairs: [number, number][]): Buffer {
  const b = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([id, v], i) => {
    b.writeUInt16BE(id & 0xffff, 6 * i);
    b.writeUInt32BE(v >>> 0, 6 * i + 2);
  });
  return b;
}

// ---- randomness ----

class Rand {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = rng(seed);
  }
  /** [0, n) */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** [lo, hi] */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  u32(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  text(max: number): string {
    const n = this.int(max + 1);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.chance(0.9) ? this.range(0x20, 0x7e) : this.int(256));
    return s;
  }
  /** Values at the edges of what the protocol's 32-bit fields mean. */
  edgeU32(): number {
    return this.chance(0.6)
      ? this.pick([
          0,
          1,
          2,
          255,
          4096,
          16_383,
          16_384,
          16_385,
          65_535,
          65_536,
          1 << 20,
          16_777_215,
          16_777_216,
          0x7ffffffe,
          0x7fffffff,
          0x80000000,
          0xffffffff,
        ])
      : this.u32();
  }
}

// ---- building valid connections ----

const PATHS = [
  EchoService.Unary.path,
  EchoService.Unary.path,
  EchoService.Unary.path,
  EchoService.Slow.path,
  EchoService.Fail.path,
  EchoService.Stream.path,
  EchoService.Bidi.path,
  '/test.Echo/Nope',
  '/nope.Svc/X',
  'nopath',
  '/',
];

function requestFields(r: Rand, path: string): [string, string][] {
  const f: [string, string][] = [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', '127.0.0.1'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ];
  if (r.chance(0.2)) f.push(['grpc-timeout', r.pick(['1m', '50m', '5S', '1H', '99999999n', '100000000m', 'x', '1', '2Q'])]);
  if (r.chance(0.15)) f.push(['grpc-encoding', r.pick(['identity', 'gzip', 'br', ''])]);
  if (r.chance(0.3)) f.push(['token', r.text(20)]);
  if (r.chance(0.1)) f.push(['trace-bin', r.bytes(r.int(12)).toString('base64')]);
  if (r.chance(0.1)) f.push(['user-agent', 'h2-fuzz']);
  if (path === EchoService.Bidi.path && r.chance(0.5)) f.push(['delay', String(r.pick([1, 5, 30]))]);
  return f;
}

function echoMessage(r: Rand, gzip = false): Buffer {
  // Mostly small; sometimes past 2 KiB (responses then skip the staging buffer) or past one frame.
  const size = r.chance(0.9) ? r.int(48) : r.pick([3000, 20_000]);
  const body = encodeEcho({ payload: r.bytes(size), n: r.chance(0.5) ? r.int(40) : 0, text: r.chance(0.3) ? r.text(10) : '' });
  return gzip ? frame(gzipSync(body), 1) : frame(body);
}

function randomSettings(r: Rand): [number, number][] {
  const pairs: [number, number][] = [];
  if (r.chance(0.5)) pairs.push([S_ENABLE_PUSH, 0]);
  if (r.chance(0.5)) pairs.push([S_INITIAL_WINDOW_SIZE, r.pick([0, 1, 100, 65_535, 1 << 20, 0x7fffffff])]);
  if (r.chance(0.2)) pairs.push([S_MAX_FRAME_SIZE, r.pick([16_384, 32_768, 16_777_215])]);
  if (r.chance(0.2)) pairs.push([S_HEADER_TABLE_SIZE, r.pick([0, 4096, 65_536])]);
  if (r.chance(0.2)) pairs.push([S_MAX_HEADER_LIST_SIZE, r.pick([0, 100, 65_536])]);
  if (r.chance(0.1)) pairs.push([S_MAX_CONCURRENT_STREAMS, r.pick([0, 1, 100])]);
  return pairs;
}

/** HPACK with a dynamic table (incremental indexing, Huffman), mirrored here so later blocks can index it. */
class Encoder {
  private readonly table: [string, string][] = [];
  private bytes = 0;
  constructor(private readonly r: Rand) {}

  encode(fields: [string, string][]): Buffer {
    const r = this.r;
    const out: number[] = [];
    if (r.chance(0.15)) {
      const size = r.pick([0, 256, 4096]);
      encodeInt(out, 0x20, 5, size);
      this.resize(size);
    }
    for (const [name, value] of fields) {
      const dyn = this.table.findIndex(([n, v]) => n === name && v === value);
      if (dyn >= 0 && r.chance(0.8)) {
        encodeInt(out, 0x80, 7, STATIC_TABLE.length + dyn + 1);
        continue;
      }
      const stat = STATIC_TABLE.findIndex(([n, v]) => n === name && v === value);
      if (stat >= 0 && r.chance(0.8)) {
        encodeInt(out, 0x80, 7, stat + 1);
        continue;
      }
      const nameIdx = STATIC_TABLE.findIndex(([n]) => n === name) + 1;
      const kind = r.int(3); // 0: incremental indexing, 1: without indexing, 2: never indexed
      if (kind === 0) encodeInt(out, 0x40, 6, nameIdx);
      else encodeInt(out, kind === 1 ? 0x00 : 0x10, 4, nameIdx);
      if (nameIdx === 0) this.str(out, name);
      this.str(out, value);
      if (kind === 0) this.add(name, value);
    }
    return Buffer.from(out);
  }

  private str(out: number[], s: string): void {
    if (this.r.chance(0.5)) {
      const h = huffmanEncode(s);
      encodeInt(out, 0x80, 7, h.length);
      for (const b of h) out.push(b);
    } else {
      encodeInt(out, 0, 7, s.length);
      for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
    }
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.evict(size);
    if (size > this.max) return;
    this.table.unshift([name, value]);
    this.bytes += size;
  }

  private max = 4096;
  private resize(size: number): void {
    this.max = size;
    this.evict(0);
  }

  private evict(room: number): void {
    while (this.table.length > 0 && this.bytes + room > this.max) {
      const [n, v] = this.table.pop()!;
      this.bytes -= n.length + v.length + 32;
    }
    if (room > this.max) {
      this.table.length = 0;
      this.bytes = 0;
    }
  }
}

/** A header block as HEADERS (+ CONTINUATION) frames, maybe padded and with priority. */
function headerFrames(
  r: Rand,
  sid: number,
  block: Buffer,
  endStream: boolean,
  opts: { split?: boolean; pad?: boolean; prio?: boolean },
  fields?: [string, string][],
): F[] {
  let first = block;
  const rest: Buffer[] = [];
  if (opts.split && block.length > 1) {
    const cuts = [...new Set(Array.from({ length: r.range(1, 3) }, () => r.range(1, block.length - 1)))].sort((a, b) => a - b);
    let at = 0;
    const pieces: Buffer[] = [];
    for (const c of [...cuts, block.length]) {
      pieces.push(block.subarray(at, c));
      at = c;
    }
    if (r.chance(0.2)) pieces.splice(r.range(1, pieces.length), 0, Buffer.alloc(0)); // an empty CONTINUATION
    first = pieces[0];
    rest.push(...pieces.slice(1));
  }
  let flags = (endStream ? F_END_STREAM : 0) | (rest.length === 0 ? F_END_HEADERS : 0);
  const prefix: Buffer[] = [];
  const suffix: Buffer[] = [];
  if (opts.pad) {
    const padLen = r.pick([0, 1, 7, 255]);
    flags |= F_PADDED;
    prefix.push(Buffer.from([padLen]));
    suffix.push(Buffer.alloc(padLen));
  }
  if (opts.prio) {
    flags |= F_PRIORITY;
    const dep = Buffer.alloc(5);
    dep.writeUInt32BE(((r.chance(0.3) ? 0x80000000 : 0) | r.pick([0, 1, sid, sid + 2])) >>> 0, 0);
    dep[4] = r.int(256);
    prefix.push(dep);
  }
  const out = [
    fr(
      T_HEADERS,
      flags,
      sid,
      Buffer.concat([...prefix, first, ...suffix]),
      rest.length === 0 && !opts.pad && !opts.prio ? fields : undefined,
    ),
  ];
  rest.forEach((p, i) => out.push(fr(T_CONTINUATION, i === rest.length - 1 ? F_END_HEADERS : 0, sid, p)));
  return out;
}

/** A gRPC message body as DATA frames: split at random points, maybe padded. */
function dataFrames(r: Rand, sid: number, body: Buffer, endStream: boolean, pad: boolean): F[] {
  const parts: Buffer[] = [];
  const max = MAX_FRAME - (pad ? 256 : 0);
  let at = 0;
  if (body.length > 1 && r.chance(0.4)) {
    const cut = r.range(1, Math.min(body.length - 1, max));
    parts.push(body.subarray(0, cut));
    at = cut;
  }
  while (at < body.length || parts.length === 0) {
    parts.push(body.subarray(at, at + max));
    at += max;
  }
  if (endStream && r.chance(0.15)) parts.push(Buffer.alloc(0)); // END_STREAM on its own empty frame
  return parts.map((p, i) => {
    const last = i === parts.length - 1;
    if (!pad) return fr(T_DATA, last && endStream ? F_END_STREAM : 0, sid, p);
    const padLen = r.pick([0, 1, 10, 200]);
    return fr(
      T_DATA,
      F_PADDED | (last && endStream ? F_END_STREAM : 0),
      sid,
      Buffer.concat([Buffer.from([padLen]), p, Buffer.alloc(padLen)]),
    );
  });
}

/** The start of every connection: our SETTINGS, maybe the connection window opened. */
function opening(r: Rand): F[] {
  const out = [fr(T_SETTINGS, 0, 0, settingsPayload(randomSettings(r)))];
  if (r.chance(0.5)) out.push(fr(T_WINDOW_UPDATE, 0, 0, u32(r.pick([1, 65_535, 1 << 24]))));
  return out;
}

/** One request (headers, message, end) on stream sid, in one of many valid shapes. */
function request(r: Rand, sid: number, enc: Encoder | undefined, shape: { split?: boolean; pad?: boolean; prio?: boolean } = {}): F[] {
  const path = r.pick(PATHS);
  const fields = requestFields(r, path);
  const gzip = fields.some(([n, v]) => n === 'grpc-encoding' && v === 'gzip') && r.chance(0.7);
  const block = enc !== undefined ? enc.encode(fields) : Buffer.from(encodeStatelessBlock(fields));
  const out = headerFrames(r, sid, block, false, shape, enc === undefined ? fields : undefined);
  const ending = r.pick(['data-es', 'data-es', 'data-es', 'trailers', 'none', 'headers-only-es', 'trailers-without-es']);
  if (ending === 'headers-only-es') {
    out[0].flags |= F_END_STREAM;
    return out;
  }
  const msgs = path === EchoService.Bidi.path ? r.range(0, 6) : 1;
  const body = Buffer.concat(Array.from({ length: msgs }, () => echoMessage(r, gzip)));
  out.push(...dataFrames(r, sid, body, ending === 'data-es', shape.pad === true));
  if (ending === 'trailers' || ending === 'trailers-without-es') {
    out.push(...headerFrames(r, sid, Buffer.from(encodeStatelessBlock([['x-trailer', 'v']])), ending === 'trailers', {}));
  }
  return out;
}

const BASES: { name: string; build(r: Rand): F[] }[] = [
  { name: 'unary', build: (r) => [...opening(r), ...request(r, 1, undefined)] },
  { name: 'continuation', build: (r) => [...opening(r), ...request(r, 1, undefined, { split: true })] },
  { name: 'padded', build: (r) => [...opening(r), ...request(r, 1, undefined, { pad: true, prio: r.chance(0.5) })] },
  {
    name: 'hpack-dynamic',
    build: (r) => {
      const enc = new Encoder(r);
      return [...opening(r), ...request(r, 1, enc), ...request(r, 3, enc, { split: r.chance(0.3) }), ...request(r, 5, enc)];
    },
  },
  {
    name: 'control',
    build: (r) => [
      ...opening(r),
      fr(T_PING, 0, 0, r.bytes(8)),
      fr(T_SETTINGS, F_ACK, 0),
      ...request(r, 1, undefined),
      fr(T_WINDOW_UPDATE, 0, 1, u32(r.pick([1, 1000, 1 << 20]))),
      fr(T_PRIORITY, 0, 3, Buffer.from([0, 0, 0, 1, 16])),
      fr(T_PING, F_ACK, 0, r.bytes(8)),
      fr(T_RST_STREAM, 0, 1, u32(r.pick([0, 5, 8]))),
      fr(T_SETTINGS, 0, 0, settingsPayload([[S_INITIAL_WINDOW_SIZE, r.pick([0, 10, 65_535])]])),
      fr(T_WINDOW_UPDATE, 0, 0, u32(1000)),
    ],
  },
  {
    name: 'multi-stream',
    build: (r) => {
      const out = opening(r);
      const n = r.range(2, 6);
      const perStream = Array.from({ length: n }, (_, i) => request(r, 1 + 2 * i, undefined, { split: r.chance(0.2), pad: r.chance(0.2) }));
      // HEADERS go out in stream order; the rest interleaves.
      const heads = perStream.map((fs) => {
        const k = fs.findIndex((f) => (f.flags & F_END_HEADERS) !== 0 || f.type === T_DATA);
        return fs.splice(0, k < 0 ? fs.length : k + 1);
      });
      heads.forEach((h) => out.push(...h));
      let left = perStream.filter((fs) => fs.length > 0);
      while (left.length > 0) {
        const fs = r.pick(left);
        out.push(fs.shift()!);
        left = left.filter((x) => x.length > 0);
      }
      if (r.chance(0.4)) out.push(fr(T_RST_STREAM, 0, 1 + 2 * r.int(n), u32(8)));
      if (r.chance(0.3)) out.push(fr(T_GOAWAY, 0, 0, Buffer.concat([u32(0), u32(0), Buffer.from('bye')])));
      return out;
    },
  },
  {
    name: 'flow-control',
    build: (r) => {
      const out = [fr(T_SETTINGS, 0, 0, settingsPayload([[S_INITIAL_WINDOW_SIZE, r.pick([0, 1, 16, 100])]]))];
      const fields = requestFields(r, EchoService.Stream.path);
      out.push(fr(T_HEADERS, F_END_HEADERS, 1, encodeStatelessBlock(fields), fields));
      out.push(fr(T_DATA, F_END_STREAM, 1, frame(encodeEcho({ payload: r.bytes(100), n: r.range(1, 20) }))));
      for (let i = r.range(0, 4); i > 0; i--) out.push(fr(T_WINDOW_UPDATE, 0, r.pick([0, 1]), u32(r.pick([1, 50, 1000, 0x7fff0000]))));
      if (r.chance(0.3)) out.push(fr(T_SETTINGS, 0, 0, settingsPayload([[S_INITIAL_WINDOW_SIZE, r.pick([0, 65_535, 0x7fffffff])]])));
      return out;
    },
  },
  {
    name: 'ping-flood',
    build: (r) => {
      // Past two pings too soon (keepalive policing) the server answers GOAWAY(ENHANCE_YOUR_CALM).
      const out = opening(r);
      for (let i = r.range(1, 8); i > 0; i--) {
        if (r.chance(0.15)) out.push(...request(r, 1 + 2 * i, undefined));
        out.push(fr(T_PING, r.chance(0.1) ? F_ACK : 0, 0, r.bytes(8)));
      }
      return out;
    },
  },
  {
    name: 'bidi-backpressure',
    build: (r) => {
      // Messages one per DATA frame while the handler is not reading yet: they queue, the stream pauses
      // (server 'tight': after 2), and what still arrives waits in the HTTP/2 stream.
      const fields = requestFields(r, EchoService.Bidi.path).filter(([n]) => n !== 'grpc-encoding' && n !== 'delay');
      fields.push(['delay', String(r.pick([5, 30, 80]))]);
      const out = [...opening(r), fr(T_HEADERS, F_END_HEADERS, 1, encodeStatelessBlock(fields), fields)];
      for (let i = r.range(2, 10); i > 0; i--) out.push(...dataFrames(r, 1, echoMessage(r), false, r.chance(0.2)));
      switch (r.int(4)) {
        case 0:
          out.push(fr(T_DATA, F_END_STREAM, 1));
          break;
        case 1:
          out.push(fr(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, encodeStatelessBlock([['x-trailer', 'v']])));
          break;
        case 2:
          out.push(fr(T_RST_STREAM, 0, 1, u32(8)));
          break;
        default:
          break; // left open
      }
      if (r.chance(0.3)) out.push(fr(T_WINDOW_UPDATE, 0, 1, u32(1000)));
      return out;
    },
  },
  {
    name: 'window-overrun',
    build: (r) => {
      // More DATA than a window allows (server 'tight': 256 B per stream, 64 KiB per connection).
      const out = opening(r);
      const streams = r.range(1, 3);
      for (let i = 0; i < streams; i++) {
        const fields = requestFields(r, r.pick([EchoService.Unary.path, EchoService.Bidi.path]));
        out.push(fr(T_HEADERS, F_END_HEADERS, 1 + 2 * i, encodeStatelessBlock(fields), fields));
        const total = r.pick([200, 257, 1000, 40_000]);
        out.push(...dataFrames(r, 1 + 2 * i, r.bytes(total), r.chance(0.5), r.chance(0.2)));
      }
      return out;
    },
  },
  {
    name: 'slow-then-leave',
    build: (r) => {
      const fields = requestFields(r, EchoService.Slow.path);
      return [
        ...opening(r),
        fr(T_HEADERS, F_END_HEADERS, 1, encodeStatelessBlock(fields), fields),
        fr(T_DATA, r.chance(0.5) ? F_END_STREAM : 0, 1, frame(encodeEcho({ n: r.pick([10, 100, 5000]) }))),
      ];
    },
  },
];

// ---- mutations ----

const FRAME_MUTATIONS: { name: string; apply(r: Rand, fs: F[]): void }[] = [
  {
    name: 'dup-frame',
    apply: (r, fs) => {
      const i = r.int(fs.length);
      fs.splice(r.int(fs.length + 1), 0, { ...fs[i], payload: Buffer.from(fs[i].payload) });
    },
  },
  {
    name: 'drop-frame',
    apply: (r, fs) => {
      if (fs.length > 1) fs.splice(r.int(fs.length), 1);
    },
  },
  {
    name: 'swap-frames',
    apply: (r, fs) => {
      if (fs.length > 1) {
        const i = r.int(fs.length - 1);
        [fs[i], fs[i + 1]] = [fs[i + 1], fs[i]];
      }
    },
  },
  {
    name: 'type',
    apply: (r, fs) => {
      r.pick(fs).type = r.chance(0.8) ? r.int(13) : r.int(256);
    },
  },
  {
    name: 'flags',
    apply: (r, fs) => {
      const f = r.pick(fs);
      f.flags = r.chance(0.5) ? f.flags ^ r.pick([1, 4, 8, 0x20, 0x40, 0x80]) : r.int(256);
    },
  },
  {
    name: 'sid',
    apply: (r, fs) => {
      const f = r.pick(fs);
      f.sid = r.pick([0, f.sid + 2, Math.max(0, f.sid - 2), f.sid + 1, 0x7fffffff, (0x80000000 | f.sid) >>> 0, r.u32() & 0x7fffffff]);
    },
  },
  {
    name: 'length',
    apply: (r, fs) => {
      const f = r.pick(fs);
      f.len = r.pick([f.payload.length + 1, Math.max(0, f.payload.length - 1), 0, MAX_FRAME, MAX_FRAME + 1, 0xffffff, r.int(64)]);
    },
  },
  {
    name: 'payload-bytes',
    apply: (r, fs) => {
      const f = r.pick(fs);
      if (f.payload.length === 0) {
        f.payload = r.bytes(r.range(1, 8));
        return;
      }
      for (let k = r.range(1, 4); k > 0; k--)
        f.payload[r.int(f.payload.length)] = r.chance(0.5) ? r.int(256) : f.payload[r.int(f.payload.length)] ^ (1 << r.int(8));
    },
  },
  {
    name: 'payload-resize',
    apply: (r, fs) => {
      const f = r.pick(fs);
      f.payload = r.chance(0.5) ? f.payload.subarray(0, r.int(f.payload.length + 1)) : Buffer.concat([f.payload, r.bytes(r.range(1, 32))]);
    },
  },
  {
    name: 'insert-random-frame',
    apply: (r, fs) => {
      fs.splice(
        r.range(1, fs.length),
        0,
        randomFrame(
          r,
          fs.map((f) => f.sid),
        ),
      );
    },
  },
];

/** Headers whose repetition or odd values the server interprets (not just passes on as metadata). */
const PROTOCOL_HEADERS = new Set([':method', ':scheme', ':path', ':authority', 'content-type', 'te', 'grpc-timeout', 'grpc-encoding']);

/** Mutations of a request's header list (the block is re-encoded, split into CONTINUATIONs if it outgrows a frame). */
const HEADER_MUTATIONS: { name: string; apply(r: Rand, fields: [string, string][]): void }[] = [
  {
    name: 'repeat-field',
    apply: (r, fields) => {
      const protocol = fields.map((f, i) => (PROTOCOL_HEADERS.has(f[0]) ? i : -1)).filter((i) => i >= 0);
      const i = protocol.length > 0 && r.chance(0.6) ? r.pick(protocol) : r.int(fields.length);
      for (let k = r.pick([1, 2, 15, 16, 17, 40]); k > 0; k--)
        fields.splice(i + 1, 0, [fields[i][0], r.chance(0.8) ? fields[i][1] : r.text(20)]);
    },
  },
  {
    name: 'drop-field',
    apply: (r, fields) => {
      fields.splice(r.int(fields.length), 1);
    },
  },
  {
    name: 'uppercase-name',
    apply: (r, fields) => {
      const i = r.int(fields.length);
      fields[i] = [fields[i][0].toUpperCase(), fields[i][1]];
    },
  },
  {
    name: 'random-value',
    apply: (r, fields) => {
      const i = r.int(fields.length);
      fields[i] = [fields[i][0], r.pick(['', ' ', r.text(30), '\0', 'a'.repeat(200)])];
    },
  },
  {
    name: 'pseudo-after-regular',
    apply: (r, fields) => {
      fields.push([r.pick([':method', ':path', ':status', ':protocol', ':x', ':authority']), r.text(8)]);
    },
  },
  {
    name: 'special-header',
    apply: (r, fields) => {
      fields.splice(r.int(fields.length + 1), 0, [
        r.pick([
          'connection',
          'upgrade',
          'te',
          'content-type',
          'grpc-timeout',
          'grpc-encoding',
          '',
          'token',
          'x-bin',
          '__proto__',
          'constructor',
        ]),
        r.text(12),
      ]);
    },
  },
  {
    name: 'big-field',
    apply: (r, fields) => {
      fields.splice(r.int(fields.length + 1), 0, ['x-big', 'v'.repeat(r.pick([1000, 20_000, 70_000]))]);
    },
  },
];

function mutateHeaders(r: Rand, fs: F[], names: string[]): void {
  const candidates = fs.filter((x) => x.fields !== undefined && x.type === T_HEADERS);
  if (candidates.length === 0) return;
  const f = r.pick(candidates);
  const fields = f.fields!.map(([n, v]): [string, string] => [n, v]);
  for (let k = r.range(1, 2); k > 0; k--) {
    const m = r.pick(HEADER_MUTATIONS);
    m.apply(r, fields);
    names.push(`headers:${m.name}`);
  }
  const block = Buffer.from(encodeStatelessBlock(fields));
  f.fields = fields;
  if (block.length <= MAX_FRAME) {
    f.payload = block;
    return;
  }
  const endHeaders = f.flags & F_END_HEADERS;
  f.flags &= ~F_END_HEADERS;
  f.payload = block.subarray(0, MAX_FRAME);
  const conts: F[] = [];
  for (let at = MAX_FRAME; at < block.length; at += MAX_FRAME) {
    conts.push(fr(T_CONTINUATION, at + MAX_FRAME >= block.length ? endHeaders : 0, f.sid, block.subarray(at, at + MAX_FRAME)));
  }
  fs.splice(fs.indexOf(f) + 1, 0, ...conts);
}

const BYTE_MUTATIONS: { name: string; apply(r: Rand, b: Buffer, from: number): Buffer }[] = [
  {
    name: 'flip-bits',
    apply: (r, b, from) => {
      const c = Buffer.from(b);
      for (let k = r.range(1, 8); k > 0 && c.length > from; k--) c[r.range(from, c.length - 1)] ^= 1 << r.int(8);
      return c;
    },
  },
  {
    name: 'set-bytes',
    apply: (r, b, from) => {
      const c = Buffer.from(b);
      for (let k = r.range(1, 4); k > 0 && c.length > from; k--) c[r.range(from, c.length - 1)] = r.pick([0, 0xff, 0x7f, 0x80, r.int(256)]);
      return c;
    },
  },
  { name: 'truncate', apply: (r, b, from) => b.subarray(0, r.range(Math.min(from, b.length), b.length)) },
  {
    name: 'splice-random',
    apply: (r, b, from) => {
      const at = r.range(Math.min(from, b.length), b.length);
      return Buffer.concat([b.subarray(0, at), r.bytes(r.range(1, 40)), b.subarray(at)]);
    },
  },
  {
    name: 'delete-range',
    apply: (r, b, from) => {
      if (b.length <= from) return b;
      const at = r.range(from, b.length - 1);
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + r.range(1, 32)))]);
    },
  },
  {
    name: 'dup-range',
    apply: (r, b, from) => {
      if (b.length <= from) return b;
      const at = r.range(from, b.length - 1);
      const n = r.range(1, 64);
      return Buffer.concat([b.subarray(0, at + n), b.subarray(at)]);
    },
  },
];

// ---- random frame sequences ----

function randomFrame(r: Rand, sids: number[]): F {
  const type = r.chance(0.92) ? r.int(13) : r.int(256);
  const flags = r.chance(0.6)
    ? r.pick([0, 0, F_END_STREAM, F_END_HEADERS, F_END_HEADERS | F_END_STREAM, F_PADDED, F_PRIORITY, F_PADDED | F_PRIORITY | F_END_HEADERS])
    : r.int(256);
  const known = sids.filter((s) => s !== 0);
  const maxSid = Math.max(0, ...known);
  let sid = r.pick([0, 0, 1, 3, maxSid, maxSid + 2, maxSid + 1, 2 * r.int(50) + 1, 2 * r.int(50), 0x7fffffff, r.u32() & 0x7fffffff]);
  if (known.length > 0 && r.chance(0.4)) sid = r.pick(known);
  if (r.chance(0.05)) sid = (sid | 0x80000000) >>> 0; // the reserved bit
  let payload: Buffer;
  switch (type) {
    case T_DATA:
      payload = r.chance(0.5) ? echoMessage(r) : r.bytes(r.int(64));
      if (flags & F_PADDED) payload = Buffer.concat([Buffer.from([r.chance(0.8) ? r.int(payload.length + 1) : r.int(256)]), payload]);
      break;
    case T_HEADERS:
    case T_CONTINUATION: {
      const block = r.chance(0.5) ? Buffer.from(encodeStatelessBlock(requestFields(r, r.pick(PATHS)))) : r.bytes(r.int(80));
      const pre: Buffer[] = [];
      if (type === T_HEADERS && flags & F_PADDED) pre.push(Buffer.from([r.int(r.chance(0.8) ? 8 : 256)]));
      if (type === T_HEADERS && flags & F_PRIORITY) pre.push(r.bytes(5));
      payload = Buffer.concat([...pre, block, Buffer.alloc(type === T_HEADERS && flags & F_PADDED ? r.int(8) : 0)]);
      break;
    }
    case T_PRIORITY:
      payload = r.chance(0.9) ? r.bytes(5) : r.bytes(r.int(10));
      break;
    case T_RST_STREAM:
      payload = r.chance(0.9) ? u32(r.chance(0.7) ? r.int(14) : r.u32()) : r.bytes(r.int(8));
      break;
    case T_SETTINGS:
      if (flags & F_ACK && r.chance(0.8)) payload = Buffer.alloc(0);
      else if (r.chance(0.9)) {
        payload = settingsPayload(
          Array.from({ length: r.int(6) }, (): [number, number] => [r.chance(0.8) ? r.int(9) : r.int(65_536), r.edgeU32()]),
        );
      } else payload = r.bytes(r.int(20));
      break;
    case T_PUSH_PROMISE:
      payload = Buffer.concat([u32(r.int(20)), r.bytes(r.int(20))]);
      break;
    case T_PING:
      payload = r.chance(0.9) ? r.bytes(8) : r.bytes(r.int(16));
      break;
    case T_GOAWAY:
      payload = r.chance(0.9)
        ? Buffer.concat([u32(r.edgeU32()), u32(r.chance(0.7) ? r.int(14) : r.u32()), r.bytes(r.int(16))])
        : r.bytes(r.int(8));
      break;
    case T_WINDOW_UPDATE:
      payload = r.chance(0.9)
        ? u32(r.chance(0.5) ? r.pick([0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x7fff0000]) : r.edgeU32())
        : r.bytes(r.int(8));
      break;
    default:
      payload = r.bytes(r.int(40));
      break;
  }
  return fr(type, flags, sid, payload);
}

// ---- cases ----

interface Case {
  id: string;
  desc: string;
  chunks: Buffer[];
  /** ms to wait after each chunk (0: none). */
  delays: number[];
  /** End our side (FIN) after the last write instead of only listening. */
  halfClose: boolean;
  prefaceIntact: boolean;
}

function chunked(r: Rand, bytes: Buffer): { chunks: Buffer[]; delays: number[] } {
  const mode = r.int(5);
  const chunks: Buffer[] = [];
  if (mode === 0 || bytes.length === 0) chunks.push(bytes);
  else {
    const maxPiece = mode === 1 ? 1 : mode === 2 ? 9 : mode === 3 ? 64 : 700;
    let at = 0;
    while (at < bytes.length) {
      // At most ~300 writes per case; the rest goes in one piece.
      const n = chunks.length >= 300 ? bytes.length - at : r.range(1, maxPiece);
      chunks.push(bytes.subarray(at, at + n));
      at += n;
    }
  }
  const delays = chunks.map(() => (chunks.length < 40 && r.chance(0.15) ? r.range(1, 3) : 0));
  return { chunks, delays };
}

function mutationCase(seed: number, id: string): Case {
  const r = new Rand(seed);
  const base = r.pick(BASES);
  const frames = base.build(r);
  const names: string[] = [];
  if (r.chance(0.4)) mutateHeaders(r, frames, names);
  for (let k = r.pick([0, 1, 1, 2, 2, 3, 4]); k > 0; k--) {
    const m = r.pick(FRAME_MUTATIONS);
    m.apply(r, frames);
    names.push(m.name);
  }
  let bytes: Buffer = Buffer.concat([PREFACE, ...frames.map(frameBytes)]);
  for (let k = r.pick([0, 0, 0, 1, 1, 2]); k > 0; k--) {
    const m = r.pick(BYTE_MUTATIONS);
    // Mostly past the preface: a broken preface is HTTP/1.1 to the listener and never reaches HTTP/2.
    bytes = m.apply(r, bytes, r.chance(0.03) ? 0 : PREFACE.length);
    names.push(`bytes:${m.name}`);
  }
  const { chunks, delays } = chunked(r, bytes);
  return {
    id,
    desc: `${base.name}${names.length > 0 ? ` + ${names.join(' + ')}` : ''} (${bytes.length} B in ${chunks.length} writes)`,
    chunks,
    delays,
    halfClose: r.chance(0.2),
    prefaceIntact: bytes.length >= PREFACE.length && bytes.subarray(0, PREFACE.length).equals(PREFACE),
  };
}

function randomCase(seed: number, id: string): Case {
  const r = new Rand(seed);
  const frames: F[] = [];
  if (r.chance(0.85)) frames.push(fr(T_SETTINGS, 0, 0, settingsPayload(randomSettings(r))));
  const n = r.range(1, 25);
  for (let i = 0; i < n; i++) {
    if (r.chance(0.1)) frames.push(...request(r, 2 * r.int(20) + 1, undefined));
    else
      frames.push(
        randomFrame(
          r,
          frames.map((f) => f.sid),
        ),
      );
  }
  const bytes = Buffer.concat([PREFACE, ...frames.map(frameBytes)]);
  const { chunks, delays } = chunked(r, bytes);
  return {
    id,
    desc: `random: ${frames.map((f) => `${TYPE_NAMES[f.type] ?? `type${f.type}`}/${f.sid}`).join(' ')} (${bytes.length} B in ${chunks.length} writes)`,
    chunks,
    delays,
    halfClose: r.chance(0.2),
    prefaceIntact: true,
  };
}

// ---- running a case ----

interface Outcome {
  received: Buffer;
  /** The server ended or closed the connection before we did. */
  serverClosed: boolean;
}

/** `stopWhen`: polled every 5 ms; the case ends as soon as it holds (used while shrinking). */
function runCase(port: number, c: Case, waitMs = CASE_WAIT_MS, stopWhen?: () => boolean): Promise<Outcome> {
  return new Promise((resolve) => {
    inFlight.add(c.id);
    const sock = net.connect({ port, host: '127.0.0.1', noDelay: true });
    const parts: Buffer[] = [];
    let done = false;
    let serverClosed = false;
    let listen: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(listen);
      clearTimeout(hard);
      clearInterval(poll);
      sock.destroy();
      inFlight.delete(c.id);
      resolve({ received: Buffer.concat(parts), serverClosed });
    };
    // Whatever happens (a stuck connect, a write that never returns), the case ends.
    const hard = setTimeout(finish, 3_000 + waitMs);
    const poll =
      stopWhen === undefined
        ? undefined
        : setInterval(() => {
            if (stopWhen()) finish();
          }, 5);
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('error', () => {
      /* EPIPE/ECONNRESET after the server gave up: expected */
    });
    sock.on('end', () => {
      serverClosed = true;
      finish();
    });
    sock.on('close', () => {
      serverClosed = true;
      finish();
    });
    sock.once('connect', () => {
      void (async () => {
        for (let i = 0; i < c.chunks.length && !done; i++) {
          sock.write(c.chunks[i]);
          if (c.delays[i] > 0) await sleep(c.delays[i]);
        }
        if (done) return;
        if (c.halfClose) sock.end();
        listen = setTimeout(() => {
          // The client and the server share this event loop: under load the FIN that follows a GOAWAY
          // may come a little late. Give it that time rather than report a connection left open.
          if (errorGoawayIn(Buffer.concat(parts))) listen = setTimeout(finish, GOAWAY_CLOSE_GRACE_MS);
          else finish();
        }, waitMs);
      })();
    });
  });
}

/** Extra time a connection gets to close after the server sent GOAWAY with an error code. */
const GOAWAY_CLOSE_GRACE_MS = 700;

function errorGoawayIn(b: Buffer): boolean {
  for (let p = 0; b.length - p >= 9; ) {
    const len = b.readUIntBE(p, 3);
    if (b.length - p - 9 < len) break;
    if (b[p + 3] === T_GOAWAY && len >= 8 && b.readUInt32BE(p + 13) !== 0) return true;
    p += 9 + len;
  }
  return false;
}

/** What the server sent, checked for things it must never do whatever the client sent. */
function checkReply(c: Case, o: Outcome): string[] {
  const problems: string[] = [];
  if (!c.prefaceIntact || o.received.length === 0) return problems;
  const b = o.received;
  const decoder = new HpackDecoder(4096);
  let block: Buffer[] | undefined;
  let p = 0;
  let n = 0;
  let errorGoaway: number | undefined;
  let goawayLast: number | undefined;
  while (b.length - p >= 9) {
    const len = b.readUIntBE(p, 3);
    if (b.length - p - 9 < len) break;
    const type = b[p + 3];
    const flags = b[p + 4];
    const sid = b.readUInt32BE(p + 5) & 0x7fffffff;
    const payload = b.subarray(p + 9, p + 9 + len);
    p += 9 + len;
    if (n++ === 0 && (type !== T_SETTINGS || flags & F_ACK || sid !== 0))
      problems.push(`first frame is type ${type} flags ${flags} on stream ${sid}, not SETTINGS`);
    // Frames may follow a GOAWAY (RFC 9113 §6.8), but no response on a stream it said would not be processed.
    if (goawayLast !== undefined && sid > goawayLast && (type === T_HEADERS || type === T_DATA))
      problems.push(`frame type ${type} on stream ${sid}, above the last stream id ${goawayLast} of an earlier GOAWAY`);
    if (type === T_HEADERS || type === T_CONTINUATION) {
      if (type === T_HEADERS) {
        let s = 0;
        let e = payload.length;
        if (flags & F_PADDED) {
          s = 1;
          e -= payload[0];
        }
        if (flags & F_PRIORITY) s += 5;
        block = [payload.subarray(s, e)];
      } else if (block === undefined) {
        problems.push('CONTINUATION without HEADERS');
        continue;
      } else {
        block.push(payload);
      }
      if (flags & F_END_HEADERS) {
        const whole = Buffer.concat(block);
        block = undefined;
        try {
          decoder.decode(whole, 0, whole.length, []);
        } catch (err) {
          problems.push(`undecodable header block on stream ${sid}: ${(err as Error).message}`);
        }
      }
    } else if (block !== undefined) {
      problems.push(`frame type ${type} inside a header block`);
    }
    if (type === T_GOAWAY && len >= 8) {
      const last = payload.readUInt32BE(0) & 0x7fffffff;
      if (goawayLast !== undefined && last > goawayLast) problems.push(`GOAWAY last stream id went up from ${goawayLast} to ${last}`);
      goawayLast = Math.min(last, goawayLast ?? last);
      if (payload.readUInt32BE(4) !== 0) errorGoaway = payload.readUInt32BE(4);
    }
  }
  if (o.serverClosed && p !== b.length) problems.push(`the server closed after ${b.length - p} bytes of a partial frame`);
  if (errorGoaway !== undefined && !o.serverClosed)
    problems.push(`GOAWAY(${errorGoaway}) but the connection stayed open for ${CASE_WAIT_MS + GOAWAY_CLOSE_GRACE_MS} ms`);
  return problems;
}

async function runPool(port: number, cases: Case[]): Promise<string[]> {
  const problems: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const c = cases[next++];
      if (TRACE) console.log(`  ${c.id}: ${c.desc}`);
      const o = await runCase(port, c);
      for (const p of checkReply(c, o)) problems.push(`${c.id} [${c.desc}]: ${p}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return problems;
}

// ---- invariants ----

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

function counts(server: GrpcServer): string {
  return `connections ${server.connections}, activeCalls ${server.activeCalls}`;
}

async function settled(server: GrpcServer, ms = SETTLE_MS): Promise<boolean> {
  return until(() => server.connections === 0 && server.activeCalls === 0, ms);
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** A unary call on a fresh node:http2 connection and one through grpc-js both succeed. */
async function assertServes(s: Running, what: string): Promise<void> {
  const payload = Buffer.from(`alive ${what}`);
  const session = await bounded(connectRaw(s.port), 3_000, `${what}: connecting`);
  try {
    const r = await bounded(
      rawRequest(session, { path: EchoService.Unary.path, chunks: [frame(encodeEcho({ payload, n: 7 }))] }),
      3_000,
      `${what}: raw call`,
    );
    assert.is(r.grpcStatus, 0, `${what}: raw call status (${r.grpcMessage}, rst ${r.rstCode})`);
    const msgs = unframe(r.data);
    assert.is(msgs.length, 1, `${what}: one response message`);
    const echo = decodeEcho(msgs[0]);
    assert.ok(Buffer.from(echo.payload).equals(payload), `${what}: payload echoed`);
    assert.is(echo.n, 7);
  } finally {
    session.destroy();
  }
  const client = grpcClient(s.address);
  try {
    const { err, res } = await bounded(
      callUnary(client, EchoService.Unary.path, { payload, n: 9 }, new grpc.Metadata(), { deadline: Date.now() + 3_000 }),
      4_000,
      `${what}: grpc-js call`,
    );
    assert.is(err, null, `${what}: grpc-js call: ${err?.message}`);
    assert.is(res?.n, 9);
  } finally {
    client.close();
  }
  assert.ok(await settled(s.server), `${what}: the health-check connections are gone (${counts(s.server)})`);
}

// ---- finding and shrinking a culprit ----

type Failure = 'crash' | 'leak';

/** Runs one byte stream alone and reports whether it makes the failure happen again. */
async function reproduces(s: Running, c: Case, kind: Failure, waitMs: number): Promise<boolean> {
  if (!(await settled(s.server, 500))) return false; // the server is not clean to begin with: cannot tell
  const before = uncaught.length;
  await runCase(s.port, c, waitMs, kind === 'crash' ? () => uncaught.length > before : undefined);
  if (kind === 'crash') {
    if (uncaught.length === before) await sleep(10);
    return uncaught.length > before;
  }
  return !(await settled(s.server, 600));
}

function parseFrames(bytes: Buffer): { frames: F[]; tail: Buffer } | undefined {
  if (bytes.length < PREFACE.length || !bytes.subarray(0, PREFACE.length).equals(PREFACE)) return undefined;
  const frames: F[] = [];
  let p = PREFACE.length;
  while (bytes.length - p >= 9) {
    const len = bytes.readUIntBE(p, 3);
    if (bytes.length - p - 9 < len) break;
    frames.push(fr(bytes[p + 3], bytes[p + 4], bytes.readUInt32BE(p + 5), bytes.subarray(p + 9, p + 9 + len)));
    p += 9 + len;
  }
  return { frames, tail: bytes.subarray(p) };
}

/** Decodes the HEADERS blocks (in order, one decoder) of frames sent without padding or priority. */
function decodeBlocks(frames: F[]): { lists: Map<F, [string, string][]>; dynamic: boolean } {
  const decoder = new HpackDecoder(4096);
  const lists = new Map<F, [string, string][]>();
  for (const f of frames) {
    if (f.type !== T_HEADERS || (f.flags & (F_PADDED | F_PRIORITY)) !== 0 || (f.flags & F_END_HEADERS) === 0) continue;
    const flat: string[] = [];
    try {
      decoder.decode(f.payload, 0, f.payload.length, flat);
    } catch {
      continue;
    }
    const pairs: [string, string][] = [];
    for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i], flat[i + 1]]);
    lists.set(f, pairs);
  }
  return { lists, dynamic: decoder.dynamicSize > 0 };
}

function showFrames(frames: F[], tail: Buffer): string {
  const { lists } = decodeBlocks(frames);
  const lines = frames.map((f) => {
    let extra = '';
    const pairs = lists.get(f);
    if (pairs !== undefined) {
      const shown: string[] = [];
      for (let i = 0; i < pairs.length; ) {
        let j = i + 1;
        while (j < pairs.length && pairs[j][0] === pairs[i][0] && pairs[j][1] === pairs[i][1]) j++;
        const v = pairs[i][1].length > 40 ? `${pairs[i][1].slice(0, 40)}…` : pairs[i][1];
        shown.push(`${pairs[i][0]}: ${JSON.stringify(v)}${j - i > 1 ? ` ×${j - i}` : ''}`);
        i = j;
      }
      extra = `\n        headers {${shown.join(', ')}}`;
    }
    const p = f.payload;
    if (f.type === T_GOAWAY && p.length >= 8)
      extra = ` (last stream ${p.readUInt32BE(0) & 0x7fffffff}, code ${p.readUInt32BE(4)}${p.length > 8 ? `, ${JSON.stringify(p.subarray(8).toString('latin1'))}` : ''})`;
    else if ((f.type === T_RST_STREAM || f.type === T_WINDOW_UPDATE) && p.length === 4)
      extra = ` (${f.type === T_RST_STREAM ? 'code' : 'increment'} ${p.readUInt32BE(0)})`;
    else if (f.type === T_SETTINGS && p.length % 6 === 0 && p.length > 0) {
      extra = ` (${Array.from({ length: p.length / 6 }, (_, i) => `${p.readUInt16BE(6 * i)}=${p.readUInt32BE(6 * i + 2)}`).join(' ')})`;
    }
    const hex = p.length > 48 ? `${p.subarray(0, 48).toString('hex')}… (${p.length} B)` : p.toString('hex');
    return `    ${TYPE_NAMES[f.type] ?? `type ${f.type}`} flags=0x${f.flags.toString(16)} sid=${f.sid} len=${p.length} ${hex}${extra}`;
  });
  if (tail.length > 0) lines.push(`    + ${tail.length} trailing bytes ${tail.toString('hex')}`);
  return lines.join('\n');
}

/** Delta debugging (ddmin): a smallest-found sublist of items for which check still holds. */
async function shrinkList<T>(items: T[], check: (xs: T[]) => Promise<boolean>, deadline: number): Promise<T[]> {
  let n = 2;
  while (items.length >= 2 && Date.now() < deadline) {
    const size = Math.ceil(items.length / n);
    let reduced = false;
    for (let i = 0; i < items.length && Date.now() < deadline; i += size) {
      const rest = [...items.slice(0, i), ...items.slice(i + size)];
      if (await check(rest)) {
        items = rest;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (size === 1) break;
      n = Math.min(items.length, n * 2);
    }
  }
  return items;
}

/**
 * Finds which case of a failed batch reproduces the failure alone, then shrinks it: first the frames, then
 * the header lists of its HEADERS frames (re-encoded without the dynamic table, when it was not used).
 */
async function isolate(s: Running, cases: Case[], kind: Failure, suspects: Set<string>): Promise<string> {
  const deadline = Date.now() + ISOLATE_BUDGET_MS;
  const ordered = [...cases.filter((c) => suspects.has(c.id)), ...cases.filter((c) => !suspects.has(c.id))];
  let culprit: Case | undefined;
  for (const c of ordered) {
    if (Date.now() > deadline) break;
    if (await reproduces(s, c, kind, 150)) {
      culprit = c;
      break;
    }
  }
  if (culprit === undefined) return `  (no single case reproduced the ${kind} alone within ${ISOLATE_BUDGET_MS} ms)`;
  const bytes = Buffer.concat(culprit.chunks);
  const parsed = parseFrames(bytes);
  const hex = bytes.toString('hex');
  let report = `  culprit ${culprit.id}: ${culprit.desc}\n  bytes: ${hex.length > 400 ? `${hex.slice(0, 400)}… (${bytes.length} B)` : hex}`;
  if (parsed === undefined) return report;
  const base = culprit;
  // A crash shows while the frames are read; a leak needs the connection to have lived a little.
  const waitMs = kind === 'crash' ? 50 : 150;
  const asCase = (fs: F[]): Case => ({
    ...base,
    id: `${base.id} (shrinking)`,
    chunks: [Buffer.concat([PREFACE, ...fs.map(frameBytes), parsed.tail])],
    delays: [0],
  });
  let frames = parsed.frames;
  // Sent in one write now; if that no longer reproduces, report it unshrunk.
  if (!(await reproduces(s, asCase(frames), kind, waitMs)))
    return `${report}\n  frames (after the preface):\n${showFrames(frames, parsed.tail)}`;
  frames = await shrinkList(frames, (fs) => reproduces(s, asCase(fs), kind, waitMs), deadline);
  const { lists, dynamic } = decodeBlocks(frames);
  if (!dynamic) {
    for (const [f, pairs] of lists) {
      const i = frames.indexOf(f);
      const withList = (ps: [string, string][]): F[] =>
        frames.map((x, j) => (j === i ? fr(x.type, x.flags, x.sid, encodeStatelessBlock(ps)) : x));
      const fewer = await shrinkList(pairs, (ps) => reproduces(s, asCase(withList(ps)), kind, waitMs), deadline);
      frames = withList(fewer);
    }
  }
  const min = Buffer.concat([PREFACE, ...frames.map(frameBytes), parsed.tail]);
  report += `\n  shrunk to ${frames.length} frames after the preface${Date.now() > deadline ? ' (time ran out: maybe not minimal)' : ''}:\n${showFrames(frames, parsed.tail)}`;
  report += `\n  shrunk bytes: ${min.toString('hex')}`;
  return report;
}

// ---- the servers ----

function registerEcho(s: GrpcServer): void {
  s.unary(EchoService.Unary, (req, call) => ({ payload: req.payload, n: req.n, text: call.metadata.get('token') ?? '' }));
  s.unary(EchoService.Slow, async (req, call) => {
    const signal = call.signal;
    await new Promise<void>((resolve) => {
      const onAbort = (): void => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(
        () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        Math.min(req.n, 500),
      );
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return { text: 'slow done' };
  });
  s.unary(EchoService.Fail, () => {
    throw new Error('failing on purpose');
  });
  s.serverStream(EchoService.Stream, async (req, stream, call) => {
    for (let i = 0; i < Math.min(req.n, 50); i++) {
      if (!stream.write({ n: i, payload: req.payload })) await stream.drained();
      if (call.done) return;
    }
  });
  // A `delay` header holds messages back that long (they queue, and past inboundQueueMessagesMax the
  // stream is paused: HTTP/2 buffers what still arrives).
  s.bidi(EchoService.Bidi, (stream, call) => {
    const start = (): void => {
      if (stream.done) return;
      stream.onMessage = (m) => {
        stream.write({ payload: m.payload, n: m.n });
      };
      stream.onHalfClose = () => stream.end();
    };
    const delay = Math.min(Number(call.metadata.get('delay') ?? 0) || 0, 100);
    if (delay > 0) setTimeout(start, delay);
    else start();
  });
}

/** The default server, and one with tight limits so refusals, flow-control errors and limits are reached. */
const SERVERS: { name: string; options: GrpcServerOptions }[] = [
  { name: 'defaults', options: {} },
  {
    name: 'tight',
    options: {
      maxConcurrentStreams: 3,
      streamWindowBytes: 256,
      connectionWindowBytes: 65_535,
      maxRecvMessageBytes: 128,
      sessionMemoryMaxMb: 1,
      keepaliveMinTimeMs: 1_000,
      inboundQueueMessagesMax: 2,
    },
  },
];
const running: Running[] = [];

test.before(async () => {
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onRejection);
  for (const { options } of SERVERS) running.push(await startServer({ ...options, engine: 'raw' }, registerEcho));
  for (const s of running) assert.is(s.server.opts.engine, 'raw');
});

test.after(async () => {
  for (const s of running) await bounded(s.stop(), 5_000, 'stopping a server').catch(() => undefined);
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onRejection);
});

/** H2_FUZZ_CASE='<mutation|random> <case seed> <server>' replays that one case, printing both sides' frames. */
const REPLAY = process.env.H2_FUZZ_CASE?.trim().split(/\s+/);

async function replay(label: string, make: (seed: number, id: string) => Case): Promise<void> {
  const [, seedText, serverName = 'defaults'] = REPLAY!;
  const i = SERVERS.findIndex((x) => x.name === serverName);
  assert.ok(i >= 0, `H2_FUZZ_CASE: no server '${serverName}'`);
  const s = running[i];
  const c = make(Number(seedText) >>> 0, `${label} case (seed ${seedText}, server '${serverName}')`);
  const sent = parseFrames(Buffer.concat(c.chunks));
  console.log(
    `  ${c.id}: ${c.desc}\n  sent:\n${sent === undefined ? Buffer.concat(c.chunks).toString('hex') : showFrames(sent.frames, sent.tail)}`,
  );
  const errorsBefore = uncaught.length;
  const o = await runCase(s.port, c);
  const got = parseFrames(Buffer.concat([PREFACE, o.received]))!;
  console.log(
    `  received (then the server ${o.serverClosed ? 'closed the connection' : 'kept the connection open'}):\n${showFrames(got.frames, got.tail)}`,
  );
  assert.equal(checkReply(c, o), [], 'protocol problems');
  await sleep(20);
  assert.is(uncaught.length, errorsBefore, `the server threw\n${describeUncaught(errorsBefore)}`);
  assert.ok(await settled(s.server), `nothing left open (${counts(s.server)})`);
  await assertServes(s, c.id);
}

/** Batches of generated cases, alternating servers; invariants after each batch. */
async function fuzz(label: string, batches: number, budgetMs: number, make: (seed: number, id: string) => Case): Promise<void> {
  if (REPLAY !== undefined) {
    if (REPLAY[0] === label) await replay(label, make);
    return;
  }
  const master = new Rand(SEED ^ (label === 'mutation' ? 0x6d75 : 0x7261));
  const started = Date.now();
  let ran = 0;
  for (let b = 0; b < batches; b++) {
    if (Date.now() - started > budgetMs) {
      console.log(`  ${label}: time budget reached after ${b} of ${batches} batches`);
      break;
    }
    const s = running[b % running.length];
    const name = SERVERS[b % running.length].name;
    const cases = Array.from({ length: BATCH }, (_, i) => {
      const caseSeed = master.u32();
      return make(caseSeed, `${label} batch ${b} case ${i} (seed ${caseSeed}, server '${name}')`);
    });
    const errorsBefore = uncaught.length;
    const problems = await runPool(s.port, cases);
    ran += cases.length;
    await sleep(20); // let exceptions from the last frames surface
    const clean = await settled(s.server);
    const where = `${label} batch ${b} (seed ${SEED}, server '${name}')`;
    if (uncaught.length > errorsBefore) {
      const thrown = describeUncaught(errorsBefore);
      const suspects = new Set(uncaught.slice(errorsBefore).flatMap((u) => u.suspects));
      const report = await isolate(s, cases, 'crash', suspects);
      assert.unreachable(`${where}: the server threw\n${thrown}\n${report}`);
    }
    if (!clean) {
      const leftover = counts(s.server);
      // Give the leak a moment more, then look for the case that leaves something behind by itself.
      const recovered = await settled(s.server, 3_000);
      const report = await isolate(s, cases, 'leak', new Set());
      assert.unreachable(
        `${where}: ${leftover} still open ${SETTLE_MS} ms after every fuzz connection closed (recovered later: ${recovered})\n${report}`,
      );
    }
    assert.equal(problems, [], `${where}: the server broke the protocol towards a fuzzing client`);
    await assertServes(s, where);
    assert.is(uncaught.length, errorsBefore, `${where}: the server threw\n${describeUncaught(errorsBefore)}`);
  }
  console.log(`  ${label}: ${ran} connections in ${Date.now() - started} ms`);
}

test('mutation fuzz: mutated valid connections (unary, CONTINUATION, padding, HPACK, control, streams, flow control)', async () => {
  await fuzz('mutation', MUTATION_BATCHES, MUTATION_BUDGET_MS, mutationCase);
});

test('random frame sequences: random types, flags, stream ids, settings, window increments, header blocks', async () => {
  await fuzz('random', RANDOM_BATCHES, RANDOM_BUDGET_MS, randomCase);
});

// node --expose-gc is not how the suite runs this file; the flag can still be turned on from inside.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** The GrpcServer's internals, read only to hold weak references to what a connection allocated. */
interface Internals {
  sessions: Set<{ session: object }>;
  calls: Set<object>;
}

for (const close of ['destroy', 'end'] as const) {
  test(`memory: 2000 HEADERS-only streams on one connection, then the client ${close === 'destroy' ? 'resets' : 'half-closes'} the socket: every call ends, nothing is retained`, async () => {
    const s = running[0];
    const server = s.server;
    assert.ok(await settled(server), `clean before (${counts(server)})`);
    const errorsBefore = uncaught.length;
    const STREAMS = 2000;
    const fields: [string, string][] = [
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', EchoService.Unary.path],
      [':authority', '127.0.0.1'],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
    ];
    const block = encodeStatelessBlock(fields);
    const parts = [PREFACE, frameBytes(fr(T_SETTINGS, 0, 0))];
    for (let i = 0; i < STREAMS; i++) parts.push(frameBytes(fr(T_HEADERS, F_END_HEADERS, 1 + 2 * i, block)));
    const sock = net.connect({ port: s.port, host: '127.0.0.1', noDelay: true });
    sock.on('error', () => undefined);
    sock.resume(); // read (and drop) whatever the server sends
    try {
      await bounded(
        new Promise<void>((resolve, reject) => {
          sock.once('connect', resolve);
          sock.once('error', reject);
        }),
        3_000,
        'connect',
      );
      sock.write(Buffer.concat(parts));
      const opened = await until(() => server.activeCalls === STREAMS, 5_000);
      assert.ok(opened, `all ${STREAMS} calls open (${counts(server)})`);
      assert.is(server.connections, 1);
      const internals = server as unknown as Internals;
      const refs = [...internals.sessions].map((x) => new WeakRef(x.session));
      [...internals.calls].forEach((c, i) => {
        if (i % 97 === 0) refs.push(new WeakRef(c));
      });
      if (close === 'destroy') sock.destroy();
      else sock.end();
      assert.ok(await settled(server), `calls and connection gone after the client left (${counts(server)})`);
      // What the connection allocated must become garbage (retried: sockets and timers let go asynchronously).
      const freed = await until(() => {
        gc();
        return refs.every((r) => r.deref() === undefined);
      }, 3_000);
      assert.ok(
        freed,
        `${refs.filter((r) => r.deref() !== undefined).length} of ${refs.length} session/call objects still reachable after the connection closed`,
      );
    } finally {
      sock.destroy();
    }
    assert.is(uncaught.length, errorsBefore, `the server threw\n${describeUncaught(errorsBefore)}`);
    await assertServes(s, '2000 streams');
  });
}

test('memory: 2000 HEADERS-only streams against maxConcurrentStreams 3: refused beyond the limit, nothing left after close', async () => {
  const s = running[1];
  const server = s.server;
  assert.ok(await settled(server), `clean before (${counts(server)})`);
  const errorsBefore = uncaught.length;
  const block = encodeStatelessBlock([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', EchoService.Unary.path],
    [':authority', '127.0.0.1'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ]);
  const parts = [PREFACE, frameBytes(fr(T_SETTINGS, 0, 0))];
  for (let i = 0; i < 2000; i++) parts.push(frameBytes(fr(T_HEADERS, F_END_HEADERS, 1 + 2 * i, block)));
  const o = await runCase(
    s.port,
    { id: 'refusals', desc: '2000 HEADERS', chunks: [Buffer.concat(parts)], delays: [0], halfClose: false, prefaceIntact: true },
    500,
  );
  const f = parseFrames(Buffer.concat([PREFACE, o.received]));
  const rsts = f?.frames.filter((x) => x.type === T_RST_STREAM && x.payload.readUInt32BE(0) === 7).length ?? 0;
  assert.ok(rsts >= 1997, `streams over the limit refused with REFUSED_STREAM (got ${rsts})`);
  assert.ok(await settled(server), `calls and connection gone (${counts(server)})`);
  assert.is(uncaught.length, errorsBefore, `the server threw\n${describeUncaught(errorsBefore)}`);
  await assertServes(s, '2000 refused streams');
});

/**
 * Sends `count` frames (`unit(i)`) after the preface, SETTINGS and `start` on one connection, in writes of
 * about 256 KiB (reading and dropping what the server sends), for at most 4 s. Returns how much the heap
 * grew while the connection was still open, measured after a full GC.
 */
async function flood(
  s: Running,
  start: Buffer[],
  unit: (i: number) => Buffer,
  count: number,
): Promise<{ heapGrowthMb: number; serverClosed: boolean; sent: number }> {
  gc();
  const before = process.memoryUsage().heapUsed;
  const sock = net.connect({ port: s.port, host: '127.0.0.1', noDelay: true });
  let serverClosed = false;
  sock.on('error', () => undefined);
  sock.on('end', () => {
    serverClosed = true;
  });
  sock.on('close', () => {
    serverClosed = true;
  });
  sock.resume();
  let sent = 0;
  try {
    await bounded(
      new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
      }),
      3_000,
      'connect',
    );
    sock.write(Buffer.concat([PREFACE, frameBytes(fr(T_SETTINGS, 0, 0)), ...start]));
    const per = Math.max(1, Math.floor((256 * 1024) / unit(0).length));
    const until = Date.now() + 4_000;
    while (sent < count && !serverClosed && Date.now() < until) {
      const n = Math.min(per, count - sent);
      const batch = Buffer.concat(Array.from({ length: n }, (_, i) => unit(sent + i)));
      sent += n;
      if (!sock.write(batch)) await Promise.race([new Promise((resolve) => sock.once('drain', resolve)), sleep(1_000)]);
    }
    await sleep(100);
    gc();
    return { heapGrowthMb: (process.memoryUsage().heapUsed - before) / 2 ** 20, serverClosed, sent };
  } finally {
    sock.destroy();
  }
}

const UNARY_BLOCK = encodeStatelessBlock([
  [':method', 'POST'],
  [':scheme', 'http'],
  [':path', EchoService.Unary.path],
  [':authority', '127.0.0.1'],
  ['content-type', 'application/grpc'],
  ['te', 'trailers'],
]);
/** What one connection may make the server hold on to, whatever it floods it with. */
const FLOOD_HEAP_MB_MAX = 16;

test('memory: a flood of empty CONTINUATION frames (no END_HEADERS ever) is cut off or costs bounded memory', async () => {
  // Each CONTINUATION adds 0 bytes to the header block, so a limit on the block's size never trips;
  // what the server keeps per frame must still be bounded (RFC 9113 §10.5; CVE-2024-27316 class).
  const s = running[0];
  const errorsBefore = uncaught.length;
  const r = await flood(s, [frameBytes(fr(T_HEADERS, 0, 1, UNARY_BLOCK))], () => frameBytes(fr(T_CONTINUATION, 0, 1)), 400_000);
  console.log(
    `  empty CONTINUATION flood: ${r.sent} frames (${((r.sent * 9) / 2 ** 20).toFixed(1)} MiB), server closed: ${r.serverClosed}, heap +${r.heapGrowthMb.toFixed(1)} MiB`,
  );
  assert.ok(
    r.heapGrowthMb < FLOOD_HEAP_MB_MAX,
    `${r.sent} empty CONTINUATION frames (${((r.sent * 9) / 2 ** 20).toFixed(1)} MiB on the wire) grew the heap by ${r.heapGrowthMb.toFixed(1)} MiB with the connection still open (server closed: ${r.serverClosed}); limit ${FLOOD_HEAP_MB_MAX} MiB`,
  );
  assert.ok(await settled(s.server), `connection gone afterwards (${counts(s.server)})`);
  assert.is(uncaught.length, errorsBefore, `the server threw\n${describeUncaught(errorsBefore)}`);
  await assertServes(s, 'CONTINUATION flood');
});

test('memory: rapid reset (HEADERS + RST_STREAM, 50000 streams) and a flood of frames the server ignores cost bounded memory', async () => {
  const s = running[0];
  const errorsBefore = uncaught.length;
  const reset = await flood(
    s,
    [],
    (i) =>
      Buffer.concat([frameBytes(fr(T_HEADERS, F_END_HEADERS, 1 + 2 * i, UNARY_BLOCK)), frameBytes(fr(T_RST_STREAM, 0, 1 + 2 * i, u32(8)))]),
    50_000,
  );
  assert.ok(reset.heapGrowthMb < FLOOD_HEAP_MB_MAX, `rapid reset: heap +${reset.heapGrowthMb.toFixed(1)} MiB after ${reset.sent} streams`);
  assert.ok(await settled(s.server), `rapid reset: calls and connection gone (${counts(s.server)})`);
  // Stream 1 stays open (HEADERS, no END_STREAM); then frames that change nothing, over and over.
  const ignored = [
    frameBytes(fr(T_DATA, 0, 1)), // empty DATA on the open stream
    frameBytes(fr(T_PRIORITY, 0, 3, Buffer.from([0, 0, 0, 1, 16]))), // PRIORITY on an idle stream
    frameBytes(fr(0x42, 0, 0, Buffer.from('x'))), // unknown type
    frameBytes(fr(T_PING, F_ACK, 0, Buffer.alloc(8))), // an ack for a ping never sent
    frameBytes(fr(T_SETTINGS, F_ACK, 0)), // an ack for settings never sent
  ];
  const noise = await flood(s, [frameBytes(fr(T_HEADERS, F_END_HEADERS, 1, UNARY_BLOCK))], (i) => ignored[i % ignored.length], 300_000);
  assert.ok(
    noise.heapGrowthMb < FLOOD_HEAP_MB_MAX,
    `ignored frames: heap +${noise.heapGrowthMb.toFixed(1)} MiB after ${noise.sent} frames`,
  );
  assert.ok(await settled(s.server), `ignored frames: calls and connection gone (${counts(s.server)})`);
  assert.is(uncaught.length, errorsBefore, `the server threw\n${describeUncaught(errorsBefore)}`);
  await assertServes(s, 'floods');
});

test('regression: one request header sent 17 times (content-type) does not take the process down', async () => {
  // The shrunk reproduction of a crash the mutation fuzz finds: the raw engine hands repeated headers
  // on as string[] (node:http2 keeps the first content-type), and an array of 17+ entries reaches
  // isGrpcContentType(), which calls startsWith() on it: a TypeError out of the socket's 'data' handler.
  const s = running[0];
  const errorsBefore = uncaught.length;
  const fields: [string, string][] = [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', EchoService.Unary.path],
  ];
  for (let i = 0; i < 17; i++) fields.push(['content-type', 'application/grpc']);
  const bytes = Buffer.concat([
    PREFACE,
    frameBytes(fr(T_SETTINGS, 0, 0)),
    frameBytes(fr(T_HEADERS, F_END_HEADERS | F_END_STREAM, 1, encodeStatelessBlock(fields))),
  ]);
  await runCase(
    s.port,
    {
      id: 'content-type x17',
      desc: 'HEADERS with 17 content-type fields',
      chunks: [bytes],
      delays: [0],
      halfClose: false,
      prefaceIntact: true,
    },
    200,
  );
  await sleep(20);
  assert.is(uncaught.length, errorsBefore, `the server threw\n${describeUncaught(errorsBefore)}`);
  assert.ok(await settled(s.server), `connection gone afterwards (${counts(s.server)})`);
  await assertServes(s, 'repeated content-type');
});

test.run();
