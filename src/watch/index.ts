// Watch: the member's watchers (hub.ts), one client stream's requests and responses (stream.ts), large
// fan-outs built on the worker threads (fanout_pool.ts).
export { WatchHub, WATCH_HUB_DEFAULTS, type HubFanout, type WatchHubLimits, type WatchStore } from './hub.js';
export {
  WatchFanout,
  WATCH_FANOUT_DEFAULTS,
  startFanoutThreads,
  type FanoutRunner,
  type WatchFanoutLimits,
  type WatchFanoutStats,
} from './fanout_pool.js';
export { WatchStream, WatchErrors, type WatchSink, type WatchStreamOptions } from './stream.js';
export { Watcher, WatchFilter } from './watcher.js';
