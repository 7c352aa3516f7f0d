// Watch: the member's watchers (hub.ts), one client stream's requests and responses (stream.ts).
export { WatchHub, WATCH_HUB_DEFAULTS, type WatchHubLimits, type WatchStore } from './hub.js';
export { WatchStream, WatchErrors, type WatchSink, type WatchStreamOptions } from './stream.js';
export { Watcher, WatchFilter } from './watcher.js';
