// The YAML config file (`--config-file`) read the way etcd 3.4 reads it: sigs.k8s.io/yaml turns YAML 1.1
// into JSON, then Go's encoding/json fills embed.Config — keys are the flag names (matched case-insensitively,
// unknown keys ignored), durations are nanosecond integers, numbers and booleans are coerced into string
// fields, and a type mismatch is an error worded like Go's.
import { parseDocument } from 'yaml';
import { FLAGS, yamlTypeOf, type FlagSpec, type YamlType } from './flags.js';
import type { FlagValues } from './goflag.js';
import { goQuote, newUrls, parseGoDuration } from './values.js';

/** What went wrong: `wrapped` errors print as "error verifying flags, ..."; the others print bare (etcd exits at once). */
export interface YamlError {
  error: string;
  wrapped: boolean;
}

interface Target {
  flag: string;
  type: Exclude<YamlType, null>;
  goType: string;
  /** Go's "struct.field" for error texts. */
  field: string;
}

const PROXY_KEYS = new Set([
  'proxy',
  'discovery-fallback',
  'proxy-failure-wait',
  'proxy-refresh-interval',
  'proxy-dial-timeout',
  'proxy-write-timeout',
  'proxy-read-timeout',
]);

/** The URL-list keys in the order etcd converts them, with the label its error text uses (sic for the 4th). */
const URL_KEYS: ReadonlyArray<readonly [string, string]> = [
  ['listen-peer-urls', 'listen-peer-urls'],
  ['listen-client-urls', 'listen-client-urls'],
  ['initial-advertise-peer-urls', 'initial-advertise-peer-urls'],
  ['advertise-client-urls', 'advertise-peer-urls'],
  ['listen-metrics-urls', 'listen-metrics-urls'],
];

/** The keys of client-transport-security / peer-transport-security and the flags they land in. */
const TLS_KEYS: ReadonlyArray<readonly [string, string, 'string' | 'bool']> = [
  ['cert-file', 'cert-file', 'string'],
  ['key-file', 'key-file', 'string'],
  ['client-cert-auth', 'client-cert-auth', 'bool'],
  ['trusted-ca-file', 'trusted-ca-file', 'string'],
  ['auto-tls', 'auto-tls', 'bool'],
];

function goTypeOf(spec: FlagSpec, type: Exclude<YamlType, null>): string {
  if (type === 'list') return '[]string';
  if (type === 'string') return 'string';
  if (type === 'bool') return 'bool';
  switch (spec.kind) {
    case 'duration':
      return 'time.Duration';
    case 'uint64':
      return 'uint64';
    case 'int':
      return 'int';
    case 'int64':
      return 'int64';
    case 'uint32':
      return 'uint32';
    default:
      return 'uint';
  }
}

const TOP_TARGETS = new Map<string, Target>();
for (const spec of FLAGS) {
  const type = yamlTypeOf(spec);
  if (type === null) continue;
  const struct = PROXY_KEYS.has(spec.name) ? 'configProxy' : 'configYAML';
  TOP_TARGETS.set(spec.name, { flag: spec.name, type, goType: goTypeOf(spec, type), field: `${struct}.${spec.name}` });
}

/** encoding/json's key lookup: the exact name first, then an ASCII case-insensitive match. */
function lookup<T>(targets: Map<string, T>, key: string): T | undefined {
  const exact = targets.get(key);
  if (exact !== undefined) return exact;
  const lk = key.toLowerCase();
  for (const [name, t] of targets) if (name.toLowerCase() === lk) return t;
  return undefined;
}

/** The JSON kind Go names in "cannot unmarshal <kind> into ...". */
function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number' || typeof v === 'bigint') return `number ${String(v)}`;
  return 'object';
}

function typeError(v: unknown, t: Target): YamlError {
  const kind = jsonKind(v);
  // Go quotes the literal only when the target is numeric (a range or sign problem); otherwise just "number".
  const numericTarget = t.goType.includes('int') || t.goType === 'time.Duration';
  const shown = kind.startsWith('number') && !numericTarget ? 'number' : kind;
  return {
    error: `error unmarshaling JSON: while decoding JSON: json: cannot unmarshal ${shown} into Go struct field ${t.field} of type ${t.goType}`,
    wrapped: true,
  };
}

/** sigs.k8s.io/yaml's coercion of a scalar into a string field; undefined when it is not a scalar. */
function asString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

const RANGES: Record<string, readonly [bigint, bigint]> = {
  uint: [0n, (1n << 64n) - 1n],
  uint64: [0n, (1n << 64n) - 1n],
  uint32: [0n, (1n << 32n) - 1n],
  int: [-(1n << 63n), (1n << 63n) - 1n],
  int64: [-(1n << 63n), (1n << 63n) - 1n],
  'time.Duration': [-(1n << 63n), (1n << 63n) - 1n],
};

/** Stores one decoded value into `values`; returns a Go-shaped error, or null. */
function apply(values: FlagValues, t: Target, v: unknown, rawStrings: Map<string, string>): YamlError | null {
  if (v === null || v === undefined) return null; // JSON null leaves a Go field untouched
  switch (t.type) {
    case 'string': {
      const s = asString(v);
      if (s === undefined) return typeError(v, t);
      rawStrings.set(t.flag, s);
      return null;
    }
    case 'bool':
      if (typeof v !== 'boolean') return typeError(v, t);
      values.put(t.flag, v, 'file');
      return null;
    case 'list': {
      if (!Array.isArray(v)) return typeError(v, t);
      const out: string[] = [];
      for (const item of v) {
        const s = asString(item);
        if (s === undefined) return typeError(item, t);
        out.push(s);
      }
      values.put(t.flag, out, 'file');
      return null;
    }
    case 'number':
    case 'durationOrNumber': {
      let n: bigint;
      if (t.type === 'durationOrNumber' && typeof v === 'string') {
        const d = parseGoDuration(v);
        if (typeof d !== 'bigint') return { error: `invalid value ${goQuote(v)} for ${t.flag}: ${d.error}`, wrapped: true };
        n = d;
      } else if (typeof v === 'bigint') n = v;
      else if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v);
      else return typeError(v, t);
      const range = RANGES[t.goType] ?? RANGES.uint!;
      if (n < range[0] || n > range[1]) return typeError(v, t);
      const spec = FLAGS.find((f) => f.name === t.flag) as FlagSpec;
      if (spec.min !== undefined && n < spec.min)
        return { error: `invalid value ${n} for ${t.flag}: must be at least ${spec.min}`, wrapped: true };
      values.put(t.flag, n, 'file');
      return null;
    }
  }
}

/** Go sorts map keys by bytes when it re-encodes YAML as JSON, so that is the order fields are decoded in. */
function byteOrder(a: string, b: string): number {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return Buffer.compare(ba, bb);
}

/**
 * Applies a config file's text on top of `values` (which hold the defaults). Enum values (initial-cluster-state,
 * proxy, discovery-fallback) are stored unchecked: etcd checks them later, in its own order.
 *
 *   const err = applyYamlConfig(values, 'name: n1\nlisten-client-urls: http://127.0.0.1:2379\n');
 */
export function applyYamlConfig(values: FlagValues, text: string): YamlError | null {
  const doc = parseDocument(text, { version: '1.1', intAsBigInt: true, uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!.message.split('\n')[0];
    return { error: `error converting YAML to JSON: yaml: ${first}`, wrapped: true };
  }
  const root: unknown = doc.toJS({ maxAliasCount: 100 });
  if (root === null || root === undefined) return null;
  if (typeof root !== 'object' || Array.isArray(root)) {
    return {
      error: `error unmarshaling JSON: while decoding JSON: json: cannot unmarshal ${jsonKind(root)} into Go value of type embed.configYAML`,
      wrapped: true,
    };
  }
  const obj = root as Record<string, unknown>;
  const rawStrings = new Map<string, string>();
  let firstError: YamlError | null = null;
  for (const key of Object.keys(obj).sort(byteOrder)) {
    const v = obj[key];
    const lk = key.toLowerCase();
    if (lk === 'client-transport-security' || lk === 'peer-transport-security') {
      const peer = lk.startsWith('peer');
      if (v === null || v === undefined) continue;
      if (typeof v !== 'object' || Array.isArray(v)) {
        firstError ??= {
          error: `error unmarshaling JSON: while decoding JSON: json: cannot unmarshal ${jsonKind(v)} into Go struct field configYAML.${lk} of type embed.securityConfig`,
          wrapped: true,
        };
        continue;
      }
      const sub = v as Record<string, unknown>;
      const subTargets = new Map<string, Target>(
        TLS_KEYS.map(([k, flag, type]) => [
          k,
          {
            flag: peer ? `peer-${flag}` : flag,
            type,
            goType: type,
            field: `securityConfig.${lk}.${k}`,
          },
        ]),
      );
      for (const sk of Object.keys(sub).sort(byteOrder)) {
        const t = lookup(subTargets, sk);
        if (t === undefined) continue;
        const err = apply(values, t, sub[sk], rawStrings);
        if (err) firstError ??= err;
      }
      continue;
    }
    const t = lookup(TOP_TARGETS, key);
    if (t === undefined) continue;
    const err = apply(values, t, v, rawStrings);
    if (err) firstError ??= err;
  }
  if (firstError) return firstError;

  // Plain strings land as they are; URL lists and enums get etcd's post-processing.
  const urlKeys = new Set(URL_KEYS.map(([k]) => k));
  for (const [flag, s] of rawStrings) {
    if (urlKeys.has(flag) || flag === 'cors' || flag === 'host-whitelist') continue;
    values.put(flag, s, 'file');
  }
  for (const [flag, label] of URL_KEYS) {
    const s = rawStrings.get(flag);
    if (s === undefined || s === '') continue;
    const urls = newUrls(s.split(','));
    if ('error' in urls) return { error: `unexpected error setting up ${label}: ${urls.error}`, wrapped: false };
    values.put(flag, { urls, values: [...new Set(urls.map((u) => u.href))].sort() }, 'file');
  }
  const cors = rawStrings.get('cors');
  if (cors !== undefined && cors !== '') {
    if (cors === '*') values.put('cors', { urls: [], values: ['*'] }, 'file');
    else {
      const urls = newUrls(cors.split(','));
      if ('error' in urls) return { error: `unexpected error setting up cors: ${urls.error}`, wrapped: false };
      values.put('cors', { urls, values: [...new Set(urls.map((u) => u.href))].sort() }, 'file');
    }
  }
  const hosts = rawStrings.get('host-whitelist');
  if (hosts !== undefined && hosts !== '') values.put('host-whitelist', [...new Set(hosts.split(','))].sort(), 'file');

  // A discovery method replaces the default static cluster (embed.configFromFile).
  const def = FLAGS.find((f) => f.name === 'initial-cluster')!.def;
  if ((values.get('discovery') !== '' || values.get('discovery-srv') !== '') && values.get('initial-cluster') === def) {
    values.put('initial-cluster', '', 'file');
  }
  if (values.get('initial-cluster-state') === '') values.put('initial-cluster-state', 'new', 'file');
  return null;
}
