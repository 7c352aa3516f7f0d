// A strict parser of the Prometheus text exposition format (version 0.0.4), for tests of /metrics:
// every line must be a HELP, a TYPE, a blank line or a sample of a family whose TYPE came first; names,
// label names and escapes must be valid; a histogram's buckets must be cumulative and end at +Inf = _count.
// It throws naming the line on anything else.

export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface PromSample {
  /** The sample's own name (a histogram's are <family>_bucket, _sum and _count). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: PromType;
  help: string;
  samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s: string, where: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`${where}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

/** Parses `{a="x",b="y"}` starting at text[i] === '{'; returns the labels and the index after '}'. */
function parseLabels(text: string, i: number, where: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++; // {
  for (;;) {
    if (text[i] === '}') return [labels, i + 1];
    let j = i;
    while (j < text.length && /[a-zA-Z0-9_]/.test(text[j])) j++;
    const name = text.slice(i, j);
    if (!LABEL_NAME.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    if (text[j] !== '=' || text[j + 1] !== '"') throw new Error(`${where}: expected =" after label ${name}`);
    j += 2;
    let value = '';
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const e = text[j + 1];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else throw new Error(`${where}: bad escape \\${e}`);
        j += 2;
        continue;
      }
      if (c === '\n') throw new Error(`${where}: newline in a label value`);
      value += c;
      j++;
    }
    labels[name] = value;
    j++; // closing quote
    if (text[j] === ',') j++;
    else if (text[j] !== '}') throw new Error(`${where}: expected , or } after label ${name}`);
    i = j;
  }
}

/** The family a sample name belongs to, given the declared families. */
function familyOf(name: string, families: Map<string, PromFamily>): PromFamily | undefined {
  const f = families.get(name);
  if (f !== undefined && f.type !== 'histogram' && f.type !== 'summary') return f;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const base = families.get(name.slice(0, -suffix.length));
    if (base === undefined) continue;
    if (base.type === 'histogram') return base;
    if (base.type === 'summary' && suffix !== '_bucket') return base;
  }
  if (f !== undefined && f.type === 'summary') return f; // quantile samples carry the family's own name
  return undefined;
}

/** Parses a whole /metrics body; families by name. */
export function parsePrometheusText(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  const seenSeries = new Set<string>();
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the text does not end with a newline');
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, n) => {
    const where = `line ${n + 1} (${line.slice(0, 80)})`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) return; // a comment
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      let f = families.get(name);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        if (f !== undefined && f.samples.length > 0) throw new Error(`${where}: TYPE after samples of ${name}`);
        if (f !== undefined && f.type !== 'untyped') throw new Error(`${where}: second TYPE for ${name}`);
        if (f === undefined) families.set(name, (f = { name, type: rest as PromType, help: '', samples: [] }));
        else f.type = rest as PromType;
      } else {
        if (f === undefined) families.set(name, (f = { name, type: 'untyped', help: rest, samples: [] }));
        else if (f.help !== '') throw new Error(`${where}: second HELP for ${name}`);
        else f.help = rest;
      }
      return;
    }
    let i = 0;
    while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i])) i++;
    const name = line.slice(0, i);
    if (!NAME.test(name)) throw new Error(`${where}: bad sample name`);
    let labels: Record<string, string> = {};
    if (line[i] === '{') [labels, i] = parseLabels(line, i, where);
    if (line[i] !== ' ') throw new Error(`${where}: expected a space before the value`);
    const parts = line.slice(i + 1).split(' ');
    if (parts.length > 2) throw new Error(`${where}: trailing text`);
    const value = parseValue(parts[0], where);
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: bad timestamp`);
    const f = familyOf(name, families);
    if (f === undefined) throw new Error(`${where}: sample of no declared family`);
    const key = `${name}{${Object.keys(labels)
      .sort()
      .map((k) => `${k}=${labels[k]}`)
      .join(',')}}`;
    if (seenSeries.has(key)) throw new Error(`${where}: series ${key} twice`);
    seenSeries.add(key);
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: PromFamily): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let e = series.get(key);
    if (e === undefined) series.set(key, (e = { buckets: [] }));
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      e.buckets.push([parseValue(le, f.name), s.value]);
    } else if (s.name === `${f.name}_count`) e.count = s.value;
    else if (s.name === `${f.name}_sum`) e.sum = s.value;
  }
  for (const [key, e] of series) {
    if (e.count === undefined || e.sum === undefined) throw new Error(`${f.name}${key}: no _count or _sum`);
    const b = e.buckets;
    if (b.length === 0 || b[b.length - 1][0] !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket last`);
    for (let i = 1; i < b.length; i++) {
      if (!(b[i][0] > b[i - 1][0])) throw new Error(`${f.name}${key}: bucket bounds not increasing`);
      if (b[i][1] < b[i - 1][1]) throw new Error(`${f.name}${key}: buckets not cumulative`);
    }
    if (b[b.length - 1][1] !== e.count) throw new Error(`${f.name}${key}: +Inf bucket ${b[b.length - 1][1]} != _count ${e.count}`);
  }
}

/** The value of one series (labels must match exactly those given; others may be present). */
export function sampleValue(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}, sample = name): number {
  const f = families.get(name);
  if (f === undefined) throw new Error(`no metric ${name}`);
  const s = f.samples.find((x) => x.name === sample && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  if (s === undefined) throw new Error(`no sample ${sample}${JSON.stringify(labels)}`);
  return s.value;
}

/** The bucket bounds (le) of a histogram's first series, as written. */
export function bucketBounds(f: PromFamily): string[] {
  const first = f.samples.find((s) => s.name === `${f.name}_bucket`);
  if (first === undefined) return [];
  const { le: _, ...rest } = first.labels;
  return f.samples
    .filter((s) => s.name === `${f.name}_bucket` && Object.entries(rest).every(([k, v]) => s.labels[k] === v))
    .map((s) => String(parseValue(s.labels.le, f.name)));
}

/** Label names of a family's samples (le and quantile excluded), sorted. */
export function labelNames(f: PromFamily): string[] {
  const names = new Set<string>();
  for (const s of f.samples) for (const k of Object.keys(s.labels)) if (k !== 'le' && k !== 'quantile') names.add(k);
  return [...names].sort();
}
