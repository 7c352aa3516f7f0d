// One data dir, one member: a second process started on a data dir in use exits with a clear message
// instead of writing the same WAL and backend.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { startTetcd, tetcdEntry } from '../helpers/member.js';
import { freePort } from '../../tools/lib/ports.js';

test('a second member on a data dir in use refuses to start', async () => {
  const m = await startTetcd();
  try {
    const [client, peer] = [await freePort(), await freePort()];
    const r = spawnSync(
      process.execPath,
      [
        tetcdEntry(),
        '--name',
        'other',
        '--data-dir',
        m.dataDir,
        '--listen-client-urls',
        `http://127.0.0.1:${client}`,
        '--advertise-client-urls',
        `http://127.0.0.1:${client}`,
        '--listen-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-cluster',
        `other=http://127.0.0.1:${peer}`,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.is(r.status, 1);
    assert.match(r.stderr, `data dir ${m.dataDir} is in use by another member`);
    assert.match(r.stderr, 'is locked by another process');
  } finally {
    await m.stop();
  }
});

test.run();
