// A fan-out worker that dies on its first task (test/watch/fanout_pool.test.ts): the pool must send the
// task's responses inline instead of losing them.
import type { FanoutTask } from '../../src/watch/fanout_encode.js';

export default function run(_task: FanoutTask): never {
  process.exit(1);
}
