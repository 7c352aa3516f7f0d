// `tetcd snapshot restore|status`: etcdctl's snapshot commands (etcdctl/ctlv3/command/snapshot_command.go)
// with their flags, defaults, output formats, error texts and exit codes (1 on errors, 4 on an unsupported output format, 128 on bad arguments).
import path from 'node:path';
import { verifyBootstrap, type Config } from '../config/config.js';
import { newUrls, parseGoBool, parseUrlsMap } from '../config/values.js';
import { newLogger } from '../log.js';
import { BboltError } from './bbolt_read.js';
import { restoreSnapshot } from './restore.js';
import { snapshotStatus, type SnapshotStatus } from './status.js';

const EXIT_ERROR = 1;
const EXIT_BAD_FEATURE = 4;
const EXIT_BAD_ARGS = 128;

/** What the command printed and its exit code (printed by the caller). */
export interface CliResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const USAGE = `NAME:
	tetcd snapshot - Restores or inspects etcd snapshot files (etcdctl snapshot save, tetcd's Snapshot RPC)

USAGE:
	tetcd snapshot status <filename> [-w simple|json|table|fields]
	tetcd snapshot restore <filename> [options]

RESTORE OPTIONS:
      --data-dir=""						Path to the data directory
      --initial-advertise-peer-urls="http://localhost:2380"	List of this member's peer URLs to advertise to the rest of the cluster
      --initial-cluster="default=http://localhost:2380"		Initial cluster configuration for restore bootstrap
      --initial-cluster-token="etcd-cluster"			Initial cluster token for the etcd cluster during restore bootstrap
      --name="default"						Human-readable name for this member
      --skip-hash-check[=false]					Ignore snapshot integrity hash value (required if copied from data directory)
      --wal-dir=""						Path to the WAL directory (use --data-dir if none given)
  -w, --write-out="simple"			set the output format (fields, json, simple, table) of status
`;

const STRING_FLAGS = new Set([
  'data-dir',
  'wal-dir',
  'initial-cluster',
  'initial-cluster-token',
  'initial-advertise-peer-urls',
  'name',
  'write-out',
]);
const BOOL_FLAGS = new Set(['skip-hash-check', 'help']);

interface Parsed {
  args: string[];
  flags: Map<string, string>;
}

/** pflag-style parsing: --flag value, --flag=value, -w value; booleans take only the =value form. */
function parseFlags(argv: readonly string[]): Parsed | string {
  const args: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      args.push(a);
      continue;
    }
    let name: string;
    let value: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      value = eq >= 0 ? a.slice(eq + 1) : undefined;
    } else {
      name = a.slice(1, 2) === 'w' ? 'write-out' : a.slice(1, 2) === 'h' ? 'help' : a.slice(1);
      value = a.length > 2 ? a.slice(a[2] === '=' ? 3 : 2) : undefined;
      if (name !== 'write-out' && name !== 'help') return `unknown shorthand flag: '${a.slice(1, 2)}' in ${a}`;
    }
    if (BOOL_FLAGS.has(name)) {
      const b = parseGoBool(value ?? 'true');
      if (b === null)
        return `invalid argument ${JSON.stringify(value)} for "--${name}" flag: strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`;
      flags.set(name, String(b));
    } else if (STRING_FLAGS.has(name)) {
      if (value === undefined) {
        if (i + 1 >= argv.length) return `flag needs an argument: --${name}`;
        value = argv[++i]!;
      }
      flags.set(name, value);
    } else {
      return `unknown flag: --${name}`;
    }
  }
  return { args, flags };
}

/** Runs `tetcd snapshot <argv...>`. */
export async function snapshotCommand(argv: readonly string[]): Promise<CliResult> {
  const out: CliResult = { stdout: '', stderr: '', exitCode: 0 };
  const fail = (code: number, msg: string): CliResult => ({ ...out, stderr: out.stderr + `Error: ${msg}\n`, exitCode: code });
  const sub = argv[0];
  const p = parseFlags(argv.slice(1));
  if (typeof p === 'string') return fail(EXIT_ERROR, p);
  if (sub === undefined || sub === 'help' || sub.startsWith('-') || p.flags.get('help') === 'true') {
    return { ...out, stdout: USAGE };
  }
  if (sub === 'status') {
    if (p.args.length !== 1) return fail(EXIT_BAD_ARGS, 'snapshot status requires exactly one argument');
    const format = p.flags.get('write-out') ?? 'simple';
    if (!['simple', 'json', 'table', 'fields', 'protobuf'].includes(format)) return fail(EXIT_BAD_FEATURE, 'unsupported output format');
    if (format === 'protobuf') return fail(EXIT_BAD_FEATURE, 'protobuf not supported as output format');
    try {
      out.stdout = formatStatus(snapshotStatus(p.args[0]!), format);
      return out;
    } catch (err) {
      return fail(EXIT_ERROR, errorText(err));
    }
  }
  if (sub === 'restore') {
    if (p.args.length !== 1) return fail(EXIT_BAD_ARGS, 'snapshot restore requires exactly one argument');
    const name = p.flags.get('name') ?? 'default';
    const dataDir = p.flags.get('data-dir') || `${name}.etcd`;
    const walDir = p.flags.get('wal-dir') || path.join(dataDir, 'member', 'wal');
    const cluster = parseUrlsMap(p.flags.get('initial-cluster') ?? 'default=http://localhost:2380');
    if ('error' in cluster) return fail(EXIT_ERROR, cluster.error);
    const peers = newUrls((p.flags.get('initial-advertise-peer-urls') ?? 'http://localhost:2380').split(','));
    if ('error' in peers) return fail(EXIT_ERROR, peers.error);
    const bootErr = verifyBootstrap({
      name,
      initialClusterMembers: cluster,
      initialAdvertisePeerUrls: peers,
      initialClusterState: 'new',
      discovery: '',
    } as unknown as Config);
    if (bootErr !== null) return fail(EXIT_ERROR, bootErr);
    const lines: string[] = [];
    const log = newLogger('info', (line) => lines.push(line));
    const fields = { path: p.args[0]!, 'wal-dir': walDir, 'data-dir': dataDir, 'snap-dir': path.join(dataDir, 'member', 'snap') };
    log.info('restoring snapshot', fields);
    try {
      const r = await restoreSnapshot({
        snapshotPath: p.args[0]!,
        name,
        dataDir,
        walDir,
        initialCluster: cluster.map((m) => ({ name: m.name, peerURLs: m.peerUrls.map((u) => u.href) })),
        initialClusterToken: p.flags.get('initial-cluster-token') ?? 'etcd-cluster',
        skipHashCheck: p.flags.get('skip-hash-check') === 'true',
      });
      log.info('restored snapshot', {
        ...fields,
        'member-id': r.memberId.toString(16),
        'cluster-id': r.clusterId.toString(16),
        revisions: r.revisions,
        leases: r.leases,
      });
      await new Promise((res) => setImmediate(res));
      return { ...out, stderr: lines.join('') };
    } catch (err) {
      await new Promise((res) => setImmediate(res));
      return { ...fail(EXIT_ERROR, errorText(err)), stderr: lines.join('') + `Error: ${errorText(err)}\n` };
    }
  }
  return fail(EXIT_ERROR, `unknown command "${sub}" for "tetcd snapshot"`);
}

/** Node's fs errors as Go's os errors print (`open FILE: no such file or directory`). */
function errorText(err: unknown): string {
  if (err instanceof BboltError) return err.message;
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && typeof e.syscall === 'string' && typeof e.path === 'string') {
    const why: Record<string, string> = {
      ENOENT: 'no such file or directory',
      EACCES: 'permission denied',
      EISDIR: 'is a directory',
      ENOTDIR: 'not a directory',
    };
    const op = e.syscall === 'open' ? 'open' : e.syscall === 'stat' ? 'stat' : e.syscall;
    return `${op} ${e.path}: ${why[e.code] ?? e.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The status line(s) as etcdctl's printers write them. */
export function formatStatus(s: SnapshotStatus, format: string): string {
  const row = [s.hash.toString(16), String(s.revision), String(s.totalKey), humanizeBytes(s.totalSize)];
  switch (format) {
    case 'json':
      return JSON.stringify({ hash: s.hash, revision: s.revision, totalKey: s.totalKey, totalSize: s.totalSize }) + '\n';
    case 'fields':
      return `"Hash" : ${s.hash}\n"Revision" : ${s.revision}\n"Keys" : ${s.totalKey}\n"Size" : ${s.totalSize}\n`;
    case 'table':
      return table(['HASH', 'REVISION', 'TOTAL KEYS', 'TOTAL SIZE'], row);
    default:
      return row.join(', ') + '\n';
  }
}

/** olekukonko/tablewriter with etcdctl's settings: headers centred, cells right-aligned, one space of padding. */
function table(hdr: string[], row: string[]): string {
  const w = hdr.map((h, i) => Math.max(h.length, row[i]!.length));
  const line = '+' + w.map((n) => '-'.repeat(n + 2)).join('+') + '+\n';
  const centre = (s: string, n: number): string => {
    const gap = n - s.length;
    const left = Math.floor(gap / 2);
    return ' '.repeat(left) + s + ' '.repeat(gap - left);
  };
  const head = '|' + hdr.map((h, i) => ` ${centre(h, w[i]!)} `).join('|') + '|\n';
  const body = '|' + row.map((c, i) => ` ${c.padStart(w[i]!)} `).join('|') + '|\n';
  return line + head + line + body + line;
}

/** go-humanize's Bytes (SI units), as etcdctl prints sizes: "37 kB", "2.1 MB", "9 B". */
export function humanizeBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const sizes = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const val = Math.floor((n / 1000 ** e) * 10 + 0.5) / 10;
  return `${val < 10 ? goFixed(val, 1) : goFixed(val, 0)} ${sizes[e]}`;
}

/** Go's %.Nf: round half to even on the exact binary value (JS toFixed rounds such halves up). */
function goFixed(v: number, digits: number): string {
  const scaled = v * 10 ** digits;
  const fl = Math.floor(scaled);
  if (scaled - fl === 0.5 && fl % 2 === 0) return (fl / 10 ** digits).toFixed(digits);
  return v.toFixed(digits);
}
