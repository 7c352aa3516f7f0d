// Piscina worker for bench/pool/pool.bench.ts: runs a decode or fan-out task and hands its one result
// buffer back by transfer (Piscina clones results unless they are wrapped in move()).
import { move } from 'piscina';
import { decodeBatchToEnvelopes, fanoutToResponses, type DecodeTask, type FanoutTask } from './work.js';

/** A task as the bench posts it. */
export type PoolTask = { kind: 'decode'; task: DecodeTask } | { kind: 'fanout'; task: FanoutTask };

/** Piscina's entry point: one task in, one transferred ArrayBuffer out. */
export default function run(t: PoolTask): ReturnType<typeof move> {
  return move(t.kind === 'decode' ? decodeBatchToEnvelopes(t.task) : fanoutToResponses(t.task));
}
