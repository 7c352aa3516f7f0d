// The batching flags on a real member: --proposal-batch-max splits what one turn gathered over several
// Raft appends (nothing lost, one revision each, in order of arrival); --apply-batch-max-bytes bounds what
// one pass applies.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startTetcd } from '../helpers/member.js';
import { KvClient } from '../helpers/grpc-kv.js';

const enc = (s: string): Buffer => Buffer.from(s);

test('--proposal-batch-max 1 and a tiny apply batch: 200 concurrent puts all land, one revision each', async () => {
  const m = await startTetcd({ extraArgs: ['--proposal-batch-max', '1', '--apply-batch-max-bytes', '64'] });
  const kv = new KvClient(m.endpoint);
  try {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => kv.put(enc(`k${i}`), enc(`v${i}`), 10_000)));
    const revs = results.map((r) => Number(r.revision)).sort((a, b) => a - b);
    assert.equal(
      revs,
      Array.from({ length: 200 }, (_, i) => i + 2),
      'revisions 2..201, no gaps, no duplicates',
    );
    // Proposals keep their order of arrival across the split batches.
    assert.equal(
      results.map((r) => Number(r.revision)),
      revs,
    );
    const all = await kv.range(enc('k'), enc('l'), 5000);
    assert.is(all.kvs.length, 200);
  } finally {
    kv.close();
    await m.stop();
  }
});

test.run();
