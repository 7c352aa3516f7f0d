// Pure gRPC wire helpers: grpc-timeout parsing, grpc-message percent-encoding, content-type rule, framing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decodeGrpcMessage,
  encodeGrpcMessage,
  formatGrpcTimeout,
  frameMessage,
  isGrpcContentType,
  methodType,
  parseGrpcTimeoutMs,
} from '../../../src/api/grpc/protocol.js';

test('parseGrpcTimeoutMs: every unit, and grpc-go texts for bad values', () => {
  assert.is(parseGrpcTimeoutMs('1H'), 3_600_000);
  assert.is(parseGrpcTimeoutMs('2M'), 120_000);
  assert.is(parseGrpcTimeoutMs('5S'), 5000);
  assert.is(parseGrpcTimeoutMs('4999m'), 4999);
  assert.is(parseGrpcTimeoutMs('1500u'), 1.5);
  assert.is(parseGrpcTimeoutMs('2000000n'), 2);
  assert.is(parseGrpcTimeoutMs('99999999S'), 99_999_999_000);
  assert.throws(() => parseGrpcTimeoutMs('S'), /timeout string is too short: "S"/);
  assert.throws(() => parseGrpcTimeoutMs('123456789S'), /timeout string is too long/);
  assert.throws(() => parseGrpcTimeoutMs('10x'), /timeout unit is not recognized: "10x"/);
  assert.throws(() => parseGrpcTimeoutMs('1-0S'), /invalid syntax/);
  assert.is(formatGrpcTimeout(1234.2), '1235m');
  assert.is(parseGrpcTimeoutMs(formatGrpcTimeout(5e9)), 5e9);
});

test('grpc-message: printable ASCII passes, the rest is %XX per UTF-8 byte; decode reverses it', () => {
  assert.is(encodeGrpcMessage('etcdserver: key is not provided'), 'etcdserver: key is not provided');
  assert.is(encodeGrpcMessage('100%'), '100%25');
  assert.is(encodeGrpcMessage('a\nb'), 'a%0Ab');
  assert.is(encodeGrpcMessage('ü'), '%C3%BC');
  assert.is(encodeGrpcMessage(''), '');
  for (const m of ['x%y', 'über ~ 日本 \r\n\t %41', '%%%', 'plain']) assert.is(decodeGrpcMessage(encodeGrpcMessage(m)), m);
  assert.is(decodeGrpcMessage('bad %zz escape %4'), 'bad %zz escape %4');
});

test('content-type: application/grpc and its +subtype/;params forms only', () => {
  for (const ok of ['application/grpc', 'application/grpc+proto', 'application/grpc;charset=utf-8']) assert.ok(isGrpcContentType(ok), ok);
  for (const bad of [undefined, '', 'application/json', 'application/grpcx', 'application/grpc-web', 'text/plain', 'Application/GRPC+json'])
    assert.not.ok(isGrpcContentType(bad), String(bad));
});

test('frameMessage and methodType', () => {
  const f = frameMessage(new Uint8Array([1, 2, 3]));
  assert.equal([...f], [0, 0, 0, 0, 3, 1, 2, 3]);
  const big = frameMessage(new Uint8Array(70_000));
  assert.is(big.readUInt32BE(1), 70_000);
  assert.is(methodType(false, false), 'unary');
  assert.is(methodType(false, true), 'server_stream');
  assert.is(methodType(true, false), 'client_stream');
  assert.is(methodType(true, true), 'bidi_stream');
});

test.run();
