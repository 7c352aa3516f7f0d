// Child process of durability.test.ts: applies a deterministic stream of write batches and
// commits each with its batch number as the applied index, printing "ok N" once N is committed,
// until the parent kills it with SIGKILL.
import { Mvcc } from '../../src/mvcc/index.js';
import { batchOps, txnsInBatch } from './crash_model.js';

const path = process.argv[2];
const s = await Mvcc.open({ path, compactionBatchLimit: 50, compactionPauseMs: 1 });
let i = s.consistentIndex().index;
process.stdout.write(`start ${i} ${s.currentRevision}\n`);
for (;;) {
  i++;
  for (let t = 0; t < txnsInBatch(i); t++) {
    const txn = s.write();
    for (const op of batchOps(i, t)) {
      if (op.value === undefined) txn.deleteRange(op.key, undefined, false);
      else txn.put(op.key, op.value, 0n);
    }
    txn.end();
  }
  if (i % 37 === 0 && s.currentRevision > 20) s.compact(s.currentRevision - 15);
  const n = i;
  s.commit(n, 1).committed.then(() => process.stdout.write(`ok ${n}\n`));
  // Sometimes several commits are in flight at once, sometimes one.
  if (i % 3 === 0) await new Promise((r) => setTimeout(r, 1));
  else await new Promise((r) => setImmediate(r));
}
