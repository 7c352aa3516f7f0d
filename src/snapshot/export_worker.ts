// The worker thread that writes a snapshot file (export_backend.ts), so the member's event loop only
// streams the finished file: it posts {result} or {error} once and exits.
import { parentPort, workerData } from 'node:worker_threads';
import { exportBackend, ExportCancelled, type ExportOptions, type ExportResult } from './export_backend.js';

/** The one message the worker posts. */
export type ExportReply = { result: ExportResult } | { error: string; cancelled: boolean };

const o = workerData as ExportOptions;
let reply: ExportReply;
try {
  reply = { result: exportBackend(o) };
} catch (err) {
  reply = { error: err instanceof Error ? err.message : String(err), cancelled: err instanceof ExportCancelled };
}
parentPort?.postMessage(reply);
