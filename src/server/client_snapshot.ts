// Snapshots for clients (Maintenance.Snapshot, `etcdctl snapshot save`): what was applied is committed,
// then a worker thread writes the backend's state at that instant as an etcd bbolt file into the snap dir
// (src/snapshot/export_backend.ts), and the API streams the file. The event loop never reads the store
// for it, and writes go on meanwhile. At most SNAPSHOTS_IN_FLIGHT_MAX files exist at once (each is as
// large as the live data); a file goes when its stream ends, a cancelled export stops early, and files a
// crash left behind are removed at start (their names start with "outgoing-", see finishSnapshotInstall).
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Errors, EtcdError, GrpcCode } from '../errors.js';
import type { Logger } from '../log.js';
import { HistogramCounts, exponentialBuckets } from '../metrics.js';
import type { MemberBackend } from './backend.js';
import type { ExportReply } from '../snapshot/export_worker.js';
import type { ExportOptions, ExportResult } from '../snapshot/export_backend.js';

/** Snapshot files being written or streamed at once; one more is refused with `etcdserver: too many requests`. */
export const SNAPSHOTS_IN_FLIGHT_MAX = 2;

/** A finished snapshot file; release() it when the stream is over. */
export interface SnapshotFile extends ExportResult {
  readonly path: string;
  release(): Promise<void>;
}

/**
 * The member's client snapshots.
 *
 *   const snap = await snaps.make(signal);   // the file, written off the event loop
 *   try { stream(snap.path, snap.sizeBytes) } finally { await snap.release() }
 */
export class ClientSnapshots {
  private inFlight = 0;
  private seq = 0;
  /** etcd_disk_backend_snapshot_duration_seconds: from the request to the end of the stream (etcd's buckets). */
  readonly durationSeconds = new HistogramCounts(exponentialBuckets(0.01, 2, 17));

  constructor(
    private readonly d: {
      snapDir: string;
      backend: MemberBackend;
      log: Logger;
      /** For tests: the worker module. */
      workerUrl?: URL;
    },
  ) {}

  /** Snapshot files that exist now (being written or streamed). */
  get filesInFlight(): number {
    return this.inFlight;
  }

  /** Writes a snapshot file of the state applied now. Rejects when `signal` aborts first (the file is removed). */
  async make(signal: AbortSignal): Promise<SnapshotFile> {
    if (this.inFlight >= SNAPSHOTS_IN_FLIGHT_MAX) throw Errors.TooManyRequests();
    this.inFlight++;
    const out = path.join(this.d.snapDir, `outgoing-client-${process.pid}-${++this.seq}.bbolt`);
    let released = false;
    const started = performance.now();
    let made = false;
    const release = async (): Promise<void> => {
      if (released) return;
      released = true;
      this.inFlight--;
      if (made) this.durationSeconds.observe((performance.now() - started) / 1000);
      await fs.promises.rm(out, { force: true });
    };
    try {
      // etcd commits its batch first: the snapshot holds everything applied before the request.
      await this.d.backend.commit().committed;
      if (signal.aborted) throw cancelled();
      const r = await this.runWorker({ lmdbPath: path.join(this.d.snapDir, 'db'), outPath: out }, signal);
      this.d.log.info('wrote database snapshot for a client', {
        'total-bytes': r.sizeBytes,
        revision: r.revision,
        'consistent-index': r.consistentIndex,
        'took-ms': Math.round(performance.now() - started),
      });
      made = true;
      return { ...r, path: out, release };
    } catch (err) {
      await release();
      this.d.log.warn('failed to write a database snapshot for a client', { error: err instanceof Error ? err.message : String(err) });
      throw err;
    }
  }

  private runWorker(o: ExportOptions, signal: AbortSignal): Promise<ExportResult> {
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(this.d.workerUrl ?? new URL('../snapshot/export_worker.js', import.meta.url), {
      workerData: { ...o, cancel },
    });
    const onAbort = (): void => {
      Atomics.store(cancel, 0, 1);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    return new Promise<ExportResult>((resolve, reject) => {
      let reply: ExportReply | undefined;
      worker.once('message', (m: ExportReply) => {
        reply = m;
      });
      worker.once('error', (err) => {
        reply ??= { error: err.message, cancelled: false };
      });
      worker.once('exit', (code) => {
        signal.removeEventListener('abort', onAbort);
        if (reply === undefined) reject(new EtcdError(GrpcCode.Unknown, `snapshot: export worker exited with code ${code}`));
        else if ('result' in reply) resolve(reply.result);
        else if (reply.cancelled) reject(cancelled());
        else reject(new EtcdError(GrpcCode.Unknown, reply.error));
      });
    });
  }
}

function cancelled(): EtcdError {
  return new EtcdError(GrpcCode.Canceled, 'context canceled');
}
