// Prometheus metrics with etcd's names, types, labels and buckets, exposed through prom-client.
// The hot path never calls prom-client: it bumps plain numbers (counters) and HistogramCounts in place
// (bench/RESULTS.md "metrics and logs": a labelled prom-client inc costs ~290 ns, observe ~160 ns, a
// number ~1 ns), and /metrics reads them at scrape time through the collected metrics defined here.
// prom-client keeps the registry, the text format, process_* / nodejs_* and the merging of client processes.
import { AggregatorRegistry, Registry, collectDefaultMetrics } from 'prom-client';

/** One sample as prom-client's JSON carries it. */
export interface SampleJson {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}
/** One metric as prom-client's getMetricsAsJSON() gives it (what client processes send the member). */
export interface MetricJson {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: SampleJson[];
}

export type Labels = Record<string, string>;

/** etcd's bounds for disk latencies (WAL fsync, backend commit, snap fsync): 1 ms · 2^i, 14 buckets. */
export const DISK_SECONDS_BUCKETS = exponentialBuckets(0.001, 2, 14);
/** etcd_network_peer_round_trip_time_seconds: 0.1 ms · 2^i, 14 buckets. */
export const PEER_RTT_SECONDS_BUCKETS = exponentialBuckets(0.0001, 2, 14);
/** grpc_server_handling_seconds (go-grpc-prometheus' defaults, --metrics extensive). */
export const GRPC_HANDLING_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v *= factor) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * A histogram's counts kept in place: observe() is a bucket scan and two adds, cheap enough for any path.
 *
 *   const fsync = new HistogramCounts(DISK_SECONDS_BUCKETS); fsync.observe(0.0021);
 */
export class HistogramCounts implements HistogramView {
  /** Per-bucket counts, not cumulative; the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
  /** Adds `n` observations of `v` at once (n samples whose individual values are not known, only their mean). */
  observeMany(v: number, n: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i] += n;
    this.sum += v * n;
    this.count += n;
  }
}

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** One series: a value and its labels (histograms give HistogramCounts instead of a value). */
export interface Series {
  labels?: Labels;
  value: number;
}
/** What a histogram series needs at scrape time (HistogramCounts is one). */
export interface HistogramView {
  readonly bounds: readonly number[];
  /** Per-bucket counts, not cumulative; the last one is +Inf. */
  readonly counts: ArrayLike<number>;
  readonly sum: number;
  readonly count: number;
}
export interface HistogramSeries {
  labels?: Labels;
  h: HistogramView;
}

/** A metric whose samples are read at scrape time (what prom-client calls a custom metric: get()). */
class CollectedMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    private readonly read: () => SampleJson[],
  ) {}
  get(): MetricJson {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.read() };
  }
}

function histogramValues(name: string, all: Iterable<HistogramSeries>): SampleJson[] {
  const out: SampleJson[] = [];
  for (const { labels = {}, h } of all) {
    let cum = 0;
    for (let i = 0; i < h.bounds.length; i++) {
      cum += h.counts[i];
      out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: h.bounds[i] }, value: cum });
    }
    cum += h.counts[h.bounds.length];
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cum });
    out.push({ metricName: `${name}_sum`, labels, value: h.sum });
    out.push({ metricName: `${name}_count`, labels, value: h.count });
  }
  return out;
}

/**
 * The metrics of one process, built on a prom-client Registry of its own (never the global one, so
 * several members in one test process do not collide).
 *
 *   const m = new Metrics();
 *   m.gauge('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', () => (leader ? 1 : 0));
 *   m.histogram('etcd_disk_wal_fsync_duration_seconds', '...', () => [{ h: wal.fsyncSeconds }]);
 *   res.end(await m.text());
 */
export class Metrics {
  readonly registry = new Registry();

  /** One unlabelled value or several labelled ones, computed at scrape time. */
  gauge(name: string, help: string, read: () => number | Series[]): void {
    this.add(name, help, 'gauge', read);
  }
  counter(name: string, help: string, read: () => number | Series[]): void {
    this.add(name, help, 'counter', read);
  }
  histogram(name: string, help: string, read: () => Iterable<HistogramSeries>): void {
    this.registry.registerMetric(new CollectedMetric(name, help, 'histogram', () => histogramValues(name, read())) as never);
  }
  /** prom-client's process_* and nodejs_* metrics. */
  defaults(): void {
    collectDefaultMetrics({ register: this.registry });
  }
  private add(name: string, help: string, type: MetricType, read: () => number | Series[]): void {
    if (this.registry.getSingleMetric(name) !== undefined) throw new Error(`metric ${name} registered twice`);
    this.registry.registerMetric(
      new CollectedMetric(name, help, type, () => {
        const v = read();
        if (typeof v === 'number') return [{ value: v, labels: {} }];
        return v.map((s) => ({ value: s.value, labels: s.labels ?? {} }));
      }) as never,
    );
  }
  async json(): Promise<MetricJson[]> {
    return (await this.registry.getMetricsAsJSON()) as unknown as MetricJson[];
  }
  async text(): Promise<string> {
    return goNaN(await this.registry.metrics());
  }
}

/**
 * The text of several processes' metrics summed series by series (a member and its client processes:
 * their grpc_server_* counters add up to the member's).
 */
export async function mergedText(parts: MetricJson[][]): Promise<string> {
  // A family only one process has keeps its values as they are (prom-client would drop some of its own,
  // e.g. process_start_time_seconds, whose aggregator is 'omit').
  const count = new Map<string, number>();
  for (const part of parts) for (const m of part) count.set(m.name, (count.get(m.name) ?? 0) + 1);
  const own = parts.map((part) => part.map((m) => (count.get(m.name) === 1 ? { ...m, aggregator: 'first' } : m)));
  return goNaN(await AggregatorRegistry.aggregate(own as never).metrics());
}

/** prom-client prints NaN as "Nan"; the exposition format (and Go's client) spells it "NaN". */
function goNaN(text: string): string {
  return text.replace(/ Nan$/gm, ' NaN');
}

export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
