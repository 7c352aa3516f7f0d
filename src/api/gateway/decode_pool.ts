// Large gateway bodies decoded on worker threads (--worker-threads N, --gateway-pool-min-bytes B): measured,
// a body of 64 KiB costs the event loop ~190 µs to decode inline and ~50 µs to hand to a thread and back
// (bench/RESULTS.md, "HTTP/JSON gateway"); small bodies stay inline, where they are cheaper. The threads
// start with the first large body and leave when idle. Limits: tasks and bytes in flight; past them a body
// is decoded inline.
import { Piscina } from 'piscina';
import type { AnyMethodDescriptor } from '../../proto/service.js';
import type { DecodedBody } from './decode.js';
import type { DecodeTask } from './decode_worker.js';

/** Decodes bodies of at least `minBytes` off the event loop. */
export interface BodyDecoder {
  readonly minBytes: number;
  /**
   * The decoded body; undefined when the pool is at its limits (decode inline then). The body's memory may be
   * moved to the thread: do not use `body` afterwards.
   */
  decode(desc: AnyMethodDescriptor, body: Buffer): Promise<DecodedBody> | undefined;
  close(): Promise<void>;
}

/** Limits of the decode pool. */
export interface DecodePoolLimits {
  tasksInflightMax: number;
  bytesInflightMax: number;
}

export const DECODE_POOL_DEFAULTS: DecodePoolLimits = { tasksInflightMax: 64, bytesInflightMax: 64 << 20 };

/** Threads leave after this long without a task. */
const IDLE_TIMEOUT_MS = 30_000;

/**
 * A decode pool of `threads` threads for bodies of `minBytes` or more.
 *
 *   const decoder = startDecodePool(2, 65536);
 *   new Gateway(grpc, { decoder });
 *   await decoder.close();
 */
export function startDecodePool(threads: number, minBytes: number, limits: DecodePoolLimits = DECODE_POOL_DEFAULTS): BodyDecoder {
  if (!(Number.isInteger(threads) && threads > 0)) throw new RangeError(`decode pool: threads must be a positive integer, got ${threads}`);
  if (!(Number.isInteger(minBytes) && minBytes > 0))
    throw new RangeError(`decode pool: minBytes must be a positive integer, got ${minBytes}`);
  const pool = new Piscina<DecodeTask, ArrayBuffer | string>({
    filename: new URL('./decode_worker.js', import.meta.url).href,
    minThreads: 0,
    maxThreads: threads,
    idleTimeout: IDLE_TIMEOUT_MS,
    // The pool bounds its tasks in flight itself; Piscina's queue never refuses one.
    maxQueue: Number.POSITIVE_INFINITY,
    recordTiming: false,
  });
  let tasks = 0;
  let bytes = 0;
  return {
    minBytes,
    decode(desc, body) {
      const n = body.length;
      if (tasks >= limits.tasksInflightMax || bytes + n > limits.bytesInflightMax) return undefined;
      tasks++;
      bytes += n;
      // Move the body when it owns its memory; else move a copy (never a view of memory others use).
      const own = body.byteOffset === 0 && body.buffer.byteLength === body.length ? body : Buffer.from(body);
      const task: DecodeTask = { path: desc.path, body: new Uint8Array(own.buffer, 0, n) };
      const release = (): void => {
        tasks--;
        bytes -= n;
      };
      return pool.run(task, { transferList: [own.buffer as ArrayBuffer] }).then(
        (r) => {
          release();
          return typeof r === 'string' ? { error: r } : { framed: Buffer.from(r) };
        },
        (err: unknown) => {
          release();
          throw err;
        },
      );
    },
    close: () => pool.destroy(),
  };
}
