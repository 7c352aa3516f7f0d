// A fan-out worker that never answers (test/watch/fanout_pool.test.ts): the task's timeout must abort it
// and its responses must go out inline.
import type { FanoutTask } from '../../src/watch/fanout_encode.js';

export default function run(_task: FanoutTask): never {
  for (;;) {
    // Busy forever: only terminating the thread ends it.
  }
}
