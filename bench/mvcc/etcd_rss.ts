// The reference figure for bench/mvcc/load.ts: loads the same N keys (256-byte values) into a real
// etcd 3.4 (/usr/bin/etcd, throwaway data dir, loopback ports), in txns of 100 puts, and prints
// etcd's resident memory after the load and after a restart (index rebuilt from bbolt).
//
//   node .build/mvcc/out/bench/mvcc/etcd_rss.js [keys] [valueBytes] [snapshotCount]
// etcd keeps the Raft log since its last snapshot in memory (default --snapshot-count 100000
// entries); a small snapshotCount leaves mostly the store in the figure.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort } from '../../tools/lib/ports.js';

const keys = Number(process.argv[2] ?? 1_000_000);
const valueBytes = Number(process.argv[3] ?? 256);
const txnOps = 100;
const inFlight = 8;
const snapshotCount = process.argv[4];

function statusMiB(pid: number, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function report(label: string, pid: number, extra = ''): void {
  const f = (n: number) => n.toFixed(0).padStart(5);
  const file = statusMiB(pid, 'RssFile') + statusMiB(pid, 'RssShmem');
  console.log(
    `etcd ${label.padEnd(13)} rss ${f(statusMiB(pid, 'VmRSS'))} MiB (anon ${f(statusMiB(pid, 'RssAnon'))}, file ${f(file)})  ${extra}`,
  );
}

async function startEtcd(dataDir: string, clientPort: number, peerPort: number): Promise<ChildProcess> {
  const p = spawn(
    'etcd',
    [
      '--data-dir',
      dataDir,
      '--name',
      'bench',
      '--listen-client-urls',
      `http://127.0.0.1:${clientPort}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${clientPort}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-cluster',
      `bench=http://127.0.0.1:${peerPort}`,
      ...(snapshotCount !== undefined ? ['--snapshot-count', snapshotCount] : []),
    ],
    { stdio: 'ignore' },
  );
  const client = new Etcd3({ hosts: `127.0.0.1:${clientPort}` });
  for (let i = 0; i < 600; i++) {
    try {
      await client.get('ready-probe').string();
      client.close();
      return p;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  client.close();
  p.kill('SIGKILL');
  throw new Error('etcd did not start');
}

const dir = mkdtempSync(join(tmpdir(), 'tetcd-bench-etcd-'));
const clientPort = await freePort();
const peerPort = await freePort();
let etcd: ChildProcess | undefined;
try {
  etcd = await startEtcd(dir, clientPort, peerPort);
  report('started', etcd.pid!);
  const client = new Etcd3({ hosts: `127.0.0.1:${clientPort}` });
  const pool = randomBytes(valueBytes * 64);
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < keys) {
      const start = next;
      next = Math.min(keys, next + txnOps);
      const success = [];
      for (let i = start; i < next; i++) {
        const off = (i * 37) % (pool.length - valueBytes);
        success.push({
          request_put: { key: Buffer.from('/registry/bench/' + String(i).padStart(9, '0')), value: pool.subarray(off, off + valueBytes) },
        });
      }
      await client.kv.txn({ success });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const s = (performance.now() - t0) / 1000;
  client.close();
  report('after load', etcd.pid!, `${(keys / s).toFixed(0)} keys/s (${s.toFixed(1)} s)`);
  etcd.kill('SIGTERM');
  await new Promise((r) => etcd!.once('exit', r));
  const r0 = performance.now();
  etcd = await startEtcd(dir, clientPort, peerPort);
  report('after restart', etcd.pid!, `ready in ${((performance.now() - r0) / 1000).toFixed(1)} s`);
} finally {
  etcd?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
