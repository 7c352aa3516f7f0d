// Piscina worker of the watch fan-out (--worker-threads): builds one task's framed WatchResponses and hands
// the one result buffer back by transfer (Piscina clones results unless they are wrapped in move()).
import { move } from 'piscina';
import { buildSlots, type FanoutTask } from './fanout_encode.js';

/** Piscina's entry point: one task in, one transferred ArrayBuffer out. */
export default function run(task: FanoutTask): ReturnType<typeof move> {
  return move(buildSlots(task));
}
