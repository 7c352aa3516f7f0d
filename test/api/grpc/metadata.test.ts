// Metadata: the handler's view of request headers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Metadata } from '../../../src/api/grpc/metadata.js';

test('text and -bin keys; protocol headers and pseudo-headers hidden except :authority', () => {
  const md = new Metadata({
    ':path': '/x',
    ':authority': 'h:1',
    'content-type': 'application/grpc',
    'grpc-timeout': '1S',
    te: 'trailers',
    token: 'abc',
    'user-agent': 'grpc-go/1.26',
    'trace-bin': 'AAEC/w==,AQ',
    multi: ['a', 'b'],
  });
  assert.is(md.get('token'), 'abc');
  assert.is(md.get(':authority'), 'h:1');
  assert.is(md.get(':path'), undefined);
  assert.is(md.get('content-type'), undefined);
  assert.is(md.get('grpc-timeout'), undefined);
  assert.is(md.get('multi'), 'a, b');
  assert.equal([...md.getBinary('trace-bin')!], [0, 1, 2, 255]);
  assert.equal(
    md.getAllBinary('trace-bin').map((b) => [...b]),
    [[0, 1, 2, 255], [1]],
  );
  assert.is(md.getBinary('token'), undefined, 'text keys have no binary form');
  assert.equal(md.keys().sort(), [':authority', 'multi', 'token', 'trace-bin', 'user-agent']);
});

test.run();
