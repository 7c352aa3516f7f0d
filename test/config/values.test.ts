// Go value syntaxes: strconv integers/booleans, time.ParseDuration, net/url + types.NewURLs, URLsMap.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  goQuote,
  newUrls,
  parseAtoi,
  parseGoBool,
  parseGoDuration,
  parseGoInt,
  parseGoUint,
  parseUrlsMap,
  splitHostPort,
  urlsMapString,
} from '../../src/config/values.js';

test('parseGoUint: base prefixes, underscores, syntax and range errors like strconv.ParseUint(s, 0, n)', () => {
  assert.is(parseGoUint('100', 64), 100n);
  assert.is(parseGoUint('0x10', 64), 16n);
  assert.is(parseGoUint('0X1f', 64), 31n);
  assert.is(parseGoUint('0o17', 64), 15n);
  assert.is(parseGoUint('017', 64), 15n, 'a leading 0 means octal');
  assert.is(parseGoUint('0b101', 64), 5n);
  assert.is(parseGoUint('0', 64), 0n);
  assert.is(parseGoUint('1_000', 64), 1000n);
  assert.is(parseGoUint('0x_1f', 64), 31n);
  assert.is(parseGoUint('1__0', 64), 'syntax');
  assert.is(parseGoUint('_10', 64), 'syntax');
  assert.is(parseGoUint('10_', 64), 'syntax');
  assert.is(parseGoUint('', 64), 'syntax');
  assert.is(parseGoUint('-1', 64), 'syntax');
  assert.is(parseGoUint('+1', 64), 'syntax');
  assert.is(parseGoUint('08', 64), 'syntax');
  assert.is(parseGoUint('0x', 64), 'syntax');
  assert.is(parseGoUint('1e3', 64), 'syntax');
  assert.is(parseGoUint('1.5', 64), 'syntax');
  assert.is(parseGoUint('18446744073709551615', 64), 18446744073709551615n);
  assert.is(parseGoUint('18446744073709551616', 64), 'range');
  assert.is(parseGoUint('4294967295', 32), 4294967295n);
  assert.is(parseGoUint('4294967296', 32), 'range');
});

test('parseGoInt: signs and int64 bounds', () => {
  assert.is(parseGoInt('-5', 64), -5n);
  assert.is(parseGoInt('+5', 64), 5n);
  assert.is(parseGoInt('-0x10', 64), -16n);
  assert.is(parseGoInt('9223372036854775807', 64), 9223372036854775807n);
  assert.is(parseGoInt('9223372036854775808', 64), 'range');
  assert.is(parseGoInt('-9223372036854775808', 64), -9223372036854775808n);
  assert.is(parseGoInt('-9223372036854775809', 64), 'range');
  assert.is(parseGoInt('-', 64), 'syntax');
  assert.is(parseGoInt('--1', 64), 'syntax');
});

test('parseAtoi is base 10 only; parseGoBool takes exactly Go spellings', () => {
  assert.is(parseAtoi('12'), 12n);
  assert.is(parseAtoi('-3'), -3n);
  assert.is(parseAtoi('0x1'), 'syntax');
  assert.is(parseAtoi('1h'), 'syntax');
  for (const s of ['1', 't', 'T', 'TRUE', 'true', 'True']) assert.is(parseGoBool(s), true, s);
  for (const s of ['0', 'f', 'F', 'FALSE', 'false', 'False']) assert.is(parseGoBool(s), false, s);
  for (const s of ['yes', 'tRUE', 'on', '', '2']) assert.is(parseGoBool(s), null, s);
});

test('parseGoDuration: units, fractions, signs, and Go error texts', () => {
  assert.is(parseGoDuration('0'), 0n);
  assert.is(parseGoDuration('5s'), 5_000_000_000n);
  assert.is(parseGoDuration('100ms'), 100_000_000n);
  assert.is(parseGoDuration('1h30m'), 5_400_000_000_000n);
  assert.is(parseGoDuration('1.5h'), 5_400_000_000_000n);
  assert.is(parseGoDuration('.5s'), 500_000_000n);
  assert.is(parseGoDuration('2.s'), 2_000_000_000n);
  assert.is(parseGoDuration('-1m'), -60_000_000_000n);
  assert.is(parseGoDuration('+3us'), 3_000n);
  assert.is(parseGoDuration('3µs'), 3_000n);
  assert.is(parseGoDuration('7ns'), 7n);
  assert.is(parseGoDuration('2562047h47m16.854775807s'), 9223372036854775807n);
  assert.equal(parseGoDuration('2562048h'), { error: 'time: invalid duration "2562048h"' });
  assert.equal(parseGoDuration('5'), { error: 'time: missing unit in duration "5"' });
  assert.equal(parseGoDuration('5d'), { error: 'time: unknown unit "d" in duration "5d"' });
  assert.equal(parseGoDuration(''), { error: 'time: invalid duration ""' });
  assert.equal(parseGoDuration('.s'), { error: 'time: invalid duration ".s"' });
  assert.equal(parseGoDuration('s'), { error: 'time: invalid duration "s"' });
  assert.equal(parseGoDuration('1.5.5s'), { error: 'time: missing unit in duration "1.5.5s"' }, 'checked against etcd');
});

test('newUrls: etcd types.NewURLs validation and error texts', () => {
  const ok = newUrls(['http://127.0.0.1:2379', ' https://[::1]:2380 ', 'unix://sock:1']);
  assert.ok(!('error' in ok));
  if ('error' in ok) return;
  assert.equal(
    ok.map((u) => u.href),
    ['http://127.0.0.1:2379', 'https://[::1]:2380', 'unix://sock:1'],
    'trimmed and sorted',
  );
  assert.is(ok[1]!.hostname, '::1');
  assert.is(ok[1]!.port, '2380');
  assert.equal(newUrls(['HTTP://LocalHost:1']), [
    { scheme: 'http', host: 'LocalHost:1', hostname: 'LocalHost', port: '1', href: 'http://LocalHost:1' },
  ]);
  assert.equal(newUrls(['ftp://a:1']), { error: 'URL scheme must be http, https, unix, or unixs: ftp://a:1' });
  assert.equal(newUrls(['localhost:2379']), { error: 'URL scheme must be http, https, unix, or unixs: localhost:2379' });
  assert.equal(newUrls(['127.0.0.1:2379']), { error: 'parse "127.0.0.1:2379": first path segment in URL cannot contain colon' });
  assert.equal(newUrls(['http://127.0.0.1']), { error: 'URL address does not have the form "host:port": http://127.0.0.1' });
  assert.equal(newUrls(['http://a:1/']), { error: 'URL must not contain a path: http://a:1/' });
  assert.equal(newUrls(['http://a b:1']), { error: 'parse "http://a b:1": invalid character " " in host name' });
  assert.equal(newUrls(['http://a:x']), { error: 'parse "http://a:x": invalid port ":x" after host' });
  assert.equal(newUrls(['http://[::1:2379']), { error: `parse "http://[::1:2379": missing ']' in host` });
  assert.equal(newUrls([':2379']), { error: 'parse ":2379": missing protocol scheme' });
  assert.equal(newUrls(['']), { error: 'URL scheme must be http, https, unix, or unixs: ' });
  assert.equal(newUrls([]), { error: 'no valid URLs given' });
});

test('splitHostPort follows net.SplitHostPort', () => {
  assert.equal(splitHostPort('a:1'), { host: 'a', port: '1' });
  assert.equal(splitHostPort('[::1]:2'), { host: '::1', port: '2' });
  assert.equal(splitHostPort('a:'), { host: 'a', port: '' });
  assert.ok('error' in splitHostPort('a'));
  assert.ok('error' in splitHostPort('::1:2'));
  assert.ok('error' in splitHostPort('[::1]'));
});

test('parseUrlsMap: repeated names collect URLs; bad URLs report NewURLs errors; String() is sorted pairs', () => {
  const m = parseUrlsMap('b=http://127.0.0.1:2,a=http://127.0.0.1:1,a=http://127.0.0.1:0,,');
  assert.ok(!('error' in m));
  if ('error' in m) return;
  assert.equal(
    m.map((x) => [x.name, x.peerUrls.map((u) => u.href)]),
    [
      ['b', ['http://127.0.0.1:2']],
      ['a', ['http://127.0.0.1:0', 'http://127.0.0.1:1']],
    ],
  );
  assert.is(urlsMapString(m), 'a=http://127.0.0.1:0,a=http://127.0.0.1:1,b=http://127.0.0.1:2');
  assert.equal(parseUrlsMap('a=bad'), { error: 'URL scheme must be http, https, unix, or unixs: bad' });
  assert.equal(parseUrlsMap(''), []);
});

test('goQuote escapes like Go %q', () => {
  assert.is(goQuote('a"b\\c'), '"a\\"b\\\\c"');
  assert.is(goQuote('\u0001'), '"\\x01"');
  assert.is(goQuote('ü'), '"ü"');
});

test.run();
