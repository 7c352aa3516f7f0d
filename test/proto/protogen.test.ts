// The generated modules are what the generator makes of the .proto files today, and the
// generator refuses what it cannot map faithfully.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAll } from '../../tools/protogen/generate.js';
import { jsonNameOf } from '../../tools/protogen/load.js';
import { repoRoot } from './helpers.js';

test('every generated file is up to date with its .proto (run `npm run protogen` if not)', () => {
  const files = generateAll(repoRoot);
  assert.ok(files.length >= 7);
  for (const f of files) {
    const onDisk = readFileSync(join(repoRoot, f.path), 'utf8');
    assert.ok(onDisk === f.content, `${f.path} is stale: regenerate it`);
  }
});

test('generated code imports nothing but the runtime and its siblings', () => {
  for (const f of generateAll(repoRoot)) {
    const imports = [...f.content.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    for (const i of imports) assert.ok(/^\.\.?\/[a-z0-9/._]+\.js$/.test(i) && !i.includes('protobufjs'), `${f.path} imports ${i}`);
  }
});

test('JSON names follow protoc', () => {
  assert.is(jsonNameOf('range_end'), 'rangeEnd');
  assert.is(jsonNameOf('ID'), 'ID');
  assert.is(jsonNameOf('remaining_TTL'), 'remainingTTL');
  assert.is(jsonNameOf('member_ID'), 'memberID');
  assert.is(jsonNameOf('peerURLs'), 'peerURLs');
});

function generateFrom(protoText: string): () => unknown {
  return () => {
    const root = mkdtempSync(join(tmpdir(), 'protogen-'));
    try {
      mkdirSync(join(root, 'p'));
      writeFileSync(join(root, 'p/x.proto'), protoText);
      return generateAll(root, [{ proto: 'p/x.proto', out: 'p/x.ts' }]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

test('the generator refuses maps, jstype on narrow fields and proto3 optional', () => {
  assert.throws(generateFrom('syntax = "proto3"; package t; message A { map<string, int32> m = 1; }'), /map fields/);
  assert.throws(generateFrom('syntax = "proto3"; package t; message A { int32 x = 1 [jstype = JS_STRING]; }'), /JS_STRING/);
  assert.throws(generateFrom('syntax = "proto3"; package t; message A { optional int32 x = 1; }'), /optional/);
  const ok = generateFrom('syntax = "proto3"; package t; message A { int64 x = 1 [jstype = JS_STRING]; }')() as { content: string }[];
  assert.ok(ok[0].content.includes('x: bigint;'));
  assert.ok(ok[0].content.includes("from '../src/proto/wire.js'"), 'runtime imported relative to the output');
});

test.run();
