// Writers whose every put is recorded with what its client learned: acknowledged (with the revision the response
// reported), unknown (no answer: it may or may not have happened), or still pending. The crash and power-loss
// tests check the recorded acknowledgements against what a restarted member holds.
import type { KvClient } from './grpc-kv.js';

const PUT_TIMEOUT_MS = 10_000;

/** One put and what the client learned about it. */
export interface PutRecord {
  key: string;
  writer: number;
  outcome: 'pending' | 'acked' | 'unknown';
  revision: bigint;
  /** After a check: whether an unknown put turned out to exist (then it must keep existing), or not. */
  resolved?: 'present' | 'absent';
}

/**
 * `writers` sequential put loops (writer w on clients[w % clients.length]), each until stop() or its first put
 * without an answer; every put is pushed to `records` before it is sent.
 *
 *   const loops = startPutLoops([kv], 8, (w, seq) => `crash/${w}/${seq}`, records);
 *   ...; loops.stop(); await loops.done;
 */
export function startPutLoops(
  clients: readonly KvClient[],
  writers: number,
  keyOf: (writer: number, seq: number) => string,
  records: PutRecord[],
  valueFor: (key: string) => Buffer = (key) => Buffer.from(key),
): { stop: () => void; done: Promise<void> } {
  let stopped = false;
  const loops = Array.from({ length: writers }, async (_, w) => {
    const kv = clients[w % clients.length]!;
    for (let seq = 0; !stopped; seq++) {
      const rec: PutRecord = { key: keyOf(w, seq), writer: w, outcome: 'pending', revision: 0n };
      records.push(rec);
      try {
        const r = await kv.put(Buffer.from(rec.key), valueFor(rec.key), PUT_TIMEOUT_MS);
        rec.outcome = 'acked';
        rec.revision = r.revision;
      } catch {
        rec.outcome = 'unknown';
        return;
      }
    }
  });
  return {
    stop: () => {
      stopped = true;
    },
    done: Promise.all(loops).then(() => undefined),
  };
}
