// Prometheus metrics with etcd's names, rendered in the text exposition format for /metrics.
// Counters and gauges are plain numbers updated in place; labelled series are created on first use.

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${labels[k].replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',');
}

interface Metric {
  readonly name: string;
  render(out: string[]): void;
}

/** A monotonically increasing count. */
export class Counter implements Metric {
  private readonly series = new Map<string, number>();
  value = 0;
  constructor(readonly name: string, readonly help: string, private readonly labelled = false) {}
  inc(by = 1): void { this.value += by; }
  incLabels(labels: Labels, by = 1): void {
    const k = labelKey(labels);
    this.series.set(k, (this.series.get(k) ?? 0) + by);
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    if (!this.labelled) out.push(`${this.name} ${this.value}`);
    for (const [k, v] of this.series) out.push(`${this.name}{${k}} ${v}`);
  }
}

/** A value that goes up and down; `collect` (if given) computes it at scrape time. */
export class Gauge implements Metric {
  private readonly series = new Map<string, number>();
  value = 0;
  constructor(readonly name: string, readonly help: string, private readonly collect?: () => number, private readonly labelled = false) {}
  set(v: number): void { this.value = v; }
  setLabels(labels: Labels, v: number): void { this.series.set(labelKey(labels), v); }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`);
    if (!this.labelled) out.push(`${this.name} ${this.collect ? this.collect() : this.value}`);
    for (const [k, v] of this.series) out.push(`${this.name}{${k}} ${v}`);
  }
}

/** A histogram with fixed upper bounds (seconds, as etcd's are). */
export class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, readonly help: string, private readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (v <= this.bounds[i]) { this.counts[i]++; break; }
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i];
      out.push(`${this.name}_bucket{le="${this.bounds[i]}"} ${cumulative}`);
    }
    out.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
  }
}

/** Exponential buckets as prometheus.ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v *= factor) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * The set of metrics one member exposes.
 *
 *   const r = new Registry(); const c = r.add(new Counter('etcd_server_proposals_failed_total', '...'));
 *   c.inc(); res.end(r.render());
 */
export class Registry {
  private readonly metrics: Metric[] = [];
  add<M extends Metric>(m: M): M {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.push(m);
    return m;
  }
  render(): string {
    const out: string[] = [];
    for (const m of this.metrics) m.render(out);
    return out.join('\n') + '\n';
  }
}
