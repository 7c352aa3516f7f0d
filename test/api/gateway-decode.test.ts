// Go's JSON decoding texts as etcd 3.4's gateway answers them, for bodies that are not valid JSON (or hold more
// than one value): [body, etcd 3.4.23's "error" for POST /v3/kv/range, or null where the body decoded and
// etcd went on to serve it]. Observed with raw HTTP against etcd 3.4.23 (the compat suite checks a few live).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeBody } from '../../src/api/gateway/decode.js';
import { KV } from '../../src/proto/rpc.js';

const OBSERVED: [string, string | null][] = [
  ['{', 'unexpected EOF'],
  ['{"', 'unexpected EOF'],
  ['{"a"', 'unexpected EOF'],
  ['{"a":', 'unexpected EOF'],
  ['{"a":1', 'unexpected EOF'],
  ['{"a":1,', 'unexpected EOF'],
  ['[', 'unexpected EOF'],
  ['[1', 'unexpected EOF'],
  ['[1,', 'unexpected EOF'],
  ['tru', 'unexpected EOF'],
  ['trux', "invalid character 'x' in literal true (expecting 'e')"],
  ['fals', 'unexpected EOF'],
  ['falsy', "invalid character 'y' in literal false (expecting 'e')"],
  ['nulL', "invalid character 'L' in literal null (expecting 'l')"],
  ['-', 'unexpected EOF'],
  ['-x', "invalid character 'x' in numeric literal"],
  ['01', 'json: cannot unmarshal number into Go value of type map[string]json.RawMessage'],
  ['1.', 'unexpected EOF'],
  ['1.x', "invalid character 'x' after decimal point in numeric literal"],
  ['1e', 'unexpected EOF'],
  ['1ex', "invalid character 'x' in exponent of numeric literal"],
  ['1e+', 'unexpected EOF'],
  ['1e+x', "invalid character 'x' in exponent of numeric literal"],
  ['"abc', 'unexpected EOF'],
  ['"\\u12', 'unexpected EOF'],
  ['"\\u12x3"', "invalid character 'x' in \\u hexadecimal character escape"],
  ['"a\u0001b"', "invalid character '\\x01' in string literal"],
  ['{"a":1 "b":2}', "invalid character '\"' after object key:value pair"],
  ['{"a":1]', "invalid character ']' after object key:value pair"],
  ['[1 2]', "invalid character '2' after array element"],
  ['[1}', "invalid character '}' after array element"],
  ['}', "invalid character '}' looking for beginning of value"],
  [']', "invalid character ']' looking for beginning of value"],
  [':', "invalid character ':' looking for beginning of value"],
  [',', "invalid character ',' looking for beginning of value"],
  ["'x'", "invalid character '\\'' looking for beginning of value"],
  ["{'a':1}", "invalid character '\\'' looking for beginning of object key string"],
  ['{"a":1}}', null],
  ['{"key":"Zm9v"}]', null],
  ['\t\n {"key":"Zm9v"', 'unexpected EOF'],
  ['{"key":tRue}', "invalid character 'R' in literal true (expecting 'r')"],
  ['{"a":[1,2,{"b":]}]}', "invalid character ']' looking for beginning of value"],
  ['{"a":-}', "invalid character '}' in numeric literal"],
  ['{"a":.5}', "invalid character '.' looking for beginning of value"],
  ['{"a":+1}', "invalid character '+' looking for beginning of value"],
  ['{"a":0x10}', "invalid character 'x' after object key:value pair"],
  ['{"a":1e5x}', "invalid character 'x' after object key:value pair"],
  ['é', "invalid character 'Ã' looking for beginning of value"],
  ['{"a":"é"}x', null],
  ['', "invalid character '\\x7f' looking for beginning of value"],
];

test("every body decodes, or fails with etcd's text", () => {
  for (const [body, etcdText] of OBSERVED) {
    const r = decodeBody(KV.methods.Range, body);
    assert.is(r.error ?? null, etcdText, JSON.stringify(body));
  }
});

test.run();
