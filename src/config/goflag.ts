// Go's `flag` package as etcd uses it: `--x=v`, `--x v`, `-x`, booleans bare or `--x=false`, `--` ends
// flags, the first non-flag argument stops parsing; plus etcd's flag.Value types (UniqueURLs,
// SelectiveString, ...). Error texts are Go's, because etcd prints them unchanged.
import { FLAGS, IGNORED_FLAGS, flagSpec, type FlagSpec } from './flags.js';
import { goQuote, newUrls, parseGoBool, parseGoDuration, parseGoInt, parseGoUint, strconvErrorText, type GoUrl } from './values.js';

/** A `urls` flag: the validated URLs and etcd's set of accepted strings (URL hrefs plus allowed exceptions). */
export interface UrlsValue {
  urls: GoUrl[];
  /** Sorted; holds exception values such as '*' that are not URLs. */
  values: string[];
}

/** A parsed flag value; its type follows the flag's kind (bigint for integers, nanoseconds for durations). */
export type FlagValue = string | boolean | bigint | UrlsValue | string[];

/** Where a value came from. */
export type ValueSource = 'default' | 'flag' | 'env' | 'file';

function sortedUnique(items: Iterable<string>): string[] {
  return [...new Set(items)].sort();
}

/**
 * The values of every flag, starting at the defaults. `set` applies one textual value with the kind's
 * syntax (Go's flag.Value.Set) and returns the error text, or null when accepted.
 */
export class FlagValues {
  private readonly values = new Map<string, FlagValue>();
  private readonly sources = new Map<string, ValueSource>();
  /** Warnings produced while setting values (ignored etcd 2 flags). */
  readonly warnings: string[] = [];

  constructor() {
    for (const spec of FLAGS) {
      const v = spec.def === '' ? zeroValue(spec) : this.convert(spec, spec.def, null);
      if (typeof v === 'object' && v !== null && 'error' in v) throw new Error(`bad default for --${spec.name}: ${v.error}`);
      this.values.set(spec.name, v);
      this.sources.set(spec.name, 'default');
    }
  }

  /** The current value of a flag; throws on a name missing from the table (a programming error). */
  get(name: string): FlagValue {
    const v = this.values.get(name);
    if (v === undefined) throw new Error(`tetcd: no flag named ${name}`);
    return v;
  }

  /** Overwrites a value without parsing (the YAML loader hands over typed values). */
  put(name: string, value: FlagValue, source: ValueSource): void {
    if (!this.values.has(name)) throw new Error(`tetcd: no flag named ${name}`);
    this.values.set(name, value);
    this.sources.set(name, source);
  }

  source(name: string): ValueSource {
    return this.sources.get(name) ?? 'default';
  }

  /** Whether the command line or the environment set the flag (etcd's flags.IsSet). */
  isSet(name: string): boolean {
    return this.source(name) !== 'default';
  }

  /** Parses `text` for the flag and stores it; returns the error text (without the flag name) or null. */
  set(name: string, text: string, source: ValueSource): string | null {
    if (IGNORED_FLAGS.includes(name)) {
      this.warnings.push(`flag "-${name}" is no longer supported - ignoring.`);
      return null;
    }
    const spec = flagSpec(name);
    if (spec === undefined) throw new Error(`tetcd: no flag named ${name}`);
    const v = this.convert(spec, text, this.values.get(name) ?? null);
    if (typeof v === 'object' && v !== null && 'error' in v) return v.error;
    this.values.set(name, v);
    this.sources.set(name, source);
    return null;
  }

  private convert(spec: FlagSpec, text: string, current: FlagValue | null): FlagValue | { error: string } {
    switch (spec.kind) {
      case 'string':
        return text;
      case 'bool': {
        const b = parseGoBool(text);
        return b === null ? { error: 'parse error' } : b;
      }
      case 'uint':
      case 'uint64':
      case 'int':
      case 'int64': {
        const n = spec.kind.startsWith('u') ? parseGoUint(text, 64) : parseGoInt(text, 64);
        if (n === 'syntax') return { error: 'parse error' };
        if (n === 'range') return { error: 'value out of range' };
        if (spec.min !== undefined && n < spec.min) return { error: `must be at least ${spec.min}` };
        return n;
      }
      case 'uint32': {
        const n = parseGoUint(text, 32);
        return typeof n === 'bigint' ? n : { error: strconvErrorText('ParseUint', text, n) };
      }
      case 'duration': {
        const d = parseGoDuration(text);
        return typeof d === 'bigint' ? d : { error: 'parse error' };
      }
      case 'urls': {
        const cur = current !== null && typeof current === 'object' && 'urls' in current ? current : { urls: [], values: [] };
        if (cur.values.includes(text)) return cur;
        if (spec.urlExceptions?.includes(text)) return { urls: cur.urls, values: sortedUnique([...cur.values, text]) };
        const urls = newUrls(text.split(','));
        if ('error' in urls) return urls;
        return { urls, values: sortedUnique(urls.map((u) => u.href)) };
      }
      case 'strings':
        return text.split(',');
      case 'set':
        return sortedUnique(text.split(','));
      case 'enum':
        return spec.valids?.includes(text) ? text : { error: 'invalid value' };
    }
  }
}

/** Go's zero value for a kind (what a flag with an empty default starts as). */
function zeroValue(spec: FlagSpec): FlagValue {
  switch (spec.kind) {
    case 'string':
    case 'enum':
      return '';
    case 'bool':
      return false;
    case 'urls':
      return { urls: [], values: [] };
    case 'strings':
    case 'set':
      return [];
    default:
      return 0n;
  }
}

function isBoolFlag(name: string): boolean {
  return IGNORED_FLAGS.includes(name) || flagSpec(name)?.kind === 'bool';
}

/** The outcome of parsing argv: the arguments left after the flags, a help request, or Go's error text. */
export type ArgsResult = { rest: string[] } | { help: true } | { error: string };

/**
 * flag.FlagSet.Parse with ContinueOnError: stops at the first non-flag argument or after `--`.
 *
 *   parseArgs(values, ['--name', 'n1', '--pre-vote']) // { rest: [] }
 */
export function parseArgs(values: FlagValues, argv: readonly string[]): ArgsResult {
  let i = 0;
  while (i < argv.length) {
    const s = argv[i]!;
    if (s.length < 2 || s[0] !== '-') break;
    let minuses = 1;
    if (s[1] === '-') {
      minuses = 2;
      if (s.length === 2) {
        i++;
        break;
      }
    }
    let name = s.slice(minuses);
    if (name.length === 0 || name[0] === '-' || name[0] === '=') return { error: `bad flag syntax: ${s}` };
    i++;
    let value: string | null = null;
    const eq = name.indexOf('=', 1);
    if (eq >= 1) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const known = flagSpec(name) !== undefined || IGNORED_FLAGS.includes(name);
    if (!known) {
      if (name === 'help' || name === 'h') return { help: true };
      return { error: `flag provided but not defined: -${name}` };
    }
    if (isBoolFlag(name)) {
      const err = values.set(name, value ?? 'true', 'flag');
      if (err !== null) {
        return {
          error: value !== null ? `invalid boolean value ${goQuote(value)} for -${name}: ${err}` : `invalid boolean flag ${name}: ${err}`,
        };
      }
      continue;
    }
    if (value === null) {
      if (i >= argv.length) return { error: `flag needs an argument: -${name}` };
      value = argv[i]!;
      i++;
    }
    const err = values.set(name, value, 'flag');
    if (err !== null) return { error: `invalid value ${goQuote(value)} for flag -${name}: ${err}` };
  }
  return { rest: argv.slice(i) };
}
