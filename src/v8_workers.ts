// --v8-workers-sched: where V8's background threads (TurboFan compilations, the collector's concurrent and
// parallel phases) stand in the CPU scheduler. At normal priority a compilation holds a core for
// milliseconds; on a small machine the event loop and the WAL writer then wait for one, and that was most of
// a freshly started member's latency tail (bench/RESULTS.md, "A fresh member's tail"):
//   low    nice 10: they yield to the request path but keep ~10 % of a busy core, so compilation and
//          marking keep up when the machine is saturated (the default)
//   idle   SCHED_IDLE: they run only on CPU time nothing else wants; the shortest tail on a machine with
//          spare cores, but on a saturated one they starve and V8's code stays in its lower tiers
//   normal as Node starts them
// Lowering is one-way for an unprivileged process, so it is decided once, at start.
import type { Logger } from './log.js';
import { loadAddon } from './native/addon.js';

export type V8WorkersSched = 'low' | 'idle' | 'normal';

/** The addon's export this module uses (native/sched.cc). */
interface V8WorkersAddon {
  /** Lowers V8's platform worker threads to SCHED_IDLE or to a nice value; waits at most timeoutMs for busy ones. */
  v8WorkersLower(
    mode: 'idle' | 'nice',
    nice: number,
    timeoutMs: number,
  ): { threads: number; switched: number; finished: number; errno: number };
}

/** The nice value of 'low'. */
export const V8_WORKERS_LOW_NICE = 10;

/** How long the native call may wait for busy worker threads to pick up its tasks. */
const LOWER_TIMEOUT_MS = 500;

/** Applies the setting to this process's V8 worker threads; logs (and goes on) when the system refuses. */
export function applyV8WorkersSched(mode: V8WorkersSched, log: Logger): void {
  if (mode === 'normal') return;
  const what = mode === 'idle' ? 'SCHED_IDLE' : `nice ${V8_WORKERS_LOW_NICE}`;
  const refused = `could not lower V8 worker threads to ${what}; they stay at normal priority`;
  try {
    const r = loadAddon<V8WorkersAddon>().v8WorkersLower(mode === 'idle' ? 'idle' : 'nice', V8_WORKERS_LOW_NICE, LOWER_TIMEOUT_MS);
    if (r.errno !== 0 || r.switched === 0) log.warn(refused, { errno: r.errno, lowered: r.switched });
    else log.debug(`V8 worker threads lowered to ${what}`, { threads: r.switched });
  } catch (err) {
    log.warn(refused, { error: err instanceof Error ? err.message : String(err) });
  }
}
