// Starting and stopping members: a real etcd comes up and answers; a member that cannot start is a
// StartError with a one-line reason; profiling inserts node's flags in the right place.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { Cluster, StartError, profiledCommand, dirBytes } from '../../bench/lib/servers.js';
import { loadKeys } from '../../bench/lib/workloads.js';
import { GrpcConn } from '../../bench/lib/grpc-client.js';
import { tetcdNodeFlags } from '../../tools/cluster.js';
import { repoRoot } from '../helpers/member.js';
import { join } from 'node:path';
import { KV, encodeRangeRequest, decodeRangeResponse } from '../../src/proto/rpc.js';

test('profiledCommand puts --cpu-prof after node, or runs a node script under node', () => {
  assert.equal(profiledCommand(['/usr/bin/node', 'x.js', '--a'], '/p'), [
    '/usr/bin/node',
    '--cpu-prof',
    '--cpu-prof-dir',
    '/p',
    'x.js',
    '--a',
  ]);
  assert.equal(profiledCommand(['node', 'bin/tetcd'], '/p'), ['node', '--cpu-prof', '--cpu-prof-dir', '/p', 'bin/tetcd']);
  // A node script runs under this node with its shebang's node flags, then the profiler's.
  const bin = join(repoRoot(), 'bin', 'tetcd');
  assert.equal(profiledCommand([bin, '--x'], '/p'), [
    process.execPath,
    ...tetcdNodeFlags(),
    '--cpu-prof',
    '--cpu-prof-dir',
    '/p',
    bin,
    '--x',
  ]);
  assert.throws(() => profiledCommand(['/usr/bin/etcd'], '/p'), /cannot profile/);
});

test('a member that exits at once is a StartError naming the reason', async () => {
  const dir = mkdtempSync('/tmp/bench-servers-');
  try {
    let err: unknown;
    try {
      await Cluster.start({
        kind: 'etcd',
        cmd: ['/usr/bin/etcd', '--no-such-flag'],
        cwd: dir,
        members: 1,
        baseDir: dir,
        readyTimeoutMs: 10_000,
      });
    } catch (e) {
      err = e;
    }
    assert.instance(err, StartError);
    assert.match((err as StartError).reason, /exited/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a real etcd member starts, takes keys, and stops', async () => {
  const dir = mkdtempSync('/tmp/bench-servers-');
  try {
    const c = await Cluster.start({ kind: 'etcd', cmd: ['/usr/bin/etcd'], cwd: dir, members: 1, baseDir: dir });
    try {
      assert.is(c.endpoints.length, 1);
      await loadKeys(c.endpoints, {
        prefix: 'k',
        count: 300,
        valueBytes: 256,
        connections: 2,
        inFlightPerConnection: 2,
        txnOps: 128,
        callTimeoutMs: 10_000,
      });
      const conn = await GrpcConn.connect(c.endpoints[0], 2000);
      const r = await conn.unary(
        KV.methods.Range.path,
        encodeRangeRequest({ key: Buffer.from('k'), range_end: Buffer.from('l'), count_only: true }),
        5000,
      );
      conn.close();
      assert.is(r.grpcStatus, 0);
      assert.is(decodeRangeResponse(r.body).count, 300);
      assert.equal(c.deadMembers(), []);
      assert.ok(dirBytes(c.members[0].dataDir) > 0);
    } finally {
      await c.stop();
    }
    assert.ok(c.members[0].child.exitCode !== null || c.members[0].child.signalCode !== null);
    assert.ok(existsSync(c.members[0].logPath));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
