// The Go generator on etcd's client (bench/go/etcdload) sends what its options say: etcd's benchmark tool's
// keys (a varint of the sequence number in --key-size bytes, modulo --key-space-size), --val-size values,
// exactly --total requests, and ranges at the asked consistency. Checked against a tetcd member by reading
// back what it wrote. Needs Go and Debian's golang-etcd-server-dev (.ci/run installs both); without them the
// run test is reported as skipped, never passed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildEtcdLoad, etcdLoadArgs, runEtcdLoad } from '../../bench/lib/etcdload.js';
import { KvClient } from '../helpers/grpc-kv.js';
import { repoRoot, startMember } from '../helpers/member.js';

const goReady = spawnSync('go', ['version']).error === undefined && existsSync('/usr/share/gocode/src/go.etcd.io/etcd/clientv3');

test('arguments: etcd benchmark tool shapes', () => {
  assert.equal(
    etcdLoadArgs({
      endpoints: ['a:1', 'b:2'],
      conns: 100,
      clients: 1000,
      total: 0,
      durationMs: 5000,
      workload: { method: 'put', keyBytes: 8, valueBytes: 256, keySpace: 100_000 },
    }),
    [
      '--endpoints',
      'a:1,b:2',
      '--conns',
      '100',
      '--clients',
      '1000',
      '--duration',
      '5000ms',
      'put',
      '--key-size',
      '8',
      '--val-size',
      '256',
      '--sequential-keys',
      '--key-space-size',
      '100000',
    ],
  );
  assert.equal(
    etcdLoadArgs({
      endpoints: ['a:1'],
      conns: 1,
      clients: 1,
      total: 7,
      durationMs: 0,
      workload: { method: 'range', key: 'k0', serializable: true },
    }),
    ['--endpoints', 'a:1', '--conns', '1', '--clients', '1', '--total', '7', 'range', '--key', 'k0', '--consistency', 's'],
  );
});

/** etcd's benchmark key: a zig-zag varint of n in `bytes` bytes (Go's binary.PutVarint into a zeroed buffer). */
function benchKey(n: number, bytes: number): Buffer {
  const k = Buffer.alloc(bytes);
  let u = BigInt(n) << 1n; // zig-zag of a non-negative n
  let i = 0;
  while (u >= 0x80n) {
    k[i++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  k[i] = Number(u);
  return k;
}

(goReady ? test : test.skip)('runs: 300 puts over a key space of 200 land as 200 keys; ranges read them', async () => {
  const bin = buildEtcdLoad(repoRoot(), mkdtempSync(join(tmpdir(), 'tetcd-etcdload-')));
  const m = await startMember('tetcd');
  const kv = new KvClient(m.endpoint);
  try {
    const put = await runEtcdLoad(bin, {
      endpoints: [m.endpoint],
      conns: 2,
      clients: 8,
      total: 300,
      durationMs: 0,
      workload: { method: 'put', keyBytes: 8, valueBytes: 256, keySpace: 200 },
    });
    assert.is(put.requests, 300);
    assert.is(put.errors, 0);
    assert.ok(put.p50Ms > 0 && put.p99Ms >= put.p50Ms && put.maxMs >= put.p99Ms, JSON.stringify(put));
    const all = await kv.range(Buffer.from([0]), Buffer.from([0]), 5000); // from-key: every key
    assert.is(all.count, 200n);
    assert.is(all.revision, 301n, 'one revision per put');
    const keys = new Set(all.kvs.map((x) => x.key.toString('hex')));
    for (const n of [0, 1, 63, 64, 199]) assert.ok(keys.has(benchKey(n, 8).toString('hex')), `key of ${n}`);
    for (const x of all.kvs) assert.is(x.value.length, 256);
    await kv.put(Buffer.from('k0000000'), Buffer.from('v'), 5000);
    for (const serializable of [false, true]) {
      const r = await runEtcdLoad(bin, {
        endpoints: [m.endpoint],
        conns: 1,
        clients: 4,
        total: 100,
        durationMs: 0,
        workload: { method: 'range', key: 'k0000000', serializable },
      });
      assert.is(r.requests, 100);
      assert.is(r.errors, 0);
    }
  } finally {
    kv.close();
    await m.stop();
  }
});

test.run();
