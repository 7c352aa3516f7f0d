// HPACK decoder and encoder of the bench's raw HTTP/2 client, checked against RFC 7541's worked examples.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HpackDecoder, HpackError, huffmanDecode, huffmanEncode, encodeStatelessBlock, encodeInt } from '../../src/api/h2/hpack.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function pairs(fields: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < fields.length; i += 2) out.push([fields[i], fields[i + 1]]);
  return out;
}

function decode(d: HpackDecoder, block: Buffer): [string, string][] {
  const f: string[] = [];
  d.decode(block, 0, block.length, f);
  return pairs(f);
}

test('RFC 7541 C.2.1: literal with indexing adds to the dynamic table', () => {
  const d = new HpackDecoder();
  assert.equal(decode(d, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')), [['custom-key', 'custom-header']]);
  assert.is(d.dynamicSize, 1);
  // Index 62 is now that entry.
  assert.equal(decode(d, hex('be')), [['custom-key', 'custom-header']]);
});

test('RFC 7541 C.4: requests with Huffman coding share the dynamic table', () => {
  const d = new HpackDecoder();
  assert.equal(decode(d, hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ]);
  assert.equal(decode(d, hex('8286 84be 5886 a8eb 1064 9cbf')), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ]);
  assert.equal(decode(d, hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')), [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ]);
  assert.is(d.dynamicSize, 3);
});

test('RFC 7541 C.6: responses with Huffman coding evict from a 256-byte table', () => {
  const d = new HpackDecoder(256);
  // The encoder announces the smaller table first (a size update is valid at the start of a block).
  const resize: number[] = [];
  encodeInt(resize, 0x20, 5, 256);
  const first = Buffer.concat([
    Buffer.from(resize),
    hex(
      '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
    ),
  ]);
  assert.equal(decode(d, first), [
    [':status', '302'],
    ['cache-control', 'private'],
    ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['location', 'https://www.example.com'],
  ]);
  assert.equal(decode(d, hex('4883 640e ff c1 c0 bf')), [
    [':status', '307'],
    ['cache-control', 'private'],
    ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['location', 'https://www.example.com'],
  ]);
  assert.equal(
    decode(
      d,
      hex(`88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf
    cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07`),
    ),
    [
      [':status', '200'],
      ['cache-control', 'private'],
      ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
      ['location', 'https://www.example.com'],
      ['content-encoding', 'gzip'],
      ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
    ],
  );
  assert.is(d.dynamicSize, 3);
});

test('Huffman: every byte value round-trips; bad padding and stray codes are rejected', () => {
  let all = '';
  for (let i = 0; i < 256; i++) all += String.fromCharCode(i);
  const enc = huffmanEncode(all);
  assert.is(huffmanDecode(enc, 0, enc.length), all);
  assert.is(huffmanDecode(huffmanEncode(''), 0, 0), '');
  // 'a' is 00011 (5 bits): padding with zeros instead of ones is invalid.
  assert.throws(
    () => huffmanDecode(Uint8Array.of(0x18), 0, 1),
    (e: unknown) => e instanceof HpackError,
  );
  // A full byte of ones is more than 7 bits of padding.
  const a = huffmanEncode('a');
  assert.throws(
    () => huffmanDecode(Uint8Array.of(a[0], 0xff), 0, 2),
    (e: unknown) => e instanceof HpackError,
  );
});

test('stateless request blocks decode to the same headers and leave the table empty', () => {
  const headers: [string, string][] = [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', '/etcdserverpb.KV/Put'],
    [':authority', '127.0.0.1:2379'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ['token', 'x'.repeat(200)],
  ];
  const block = Buffer.from(encodeStatelessBlock(headers));
  const d = new HpackDecoder();
  assert.equal(decode(d, block), headers);
  assert.is(d.dynamicSize, 0);
  // Exact static matches are one byte: :method POST is index 3, :scheme http index 6.
  assert.is(block[0], 0x83);
  assert.is(block[1], 0x86);
});

test('malformed blocks are errors, not garbage', () => {
  const d = new HpackDecoder();
  assert.throws(
    () => decode(d, hex('80')),
    (e: unknown) => e instanceof HpackError,
  ); // index 0
  assert.throws(
    () => decode(d, hex('ff00')),
    (e: unknown) => e instanceof HpackError,
  ); // beyond the tables
  assert.throws(
    () => decode(d, hex('400a 6375')),
    (e: unknown) => e instanceof HpackError,
  ); // truncated string
  assert.throws(
    () => decode(d, hex('82 20')),
    (e: unknown) => e instanceof HpackError,
  ); // size update after a field
  assert.throws(
    () => decode(d, hex('3fe21f')),
    (e: unknown) => e instanceof HpackError,
  ); // size above the announced limit
});

test.run();
