// Value syntaxes etcd's flags inherit from Go: strconv integers and booleans, time.ParseDuration,
// net/url + etcd's types.NewURLs URL lists, and `name=url,...` cluster maps — with Go's error texts,
// because etcd prints them verbatim and tetcd must reject the same inputs with the same words.
import { isIP } from 'node:net';

/** Why a Go strconv parse failed ("parse error"/"value out of range" are what Go's flag package prints). */
export type NumError = 'syntax' | 'range';

function lower(c: string): string {
  return c.toLowerCase();
}

/** Go's underscoreOK: underscores only between digits (or after a base prefix). */
function underscoreOk(s0: string): boolean {
  let s = s0;
  let saw = '^';
  let i = 0;
  if (s.length >= 1 && (s[0] === '-' || s[0] === '+')) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === '0' && 'box'.includes(lower(s[1]!))) {
    i = 2;
    saw = '0';
    hex = lower(s[1]!) === 'x';
  }
  for (; i < s.length; i++) {
    const c = s[i]!;
    if ((c >= '0' && c <= '9') || (hex && lower(c) >= 'a' && lower(c) <= 'f')) {
      saw = '0';
      continue;
    }
    if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
      continue;
    }
    if (saw === '_') return false;
    saw = '!';
  }
  return saw !== '_';
}

/**
 * strconv.ParseUint(s, 0, bits): base from the prefix (0x, 0o, 0b, leading 0 = octal), underscores allowed
 * between digits. Returns the value or why it failed.
 *
 *   parseGoUint('0x10', 64) // 16n
 */
export function parseGoUint(s: string, bits: number): bigint | NumError {
  if (s.length === 0) return 'syntax';
  let base = 10n;
  let digits = s;
  if (s[0] === '0') {
    const p = s.length >= 3 ? lower(s[1]!) : '';
    if (p === 'b') {
      base = 2n;
      digits = s.slice(2);
    } else if (p === 'o') {
      base = 8n;
      digits = s.slice(2);
    } else if (p === 'x') {
      base = 16n;
      digits = s.slice(2);
    } else {
      base = 8n;
      digits = s.slice(1);
    }
  }
  const max = (1n << BigInt(bits)) - 1n;
  let n = 0n;
  let underscores = false;
  for (const c of digits) {
    if (c === '_') {
      underscores = true;
      continue;
    }
    const lc = lower(c);
    let d: bigint;
    if (c >= '0' && c <= '9') d = BigInt(c.charCodeAt(0) - 48);
    else if (lc >= 'a' && lc <= 'z') d = BigInt(lc.charCodeAt(0) - 87);
    else return 'syntax';
    if (d >= base) return 'syntax';
    n = n * base + d;
    if (n > max) return 'range';
  }
  if (underscores && !underscoreOk(s)) return 'syntax';
  return n;
}

/** strconv.ParseInt(s, 0, bits): an optional sign, then ParseUint's syntax. */
export function parseGoInt(s: string, bits: number): bigint | NumError {
  if (s.length === 0) return 'syntax';
  let neg = false;
  let body = s;
  if (s[0] === '+' || s[0] === '-') {
    neg = s[0] === '-';
    body = s.slice(1);
  }
  const un = parseGoUint(body, bits);
  if (typeof un !== 'bigint') return un;
  const cutoff = 1n << BigInt(bits - 1);
  if (!neg && un >= cutoff) return 'range';
  if (neg && un > cutoff) return 'range';
  return neg ? -un : un;
}

/** strconv.Atoi: base 10 only, optional sign, no underscores. */
export function parseAtoi(s: string): bigint | NumError {
  if (!/^[+-]?[0-9]+$/.test(s)) return 'syntax';
  const v = BigInt(s);
  if (v > (1n << 63n) - 1n || v < -(1n << 63n)) return 'range';
  return v;
}

/** strconv.ParseBool: the exact spellings Go accepts, else null. */
export function parseGoBool(s: string): boolean | null {
  switch (s) {
    case '1':
    case 't':
    case 'T':
    case 'TRUE':
    case 'true':
    case 'True':
      return true;
    case '0':
    case 'f':
    case 'F':
    case 'FALSE':
    case 'false':
    case 'False':
      return false;
    default:
      return null;
  }
}

/** The Go error text for a failed strconv call, e.g. `strconv.ParseUint: parsing "x": invalid syntax`. */
export function strconvErrorText(fn: string, input: string, why: NumError): string {
  return `strconv.${fn}: parsing ${goQuote(input)}: ${why === 'syntax' ? 'invalid syntax' : 'value out of range'}`;
}

/** Go's %q for the ASCII-printable strings config values are; other bytes get \x/\u escapes like strconv.Quote. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + '"';
}

const NS_PER: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n,
  μs: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const INT64_MAX = (1n << 63n) - 1n;

/**
 * time.ParseDuration: "300ms", "1.5h", "2h45m"; a bare "0" is the only unitless value. Returns nanoseconds,
 * or Go's error text (`time: missing unit in duration "5"`).
 *
 *   parseGoDuration('1m30s') // 90_000_000_000n
 */
export function parseGoDuration(orig: string): bigint | { error: string } {
  const invalid = { error: `time: invalid duration ${goQuote(orig)}` };
  let s = orig;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') return invalid;
  let total = 0n;
  while (s !== '') {
    if (!(s[0] === '.' || (s[0]! >= '0' && s[0]! <= '9'))) return invalid;
    let i = 0;
    let v = 0n;
    while (i < s.length && s[i]! >= '0' && s[i]! <= '9') {
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > 1n << 63n) return invalid;
      i++;
    }
    const pre = i > 0;
    s = s.slice(i);
    let post = false;
    let frac = 0n;
    let scale = 1;
    if (s !== '' && s[0] === '.') {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      while (j < s.length && s[j]! >= '0' && s[j]! <= '9') {
        if (!overflow) {
          const next = frac * 10n + BigInt(s.charCodeAt(j) - 48);
          if (frac > ((1n << 63n) - 1n) / 10n || next > 1n << 63n) overflow = true;
          else {
            frac = next;
            scale *= 10;
          }
        }
        j++;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) return invalid;
    let u = 0;
    while (u < s.length && !(s[u] === '.' || (s[u]! >= '0' && s[u]! <= '9'))) u++;
    if (u === 0) return { error: `time: missing unit in duration ${goQuote(orig)}` };
    const unitName = s.slice(0, u);
    s = s.slice(u);
    const unit = NS_PER[unitName];
    if (unit === undefined) return { error: `time: unknown unit ${goQuote(unitName)} in duration ${goQuote(orig)}` };
    if (v > (1n << 63n) / unit) return invalid;
    v *= unit;
    if (frac > 0n) {
      // Go converts through float64 here; so do we, to round identically.
      v += BigInt(Math.trunc(Number(frac) * (Number(unit) / scale)));
      if (v > 1n << 63n) return invalid;
    }
    total += v;
    if (total > 1n << 63n) return invalid;
  }
  if (neg) return -total;
  if (total > INT64_MAX) return invalid;
  return total;
}

/** One URL as etcd keeps it after types.NewURLs validated it. */
export interface GoUrl {
  /** Lower-cased: http, https, unix or unixs. */
  scheme: string;
  /** host:port as written (brackets kept for IPv6). */
  host: string;
  /** The host part without brackets and port ("127.0.0.1", "::1", "localhost"). */
  hostname: string;
  port: string;
  /** Go's url.String(): the form etcd compares, sorts, hashes into member IDs and prints. */
  href: string;
}

/** net.SplitHostPort with Go's error texts. */
export function splitHostPort(hostport: string): { host: string; port: string } | { error: string } {
  const addrErr = (why: string) => ({ error: `address ${hostport}: ${why}` });
  const i = hostport.lastIndexOf(':');
  if (i < 0) return addrErr('missing port in address');
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport[0] === '[') {
    const end = hostport.indexOf(']');
    if (end < 0) return addrErr("missing ']' in address");
    if (end + 1 === hostport.length) return addrErr('missing port in address');
    if (end + 1 !== i) return addrErr(hostport[end + 1] === ':' ? 'too many colons in address' : 'missing port in address');
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(':')) return addrErr('too many colons in address');
  }
  if (hostport.slice(j).includes('[')) return addrErr("unexpected '[' in address");
  if (hostport.slice(k).includes(']')) return addrErr("unexpected ']' in address");
  return { host, port: hostport.slice(i + 1) };
}

interface ParsedUrl {
  scheme: string;
  opaque: string;
  userinfo: string | null;
  host: string;
  path: string;
  query: string | null;
  fragment: string;
}

const HOST_OK = new Set('!$&\'()*+,;=:[]<>"-_.~');

function validOptionalPort(p: string): boolean {
  return p === '' || (p[0] === ':' && /^[0-9]*$/.test(p.slice(1)));
}

/** Go's url unescape checks: every % starts a 2-digit hex escape; in a host, only host-safe ASCII. */
function checkEscapes(s: string, host: boolean): string | null {
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '%') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return `invalid URL escape ${goQuote(s.slice(i, i + 3))}`;
      i += 2;
      continue;
    }
    if (host && c.charCodeAt(0) < 0x80 && !/[A-Za-z0-9]/.test(c) && !HOST_OK.has(c)) {
      return `invalid character ${goQuote(c)} in host name`;
    }
  }
  return null;
}

/** net/url.Parse, reduced to what a URL flag can contain; errors read `parse "<url>": <why>`. */
function parseUrl(raw: string): ParsedUrl | { error: string } {
  const hash = raw.indexOf('#');
  const u = hash >= 0 ? raw.slice(0, hash) : raw;
  const fragment = hash >= 0 ? raw.slice(hash + 1) : '';
  const fail = (why: string, whole = u) => ({ error: `parse ${goQuote(whole)}: ${why}` });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: Go's net/url refuses exactly these control characters
  if (/[\x00-\x1f\x7f]/.test(u)) return fail('net/url: invalid control character in URL');
  let scheme = '';
  let rest = u;
  for (let i = 0; i < u.length; i++) {
    const c = u[i]!;
    if (/[A-Za-z]/.test(c)) continue;
    if (/[0-9+\-.]/.test(c)) {
      if (i === 0) break;
      continue;
    }
    if (c === ':') {
      if (i === 0) return fail('missing protocol scheme');
      scheme = u.slice(0, i).toLowerCase();
      rest = u.slice(i + 1);
    }
    break;
  }
  let query: string | null = null;
  if (rest.endsWith('?') && rest.split('?').length === 2) {
    query = '';
    rest = rest.slice(0, -1);
  } else {
    const q = rest.indexOf('?');
    if (q >= 0) {
      query = rest.slice(q + 1);
      rest = rest.slice(0, q);
    }
  }
  const out: ParsedUrl = { scheme, opaque: '', userinfo: null, host: '', path: '', query, fragment };
  if (!rest.startsWith('/')) {
    if (scheme !== '') {
      out.opaque = rest;
      return out;
    }
    const seg = rest.split('/')[0]!;
    if (seg.includes(':')) return fail('first path segment in URL cannot contain colon');
  }
  if ((scheme !== '' || !rest.startsWith('///')) && rest.startsWith('//')) {
    let authority = rest.slice(2);
    rest = '';
    const slash = authority.indexOf('/');
    if (slash >= 0) {
      rest = authority.slice(slash);
      authority = authority.slice(0, slash);
    }
    const at = authority.lastIndexOf('@');
    const host = at < 0 ? authority : authority.slice(at + 1);
    if (host.startsWith('[')) {
      const close = host.lastIndexOf(']');
      if (close < 0) return fail("missing ']' in host");
      const colonPort = host.slice(close + 1);
      if (!validOptionalPort(colonPort)) return fail(`invalid port ${goQuote(colonPort)} after host`);
    } else {
      const colon = host.lastIndexOf(':');
      if (colon >= 0 && !validOptionalPort(host.slice(colon))) return fail(`invalid port ${goQuote(host.slice(colon))} after host`);
    }
    const hostErr = checkEscapes(host, true);
    if (hostErr !== null) return fail(hostErr);
    if (at >= 0) {
      out.userinfo = authority.slice(0, at);
      if (!/^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(out.userinfo)) return fail('net/url: invalid userinfo');
    }
    out.host = host;
  }
  const pathErr = checkEscapes(rest, false);
  if (pathErr !== null) return fail(pathErr);
  out.path = rest;
  if (fragment !== '') {
    const fragErr = checkEscapes(fragment, false);
    if (fragErr !== null) return fail(fragErr, raw);
  }
  return out;
}

function urlString(p: ParsedUrl): string {
  let s = p.scheme !== '' ? p.scheme + ':' : '';
  if (p.opaque !== '') s += p.opaque;
  else {
    if (p.scheme !== '' || p.host !== '' || p.userinfo !== null) {
      if (p.host !== '' || p.path !== '' || p.userinfo !== null) s += '//';
      if (p.userinfo !== null) s += p.userinfo + '@';
      s += p.host;
    }
    s += p.path;
  }
  if (p.query !== null) s += '?' + p.query;
  if (p.fragment !== '') s += '#' + p.fragment;
  return s;
}

/**
 * etcd's types.NewURLs: each entry trimmed, parsed, scheme http/https/unix/unixs, host:port required, no path;
 * the result sorted by href. Errors are etcd's texts, e.g. `URL must not contain a path: http://a:1/x`.
 *
 *   newUrls(['http://127.0.0.1:2379'])
 */
export function newUrls(entries: readonly string[]): GoUrl[] | { error: string } {
  if (entries.length === 0) return { error: 'no valid URLs given' };
  const out: GoUrl[] = [];
  for (const entry of entries) {
    const raw = entry.trim();
    const p = parseUrl(raw);
    if ('error' in p) return p;
    if (!['http', 'https', 'unix', 'unixs'].includes(p.scheme)) {
      return { error: `URL scheme must be http, https, unix, or unixs: ${raw}` };
    }
    const hp = splitHostPort(p.host);
    if ('error' in hp) return { error: `URL address does not have the form "host:port": ${raw}` };
    if (p.path !== '') return { error: `URL must not contain a path: ${raw}` };
    out.push({ scheme: p.scheme, host: p.host, hostname: hp.host, port: hp.port, href: urlString(p) });
  }
  out.sort((a, b) => (a.href < b.href ? -1 : a.href > b.href ? 1 : 0));
  return out;
}

/** A name and its peer URLs from `--initial-cluster`. */
export interface ClusterMember {
  name: string;
  peerUrls: GoUrl[];
}

/**
 * etcd's types.NewURLsMap: `n1=http://a:2380,n1=http://b:2380,n2=...`; a name may repeat to list several URLs.
 * Members come back in first-seen order; a malformed URL returns NewURLs' error.
 */
export function parseUrlsMap(s: string): ClusterMember[] | { error: string } {
  const byName = new Map<string, string[]>();
  for (const item of s.split(',')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    const name = eq >= 0 ? item.slice(0, eq) : item;
    const value = eq >= 0 ? item.slice(eq + 1) : '';
    const list = byName.get(name);
    if (list) list.push(value);
    else byName.set(name, [value]);
  }
  const out: ClusterMember[] = [];
  for (const [name, raw] of byName) {
    const urls = newUrls(raw);
    if ('error' in urls) return urls;
    out.push({ name, peerUrls: urls });
  }
  return out;
}

/** types.URLsMap.String(): sorted `name=url` pairs joined by commas (how etcd prints a cluster in errors). */
export function urlsMapString(members: readonly ClusterMember[]): string {
  const pairs: string[] = [];
  for (const m of members) for (const u of m.peerUrls) pairs.push(`${m.name}=${u.href}`);
  pairs.sort();
  return pairs.join(',');
}

/** net.ParseIP-like: a literal IPv4 or IPv6 address (zones are not IPs to Go). */
export function isIpLiteral(host: string): boolean {
  return !host.includes('%') && isIP(host) !== 0;
}
