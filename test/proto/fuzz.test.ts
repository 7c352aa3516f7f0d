// Hostile input: random bytes and mutated valid messages fed to every decoder, random JSON-ish
// values fed to every fromJson. Each must return or throw ProtoDecodeError: no other exception,
// no hang, no crash.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtoDecodeError } from '../../src/proto/wire.js';
import { allMessageNames, codec, randomMessage, Rng } from './helpers.js';

const names = allMessageNames();
const RANDOM_PER_MESSAGE = 150;
const MUTATED_PER_MESSAGE = 150;
const JSON_PER_MESSAGE = 60;

function expectDecodeErrorOnly(fn: () => unknown, what: string): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (!(e instanceof ProtoDecodeError)) assert.unreachable(`${what}: threw ${(e as Error)?.stack ?? e}`);
    return false;
  }
}

/** Bytes biased toward protobuf structure: small tags, varint continuation bytes, lengths. */
function randomBytes(rng: Rng): Uint8Array {
  const n = rng.int(64);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    b[i] = r < 0.3 ? rng.int(0x40) : r < 0.45 ? 0x80 | rng.int(0x80) : r < 0.55 ? 0xff : rng.int(256);
  }
  return b;
}

function mutate(rng: Rng, src: Uint8Array): Uint8Array {
  const b = Uint8Array.from(src);
  const edits = 1 + rng.int(4);
  let out: Uint8Array = b;
  for (let e = 0; e < edits; e++) {
    const kind = rng.int(5);
    if (out.length === 0) {
      out = Uint8Array.from([rng.int(256)]);
      continue;
    }
    const at = rng.int(out.length);
    if (kind === 0) out[at] ^= 1 << rng.int(8);
    else if (kind === 1) out[at] = rng.pick([0x00, 0x7f, 0x80, 0xff, 0x0b, 0x0c, 0x0f]);
    else if (kind === 2) out = out.subarray(0, at);
    else if (kind === 3) out = Uint8Array.from([...out.subarray(0, at), ...randomBytes(rng).subarray(0, 4), ...out.subarray(at)]);
    else out = Uint8Array.from([...out.subarray(0, at), ...out.subarray(at + 1 + rng.int(3))]);
  }
  return out;
}

test('random bytes into every decoder', () => {
  const rng = new Rng(1234);
  let ok = 0,
    refused = 0;
  for (const name of names) {
    const c = codec(name);
    for (let i = 0; i < RANDOM_PER_MESSAGE; i++) {
      const b = randomBytes(rng);
      if (expectDecodeErrorOnly(() => c.decode(b), `${name} random`)) ok++;
      else refused++;
    }
  }
  assert.ok(ok > 0 && refused > 0, `decoded ${ok}, refused ${refused}`);
});

test('mutated valid messages into every decoder; what decodes re-encodes', () => {
  const rng = new Rng(4321);
  let ok = 0,
    refused = 0;
  for (const name of names) {
    const c = codec(name);
    for (let i = 0; i < MUTATED_PER_MESSAGE; i++) {
      const valid = c.encode(randomMessage(name, rng));
      const b = mutate(rng, valid);
      let decoded: unknown;
      if (
        expectDecodeErrorOnly(() => {
          decoded = c.decode(b);
        }, `${name} mutated`)
      ) {
        ok++;
        // Whatever we accept, we can write again, and it reads back the same.
        const again = c.encode(decoded);
        assert.equal(c.toJson(c.decode(again)), c.toJson(decoded), `${name}: re-encode`);
      } else {
        refused++;
      }
    }
  }
  assert.ok(ok > 0 && refused > 0, `decoded ${ok}, refused ${refused}`);
});

const JUNK: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  2 ** 64,
  '',
  'x',
  'AA==',
  '-1',
  '18446744073709551616',
  [],
  [null],
  [1, 'a'],
  {},
  { a: 1 },
  NaN,
];

function randomJson(rng: Rng, depth: number): unknown {
  if (depth > 3 || rng.chance(0.6)) return rng.pick(JUNK);
  if (rng.chance(0.5)) return [randomJson(rng, depth + 1), randomJson(rng, depth + 1)];
  return { x: randomJson(rng, depth + 1) };
}

test('random and corrupted JSON into every fromJson', () => {
  const rng = new Rng(777);
  let ok = 0,
    refused = 0;
  for (const name of names) {
    const c = codec(name);
    for (let i = 0; i < JSON_PER_MESSAGE; i++) {
      // Start from a valid JSON form and replace one field value with junk, or send junk whole.
      const valid = c.toJson(randomMessage(name, rng)) as Record<string, unknown>;
      const keys = Object.keys(valid);
      let input: unknown = valid;
      if (rng.chance(0.15) || keys.length === 0) input = randomJson(rng, 0);
      else valid[rng.pick(keys)] = randomJson(rng, 0);
      if (expectDecodeErrorOnly(() => c.fromJson(input), `${name} json`)) ok++;
      else refused++;
    }
  }
  assert.ok(ok > 0 && refused > 0, `parsed ${ok}, refused ${refused}`);
});

test.run();
