// `tetcd snapshot restore|status` refuse what `etcdctl snapshot restore|status` (3.4) refuses, with the same
// error line and exit code, and leave no data dir behind (etcdctl sometimes leaves a half-written one).
// No member is started: the etcdctl side runs as a process, tetcd's command in this process.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { oracleGate } from '../helpers/oracle.js';
import { repoRoot } from '../helpers/member.js';
import { awaitWithTimer, tempDir, track } from '../helpers/cleanup.js';
import { snapshotCommand } from '../../src/snapshot/cli.js';

function etcdctlSnapshot(args: readonly string[]): Promise<{ code: number; stderr: string }> {
  const done = new Promise<{ code: number; stderr: string }>((resolve, reject) => {
    const child = track(
      spawn('etcdctl', ['snapshot', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCDCTL_API: '3' } }),
    );
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
  return awaitWithTimer(done, 30_000, `etcdctl snapshot ${args.join(' ')}`);
}

const t = oracleGate(test);

/** The `Error: ...` line a snapshot command printed (etcdctl's zap log lines and tetcd's pino ones differ). */
function errorLine(r: { code: number; stderr: string }): string {
  return `exit ${r.code}: ${r.stderr.split('\n').find((l) => l.startsWith('Error:')) ?? '(no error)'}`;
}

t('restore and status refuse what etcdctl refuses, with its texts', async () => {
  const dir = tempDir('tetcd-refuse-');
  const good = path.join(repoRoot(), 'test', 'fixtures', 'snapshot', 'etcd34.db');
  const bytes = fs.readFileSync(good);
  const file = (name: string, b: Buffer): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, b);
    return p;
  };
  const flipped = Buffer.from(bytes);
  flipped[3 * 4096 + 100] ^= 1;
  const badSha = file('bad-sha.db', flipped);
  const noHash = file('no-hash.db', bytes.subarray(0, bytes.length - 32));
  const tiny = file('tiny.db', bytes.subarray(0, 10));
  const existing = path.join(dir, 'existing');
  fs.mkdirSync(existing);
  const cases: string[][] = [
    ['restore', badSha],
    ['restore', noHash],
    ['restore', tiny],
    ['restore', path.join(dir, 'missing.db')],
    ['restore', good, '--data-dir', existing],
    ['restore', good, '--name', 'other'],
    ['restore', good, '--initial-cluster', 'default=http://127.0.0.1:1', '--initial-advertise-peer-urls', 'http://127.0.0.1:2'],
    ['restore', good, '--initial-cluster', 'default=ftp://x:1'],
    ['restore', good, '--skip-hash-check=maybe'],
    ['restore'],
    ['status'],
    ['status', path.join(dir, 'missing.db')],
    ['status', good, '-w', 'protobuf'],
    ['status', good, '-w', 'nope'],
  ];
  for (const args of cases) {
    // Relative data dirs land in the temp dir, not the repository.
    const withDir =
      args[0] === 'restore' && !args.includes('--data-dir') && args.length > 1 ? [...args, '--data-dir', path.join(dir, 'd')] : args;
    const theirs = await etcdctlSnapshot(withDir);
    fs.rmSync(path.join(dir, 'd'), { recursive: true, force: true }); // etcdctl leaves a half-written one behind
    const ours = await snapshotCommand(withDir);
    const oursLine = errorLine({ code: ours.exitCode, stderr: ours.stderr });
    assert.not.ok(fs.existsSync(path.join(dir, 'd')), `tetcd left a data dir after ${args.join(' ')}`);
    assert.is(oursLine, errorLine(theirs), args.join(' '));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
