// Snapshot restore and status beside etcdctl 3.4 (`node dist/bench/snapshot/restore.bench.js`): a real etcd 3.4
// is loaded with --puts puts (256-byte values over --keys keys, etcd's own Go client), compacted at half its
// revisions, and saved with `etcdctl snapshot save`; then, in alternating order per round, `etcdctl snapshot
// restore` and `tetcd snapshot restore` of that file into a fresh data dir, and `snapshot status` of it by
// both: wall-clock seconds of each command, medians over --rounds. etcd's restore copies the file and
// rewrites its meta; tetcd's reads every page, checks the tree and writes each revision into its LMDB backend,
// then reopens it to rebuild the key index.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../lib/servers.js';
import { buildEtcdLoad, runEtcdLoad } from '../lib/etcdload.js';
import { median } from '../lib/stats.js';
import { readFlags } from '../lib/flags.js';

interface Options {
  rounds: number;
  puts: number;
  keys: number;
  tetcdCmd: string[];
}

function timed(cmd: string[], env: NodeJS.ProcessEnv = process.env): number {
  const t0 = performance.now();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', env, timeout: 600_000 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const o = readFlags<Options>(
    process.argv.slice(2),
    { rounds: 5, puts: 200_000, keys: 100_000, tetcdCmd: ['node', 'dist/src/cli/main.js'] },
    {
      '--rounds': ['rounds', 'number'],
      '--puts': ['puts', 'number'],
      '--keys': ['keys', 'number'],
      '--tetcd-cmd': ['tetcdCmd', 'command'],
    },
  );
  const root = process.cwd();
  const base = mkdtempSync(join(tmpdir(), 'tetcd-bench-restore-'));
  const env = { ...process.env, ETCDCTL_API: '3' };
  try {
    mkdirSync(join(base, 'etcd'));
    const etcd = await Cluster.start({ kind: 'etcd', cmd: ['/usr/bin/etcd'], cwd: root, members: 1, baseDir: join(base, 'etcd') });
    const snap = join(base, 'snap.db');
    try {
      const bin = buildEtcdLoad(root, join(tmpdir(), 'tetcd-etcdload'));
      await runEtcdLoad(bin, {
        endpoints: etcd.endpoints,
        conns: 10,
        clients: 100,
        total: o.puts,
        durationMs: 0,
        workload: { method: 'put', keyBytes: 16, valueBytes: 256, keySpace: o.keys },
      });
      const ep = `--endpoints=${etcd.endpoints[0]}`;
      const rev = JSON.parse(spawnSync('etcdctl', [ep, 'get', 'x', '-w', 'json'], { encoding: 'utf8', env }).stdout).header.revision;
      timed(['etcdctl', ep, 'compact', String(Math.floor(rev / 2))], env);
      timed(['etcdctl', ep, 'snapshot', 'save', snap], env);
    } finally {
      await etcd.stop();
    }
    const bytes = statSync(snap).size;
    const times: Record<string, number[]> = { 'etcdctl restore': [], 'tetcd restore': [], 'etcdctl status': [], 'tetcd status': [] };
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? ['etcdctl', 'tetcd'] : ['tetcd', 'etcdctl'];
      for (const who of order) {
        const cmd = who === 'etcdctl' ? ['etcdctl'] : o.tetcdCmd;
        const dir = join(base, `${who}-${r}`);
        times[`${who} restore`]!.push(timed([...cmd, 'snapshot', 'restore', snap, '--data-dir', dir], env));
        times[`${who} status`]!.push(timed([...cmd, 'snapshot', 'status', snap], env));
        rmSync(dir, { recursive: true, force: true });
      }
    }
    console.log(`snapshot: ${(bytes / 1e6).toFixed(1)} MB, ${o.puts} puts over ${o.keys} keys, compacted at half; ${o.rounds} rounds`);
    for (const [k, v] of Object.entries(times))
      console.log(`${k.padEnd(16)} median ${median(v).toFixed(2)} s  (${v.map((x) => x.toFixed(2)).join(' ')})`);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
