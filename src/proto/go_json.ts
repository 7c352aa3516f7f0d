// Go's encoding/json grammar with its error texts: etcd 3.4's gateway reads request bodies with a
// json.Decoder (one value at a time, trailing bytes left unread) and answers Go's syntax errors verbatim,
// so the gateway finds values and words errors the same way. Only the error path needs it: a body that
// JSON.parse takes whole is read with JSON.parse.

/** What scanning one value from `pos` found. */
export type GoScan =
  /** A complete value in text[start, end). */
  | { kind: 'value'; start: number; end: number }
  /** Only whitespace up to the end (Go: io.EOF). */
  | { kind: 'eof' }
  /** A syntax error, or the text ended inside a value; `text` is Go's. */
  | { kind: 'error'; text: string };

/** Go's quoteChar: how its syntax errors show a character (`'x'`, `'\n'`, `'\''`, `'"'`). */
export function goQuoteChar(c: number): string {
  if (c === 0x27) return "'\\''";
  if (c === 0x22) return `'"'`;
  if (c < 0x20 || c === 0x7f) {
    const named: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r' };
    return `'${named[c] ?? `\\x${c.toString(16).padStart(2, '0')}`}'`;
  }
  if (c >= 0x80 && c < 0xa0) return `'\\u${c.toString(16).padStart(4, '0')}'`;
  return `'${String.fromCharCode(c)}'`;
}

const enum P {
  ObjectKey = 0,
  ObjectValue = 1,
  ArrayValue = 2,
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** Nesting Go's scanner allows (encoding/json maxNestingDepth). */
const NESTING_MAX = 10000;

/**
 * Scans one JSON value starting at `pos` as Go's json.Decoder does: leading whitespace is skipped, the value
 * ends at its last byte (a number at the first byte that cannot continue it), and text that ends inside a
 * value is `unexpected EOF` (`unexpected end of JSON input` with `whole`, as json.Unmarshal says, which
 * also refuses anything but whitespace after the value).
 *
 *   goScanValue('{"a":1} x', 0)   // { kind: 'value', start: 0, end: 7 }
 *   goScanValue('{"a" 1}', 0)     // { kind: 'error', text: "invalid character '1' after object key" }
 */
export function goScanValue(text: string, pos: number, whole = false): GoScan {
  const n = text.length;
  const stack: P[] = [];
  let i = pos;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  if (i === n) return whole ? { kind: 'error', text: 'unexpected end of JSON input' } : { kind: 'eof' };
  const start = i;
  const eof: GoScan = { kind: 'error', text: whole ? 'unexpected end of JSON input' : 'unexpected EOF' };
  const bad = (c: number, context: string): GoScan => ({ kind: 'error', text: `invalid character ${goQuoteChar(c)} ${context}` });
  const done = (end: number): GoScan => {
    if (whole) {
      let j = end;
      while (j < n && isSpace(text.charCodeAt(j))) j++;
      if (j < n) return bad(text.charCodeAt(j), 'after top-level value');
    }
    return { kind: 'value', start, end };
  };
  // The scanner works on bytes; a character beyond ASCII is shown as its UTF-8 lead byte.
  const at = (k: number): number => {
    const c = text.charCodeAt(k);
    return c < 0x80 ? c : Buffer.from(text.slice(k, k + 2), 'utf8')[0];
  };

  // beginValue: i points at the first byte of a value. Returns the index after the value or a GoScan error.
  for (;;) {
    // ---- a value starts at i ----
    if (i >= n) return eof;
    let c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= NESTING_MAX) return { kind: 'error', text: 'exceeded max depth' };
      const isObject = c === 0x7b;
      stack.push(isObject ? P.ObjectKey : P.ArrayValue);
      i++;
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      if (i >= n) return eof;
      c = text.charCodeAt(i);
      if (isObject) {
        if (c === 0x7d /* } */) {
          stack.pop();
          i++;
        } else if (c === 0x22) {
          const r = scanString(text, i);
          if (typeof r !== 'number') return r.eof ? eof : r.err;
          i = r;
          const e = endValue();
          if (e !== undefined) return e;
          continue;
        } else {
          return bad(at(i), 'looking for beginning of object key string');
        }
      } else if (c === 0x5d /* ] */) {
        stack.pop();
        i++;
      } else {
        continue; // an array element starts at i
      }
    } else if (c === 0x22) {
      const r = scanString(text, i);
      if (typeof r !== 'number') return r.eof ? eof : r.err;
      i = r;
    } else if (c === 0x2d || isDigit(c)) {
      const r = scanNumber(text, i);
      if (typeof r !== 'number') return r.eof ? eof : r.err;
      i = r;
    } else if (c === 0x74 || c === 0x66 || c === 0x6e) {
      const word = c === 0x74 ? 'true' : c === 0x66 ? 'false' : 'null';
      for (let k = 1; k < word.length; k++) {
        if (i + k >= n) return eof;
        if (text.charCodeAt(i + k) !== word.charCodeAt(k)) return bad(at(i + k), `in literal ${word} (expecting '${word[k]}')`);
      }
      i += word.length;
    } else {
      return bad(at(i), 'looking for beginning of value');
    }
    // ---- a value ended just before i ----
    const e = endValue();
    if (e !== undefined) return e;
  }

  // After a value: pops finished containers, moves to the next key or element. Returns a GoScan when
  // scanning is over (the top value ended, or an error), undefined when a new value starts at i.
  function endValue(): GoScan | undefined {
    for (;;) {
      if (stack.length === 0) return done(i);
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      if (i >= n) return eof;
      const c = text.charCodeAt(i);
      const top = stack[stack.length - 1];
      if (top === P.ObjectKey) {
        if (c !== 0x3a /* : */) return bad(at(i), 'after object key');
        stack[stack.length - 1] = P.ObjectValue;
        i++;
        while (i < n && isSpace(text.charCodeAt(i))) i++;
        return undefined;
      }
      if (top === P.ObjectValue) {
        if (c === 0x2c /* , */) {
          stack[stack.length - 1] = P.ObjectKey;
          i++;
          while (i < n && isSpace(text.charCodeAt(i))) i++;
          if (i >= n) return eof;
          if (text.charCodeAt(i) !== 0x22) return bad(at(i), 'looking for beginning of object key string');
          const r = scanString(text, i);
          if (typeof r !== 'number') return r.eof ? eof : r.err;
          i = r;
          continue;
        }
        if (c === 0x7d) {
          stack.pop();
          i++;
          continue;
        }
        return bad(at(i), 'after object key:value pair');
      }
      if (c === 0x2c) {
        i++;
        while (i < n && isSpace(text.charCodeAt(i))) i++;
        return undefined;
      }
      if (c === 0x5d) {
        stack.pop();
        i++;
        continue;
      }
      return bad(at(i), 'after array element');
    }
  }
}

type Stop = { eof: true } | { eof: false; err: GoScan };

function scanString(text: string, i: number): number | Stop {
  const n = text.length;
  i++; // the opening quote
  for (;;) {
    if (i >= n) return { eof: true };
    const c = text.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c < 0x20) return { eof: false, err: { kind: 'error', text: `invalid character ${goQuoteChar(c)} in string literal` } };
    if (c === 0x5c) {
      i++;
      if (i >= n) return { eof: true };
      const e = text.charCodeAt(i);
      if (e === 0x75 /* u */) {
        for (let k = 1; k <= 4; k++) {
          if (i + k >= n) return { eof: true };
          const h = text.charCodeAt(i + k);
          if (!isHex(h))
            return { eof: false, err: { kind: 'error', text: `invalid character ${goQuoteChar(h)} in \\u hexadecimal character escape` } };
        }
        i += 5;
        continue;
      }
      if ('bfnrt\\/"'.indexOf(String.fromCharCode(e)) < 0)
        return { eof: false, err: { kind: 'error', text: `invalid character ${goQuoteChar(e)} in string escape code` } };
    }
    i++;
  }
}

function scanNumber(text: string, i: number): number | Stop {
  const n = text.length;
  const err = (c: number, context: string): Stop => ({
    eof: false,
    err: { kind: 'error', text: `invalid character ${goQuoteChar(c)} ${context}` },
  });
  if (text.charCodeAt(i) === 0x2d) {
    i++;
    if (i >= n) return { eof: true };
    if (!isDigit(text.charCodeAt(i))) return err(text.charCodeAt(i), 'in numeric literal');
  }
  if (text.charCodeAt(i) === 0x30) i++;
  else while (i < n && isDigit(text.charCodeAt(i))) i++;
  if (i >= n) return i;
  if (text.charCodeAt(i) === 0x2e) {
    i++;
    if (i >= n) return { eof: true };
    if (!isDigit(text.charCodeAt(i))) return err(text.charCodeAt(i), 'after decimal point in numeric literal');
    while (i < n && isDigit(text.charCodeAt(i))) i++;
    if (i >= n) return i;
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    if (i >= n) return { eof: true };
    const s = text.charCodeAt(i);
    if (s === 0x2b || s === 0x2d) i++;
    if (i >= n) return { eof: true };
    if (!isDigit(text.charCodeAt(i))) return err(text.charCodeAt(i), 'in exponent of numeric literal');
    while (i < n && isDigit(text.charCodeAt(i))) i++;
  }
  return i;
}
