// Prometheus metrics with etcd's names, rendered in the text exposition format for /metrics.
// Gauges are plain numbers updated in place or computed at scrape time; labelled series are created on first use.

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${labels[k].replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',');
}

interface Metric {
  readonly name: string;
  render(out: string[]): void;
}

/** A value that goes up and down; `collect` (if given) computes it at scrape time. */
export class Gauge implements Metric {
  private readonly series = new Map<string, number>();
  value = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly collect?: () => number,
    private readonly labelled = false,
  ) {}
  set(v: number): void {
    this.value = v;
  }
  setLabels(labels: Labels, v: number): void {
    this.series.set(labelKey(labels), v);
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`);
    if (!this.labelled) out.push(`${this.name} ${this.collect ? this.collect() : this.value}`);
    for (const [k, v] of this.series) out.push(`${this.name}{${k}} ${v}`);
  }
}

/** A value that only goes up, computed at scrape time. */
export class Counter implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly collect: () => number,
  ) {}
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`, `${this.name} ${this.collect()}`);
  }
}

/** What a histogram reports at scrape time: per-bucket counts (not cumulative; the last is +Inf) and the sum. */
export interface HistogramSnapshot {
  buckets: readonly number[];
  sum: number;
}

/** A histogram with fixed upper bounds, counted elsewhere and read at scrape time. */
export class Histogram implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    private readonly collect: () => HistogramSnapshot,
  ) {}
  render(out: string[]): void {
    const snap = this.collect();
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    let cum = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cum += snap.buckets[i] ?? 0;
      out.push(`${this.name}_bucket{le="${this.bounds[i]}"} ${cum}`);
    }
    cum += snap.buckets[this.bounds.length] ?? 0;
    out.push(`${this.name}_bucket{le="+Inf"} ${cum}`, `${this.name}_sum ${snap.sum}`, `${this.name}_count ${cum}`);
  }
}

/**
 * The set of metrics one member exposes.
 *
 *   const r = new Registry(); r.add(new Gauge('etcd_server_has_leader', '...', () => (leader ? 1 : 0)));
 *   res.end(r.render());
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
