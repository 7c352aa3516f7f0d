// Worker for the 'waitAsync' wake-up mode: blocks on the control block's futex word (the C++ writer wakes it)
// and turns each change into Atomics.notify, which is what resolves the main thread's Atomics.waitAsync.
import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';
import type { NativeWal } from './native.js';
import { Ctrl, WriterState } from './native.js';

const { control, addonPath } = workerData as { control: SharedArrayBuffer; addonPath: string };
const native = createRequire(import.meta.url)(addonPath) as NativeWal;
const word = new Int32Array(control);
const genAt = Ctrl.gen / 4;
let gen = Atomics.load(word, genAt);
// Publishes made before this worker started were never notified; one notify covers them.
Atomics.notify(word, genAt);
for (;;) {
  native.futexWait(word, genAt, gen, 1000);
  const now = Atomics.load(word, genAt);
  if (now !== gen) {
    gen = now;
    Atomics.notify(word, genAt);
  }
  const state = Atomics.load(word, Ctrl.state / 4);
  if (state === WriterState.closed || state === WriterState.failed) {
    Atomics.notify(word, genAt);
    break;
  }
}
