// Bad flags, environment variables and config files given to real etcd 3.4 and to parseConfig: the exit code
// and the error message must match (etcd's log prefix stripped, "etcd --help" read as "tetcd --help").
// Every case makes etcd exit at start-up, so no server ever runs.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfig } from '../../src/config/config.js';
import { tempDir, track } from '../helpers/cleanup.js';
import { oracleGate } from '../helpers/oracle.js';

interface Case {
  args?: string[];
  env?: Record<string, string>;
  /** Config file text; the file is passed with --config-file (plus `args`). */
  yaml?: string;
  /** Compare only up to this many characters (the YAML parser's own wording differs). */
  prefixChars?: number;
}

const CASES: Case[] = [
  // Go flag parsing (exit 2).
  { args: ['--bogus'] },
  { args: ['-bogus=1'] },
  { args: ['---name=x'] },
  { args: ['-=x'] },
  { args: ['--name'] },
  { args: ['--heartbeat-interval=x'] },
  { args: ['--heartbeat-interval=-5'] },
  { args: ['--snapshot-count=1e3'] },
  { args: ['--max-txn-ops=0x'] },
  { args: ['--quota-backend-bytes=1.5'] },
  { args: ['--quota-backend-bytes=9223372036854775808'] },
  { args: ['--max-concurrent-streams=x'] },
  { args: ['--max-concurrent-streams=4294967296'] },
  { args: ['--pre-vote=maybe'] },
  { args: ['-version=x'] },
  { args: ['--debug=2'] },
  { args: ['--initial-cluster-state=foo'] },
  { args: ['--discovery-fallback=x'] },
  { args: ['--proxy=x'] },
  { args: ['--backend-batch-interval=5'] },
  { args: ['--grpc-keepalive-timeout=5d'] },
  { args: ['--listen-client-urls=ftp://a:1'] },
  { args: ['--listen-client-urls=http://127.0.0.1:1/x'] },
  { args: ['--listen-client-urls=http://127.0.0.1'] },
  { args: ['--listen-peer-urls=localhost:2380'] },
  { args: ['--listen-peer-urls=127.0.0.1:2380'] },
  { args: ['--listen-peer-urls=http://a b:1'] },
  { args: ['--advertise-client-urls=http://a:x'] },
  { args: ['--initial-advertise-peer-urls=http://[::1:2380'] },
  { args: ['--cors=http://a:1/x'] },
  // Validation (exit 1, "error verifying flags").
  { args: ['positional'] },
  { args: ['--pre-vote', 'false'] },
  { args: ['--heartbeat-interval=300'] },
  { args: ['--heartbeat-interval=0'] },
  { args: ['--election-timeout=0'] },
  { args: ['--election-timeout=60000'] },
  { args: ['--heartbeat-interval=0x10', '--election-timeout=50'] },
  { args: ['--heartbeat-interval=1_0', '--election-timeout=40'] },
  { args: ['--listen-client-urls=http://127.0.0.1:23790'] },
  { args: ['--listen-client-urls=http://example.com:2379', '--advertise-client-urls=http://example.com:2379'] },
  { args: ['--listen-peer-urls=http://example.com:2380'] },
  { args: ['--initial-advertise-peer-urls=http://:2380'] },
  { args: ['--advertise-client-urls=http://:2379'] },
  { args: ['--auto-compaction-mode=x'] },
  { args: ['--discovery=http://127.0.0.1:1/d', '--initial-cluster=a=http://127.0.0.1:1'] },
  { args: ['--discovery-srv=example.com', '--initial-cluster=a=http://127.0.0.1:1'] },
  { args: ['--logger=x'] },
  { args: ['--logger=capnslog', '--log-outputs=somefile'] },
  { args: ['--logger=zap', '--log-outputs=default,stderr'] },
  { args: ['--experimental-enable-lease-checkpoint-persist'] },
  // Start-up (exit 1, before the data dir is touched).
  { args: ['--initial-cluster=default=bad'] },
  { args: ['--auto-compaction-retention=5d'] },
  { args: ['--auto-compaction-retention=1.5.5s'] },
  { args: ['--auto-compaction-retention=-1'] },
  // Environment variables.
  { env: { ETCD_HEARTBEAT_INTERVAL: 'x' } },
  { env: { ETCD_PRE_VOTE: 'maybe' } },
  { env: { ETCD_INITIAL_CLUSTER_STATE: 'bad' } },
  { env: { ETCD_ELECTION_TIMEOUT: '50' } },
  { env: { ETCD_LISTEN_CLIENT_URLS: 'http://127.0.0.1:23111' } },
  { env: { ETCD_NAME: 'foo' }, args: ['--name', 'bar'] },
  { env: { ETCD_BOGUS: '1', ETCD_HEARTBEAT_INTERVAL: '0' } },
  // Config files (flags and env vars given alongside are ignored).
  { yaml: 'heartbeat-interval: x' },
  { yaml: 'heartbeat-interval: "100"' },
  { yaml: 'heartbeat-interval: -1' },
  { yaml: 'heartbeat-interval: 1.5' },
  { yaml: 'backend-batch-interval: 5s' },
  { yaml: 'pre-vote: maybe' },
  { yaml: 'proxy-failure-wait: x' },
  { yaml: 'election-timeout: 100' },
  { yaml: 'Election-Timeout: 100' },
  { yaml: 'bogus: 1\nheartbeat-interval: 0' },
  { yaml: 'pre-vote: yes\nheartbeat-interval: 0' },
  { yaml: 'heartbeat-interval: 0', args: ['--heartbeat-interval=100'], env: { ETCD_HEARTBEAT_INTERVAL: '100' } },
  { yaml: 'initial-cluster-state: bogus' },
  { yaml: 'listen-client-urls: ftp://127.0.0.1:1' },
  { yaml: 'advertise-client-urls: http://a' },
  { yaml: 'proxy: bogus' },
  { yaml: 'discovery-fallback: bogus' },
  { yaml: 'auto-compaction-mode: x' },
  { yaml: '[1,2', prefixChars: 'error verifying flags, error converting YAML to JSON: yaml: '.length },
];

/** etcd's error line without the capnslog prefix ("2026-01-01 00:00:00.000000 E | etcdmain: "). */
function etcdMessage(stderr: string): string {
  for (const raw of stderr.split('\n')) {
    if (raw === '' || raw.startsWith('[WARNING]') || raw.startsWith('Please use')) continue;
    const m = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ ([A-Z]) \| (?:[\w/]+: )?(.*)$/.exec(raw);
    if (m === null) return raw;
    if (m[1] === 'E' || m[1] === 'C') return m[2]!;
    if (m[1] === 'I' && m[2]!.startsWith('unexpected error setting up')) return m[2]!; // log.Fatalf through capnslog
  }
  return '';
}

function runEtcd(args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn('etcd', args, { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'ignore', 'pipe'] }),
    );
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => {
      if (stderr.length < 65536) stderr += c.toString();
    });
    // Every case fails at start-up; a member that starts instead is a broken case, stopped here.
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const t = oracleGate(test);
for (const c of CASES) {
  const label = [
    c.yaml !== undefined ? `yaml ${JSON.stringify(c.yaml)}` : '',
    ...Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${v}`),
    ...(c.args ?? []),
  ]
    .filter((s) => s !== '')
    .join(' ');
  t(label, async () => {
    const dir = tempDir('tetcd-flags-');
    const dataDir = join(dir, 'data');
    let args = ['--data-dir', dataDir, ...(c.args ?? [])];
    if (c.yaml !== undefined) {
      const file = join(dir, 'etcd.yaml');
      writeFileSync(file, `data-dir: ${dataDir}\n${c.yaml}\n`);
      args = ['--config-file', file, ...(c.args ?? [])];
    }
    const etcd = await runEtcd(args, c.env ?? {}, dir);
    assert.ok(
      etcd.code !== null && etcd.code !== 0,
      `etcd did not fail (exit ${etcd.code}): the case is wrong\n${etcd.stderr.slice(0, 2000)}`,
    );
    const ours = parseConfig(args, c.env ?? {});
    assert.ok('exitCode' in ours, `tetcd accepted what etcd refused: ${etcdMessage(etcd.stderr)}`);
    if (!('exitCode' in ours)) return;
    const mine = (ours.stderr ?? '').split('\n')[0]!.replace("See 'tetcd --help'.", "See 'etcd --help'.");
    const theirs = etcdMessage(etcd.stderr);
    if (process.env.TETCD_CONFIG_VERBOSE === '1') process.stdout.write(`\n[${etcd.code}] ${theirs}\n[${ours.exitCode}] ${mine}\n`);
    assert.is(ours.exitCode, etcd.code, `exit code; etcd said: ${theirs}`);
    if (c.prefixChars !== undefined) assert.is(mine.slice(0, c.prefixChars), theirs.slice(0, c.prefixChars));
    else assert.is(mine, theirs);
  });
}

test.run();
