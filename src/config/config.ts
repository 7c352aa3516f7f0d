// tetcd's configuration, read exactly as etcd 3.4.23 reads its own: command-line flags (Go syntax), then
// ETCD_* environment variables, or instead a YAML file named by --config-file; then etcd's start-up checks.
// parseConfig is pure apart from reading the config file: it never prints and never exits.
import { readFileSync } from 'node:fs';
import { usageText, flagsHelpText } from './help.js';
import { FLAGS, IGNORED_FLAGS, flagSpec, flagToEnv, type FlagName } from './flags.js';
import { FlagValues, parseArgs, type UrlsValue, type ValueSource } from './goflag.js';
import { IMPLEMENTED } from './implemented.js';
import { versionText } from './version.js';
import { applyYamlConfig } from './yaml.js';
import type { V8WorkersSched } from '../v8_workers.js';
import {
  goQuote,
  isIpLiteral,
  parseAtoi,
  parseGoDuration,
  parseUrlsMap,
  splitHostPort,
  urlsMapString,
  type ClusterMember,
  type GoUrl,
} from './values.js';

export type { ClusterMember, GoUrl } from './values.js';
export type { FlagName } from './flags.js';
export type { ValueSource } from './goflag.js';

/** TLS settings of one side (clients or peers). */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  clientCertAuth: boolean;
  trustedCaFile: string;
  crlFile: string;
  /** Required TLS hostname of the other side's certificate ('' = any). */
  allowedHostname: string;
  /** Peers only: required CN of a connecting peer's certificate ('' = any). */
  allowedCn: string;
  /** Generate a self-signed certificate when no cert/key is given. */
  autoTls: boolean;
  /** Peers only: skip the SAN check of client certificates. */
  skipClientSanVerify: boolean;
}

/** Log levels etcd accepts for --log-level (dpanic is folded into panic). */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';

/** Every setting of a member, typed, with units in the names. Durations are milliseconds unless named Us. */
export interface Config {
  // Member
  name: string;
  /** `${name}.etcd` when not given. */
  dataDir: string;
  /** '' = <data-dir>/member/wal. */
  walDir: string;
  snapshotCount: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  /** electionTimeoutMs / heartbeatIntervalMs, rounded down (etcd's ElectionTicks). */
  electionTicks: number;
  initialElectionTickAdvance: boolean;
  listenPeerUrls: GoUrl[];
  listenClientUrls: GoUrl[];
  maxSnapshots: number;
  maxWals: number;
  /** As given: 0 = the default quota, negative = no quota. See quotaBackendBytesEffective. */
  quotaBackendBytes: number;
  /** 2 GiB when 0 was given, Infinity when negative. */
  quotaBackendBytesEffective: number;
  backendBatchIntervalMs: number;
  backendBatchLimit: number;
  maxTxnOps: number;
  maxRequestBytes: number;
  maxConcurrentStreams: number;
  grpcKeepaliveMinTimeMs: number;
  grpcKeepaliveIntervalMs: number;
  grpcKeepaliveTimeoutMs: number;

  // Clustering
  initialAdvertisePeerUrls: GoUrl[];
  /** The --initial-cluster text after etcd's defaulting (a non-default --name rewrites the default). */
  initialCluster: string;
  /** --initial-cluster parsed (empty when a discovery method replaces it), in the order given. */
  initialClusterMembers: ClusterMember[];
  initialClusterState: 'new' | 'existing';
  initialClusterToken: string;
  /** Empty only in proxy mode when --listen-client-urls was set without it. */
  advertiseClientUrls: GoUrl[];
  discovery: string;
  discoveryFallback: 'exit' | 'proxy';
  discoveryProxy: string;
  discoverySrv: string;
  discoverySrvName: string;
  strictReconfigCheck: boolean;
  /** --experimental-max-learners (etcd 3.6) */
  maxLearners: number;
  /** --learner-auto-promote: the leader promotes learners that caught up. */
  learnerAutoPromote: boolean;
  preVote: boolean;
  enableV2: boolean;
  autoCompactionMode: 'periodic' | 'revision';
  /** As given ("0", "1h", "5" = 5 hours in periodic mode, 5 revisions in revision mode). */
  autoCompactionRetention: string;
  /** Periodic mode: the retention window; 0 = auto-compaction off. */
  autoCompactionRetentionMs: number;
  /** Revision mode: revisions to keep; 0 = auto-compaction off. */
  autoCompactionRetentionRevisions: number;

  // Security
  clientTls: TlsConfig;
  peerTls: TlsConfig;
  cipherSuites: string[];
  /** Years the auto-TLS certificates are valid. */
  selfSignedCertValidityYears: number;
  /** Allowed CORS origins ('*' = all). */
  cors: string[];
  hostWhitelist: string[];

  // Auth
  authToken: string;
  bcryptCost: number;
  authTokenTtlS: number;

  // Profiling and monitoring
  enablePprof: boolean;
  metrics: 'basic' | 'extensive';
  listenMetricsUrls: GoUrl[];

  // Logging
  logger: 'capnslog' | 'zap';
  logOutputs: string[];
  logLevel: LogLevel;
  debug: boolean;
  logPackageLevels: string;

  // v2 proxy
  proxy: 'off' | 'readonly' | 'on';
  proxyFailureWaitMs: number;
  proxyRefreshIntervalMs: number;
  proxyDialTimeoutMs: number;
  proxyWriteTimeoutMs: number;
  proxyReadTimeoutMs: number;

  // Experimental
  experimentalInitialCorruptCheck: boolean;
  experimentalCorruptCheckTimeMs: number;
  experimentalEnableV2v3: string;
  experimentalBackendBboltFreelistType: string;
  experimentalEnableLeaseCheckpoint: boolean;
  experimentalEnableLeaseCheckpointPersist: boolean;
  experimentalCompactionBatchLimit: number;
  experimentalWatchProgressNotifyIntervalMs: number;
  experimentalWarningApplyDurationMs: number;

  // Unsafe and hidden
  forceNewCluster: boolean;
  unsafeNoFsync: boolean;
  enableGrpcGateway: boolean;

  // tetcd only
  quotaAutoDisarm: boolean;
  /** 0 = no byte budget on Range responses. */
  maxRangeResponseBytes: number;
  walBatchBytesMax: number;
  walBatchDelayUsMax: number;
  walWriterIdleSpinUs: number;
  walSegmentBytes: number;
  workerThreads: number;
  /** --watch-pool-min-watchers: fan-outs this large go to the worker threads. */
  watchPoolWatchersMin: number;
  /** --gateway-pool-min-bytes: JSON gateway bodies this large are decoded on the worker threads. */
  gatewayPoolMinBytes: number;
  clientWorkers: number;
  /** --lease-checkpoint (tetcd: on by default) or etcd's --experimental-enable-lease-checkpoint. */
  leaseCheckpoint: boolean;
  leaseCheckpointIntervalMs: number;
  /** --grpc-engine: who speaks HTTP/2 for the gRPC server. */
  grpcEngine: 'node' | 'raw';
  /** --v8-workers-sched: priority of V8's platform worker threads. */
  v8WorkersSched: V8WorkersSched;
  proposalBatchCountMax: number;
  applyBatchBytesMax: number;
  snapshotCatchupEntries: number;

  /** The YAML file the settings came from, or ''. */
  configFile: string;
  /** Where each flag's value came from. */
  sources: Readonly<Record<FlagName, ValueSource>>;
  /** Flags the user set whose feature is not implemented yet (see implemented.ts); the member warns about them. */
  unimplementedSet: FlagName[];
}

/** What parseConfig returns: a config (with the warnings and notices etcd would log), or how to exit. */
export type ParseResult =
  | { config: Config; warnings: string[]; notices: string[] }
  | { exitCode: number; stdout?: string; stderr?: string };

/** The outside world parseConfig may touch; tests replace it. */
export interface ParseIo {
  readFile(path: string): string;
  runtime: { node: string; platform: string; arch: string };
}

const defaultIo: ParseIo = {
  readFile: (path) => readFileSync(path, 'utf8'),
  runtime: { node: process.version, platform: process.platform, arch: process.arch },
};

/** etcd's default 2 GiB backend quota and the 8 GiB it warns above. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
const MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;
const MAX_ELECTION_MS = 50_000;
const RECOMMENDED_MAX_REQUEST_BYTES = 10 * 1024 * 1024;
const DEFAULT_INITIAL_CLUSTER = 'default=http://localhost:2380';
const ERR_UNSET_ADVERTISE = '--advertise-client-urls is required when --listen-client-urls is set explicitly';
const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'dpanic', 'panic', 'fatal'];

/** A start-up failure: etcd's "error verifying flags" line, exit 1. */
function verifyError(msg: string, extra = ''): { exitCode: number; stderr: string } {
  return { exitCode: 1, stderr: `error verifying flags, ${msg}. See 'tetcd --help'.\n${extra}` };
}

function str(values: FlagValues, name: FlagName): string {
  const v = values.get(name);
  if (typeof v !== 'string') throw new Error(`tetcd: --${name} is not a string flag`);
  return v;
}
function bool(values: FlagValues, name: FlagName): boolean {
  const v = values.get(name);
  if (typeof v !== 'boolean') throw new Error(`tetcd: --${name} is not a boolean flag`);
  return v;
}
function big(values: FlagValues, name: FlagName): bigint {
  const v = values.get(name);
  if (typeof v !== 'bigint') throw new Error(`tetcd: --${name} is not a numeric flag`);
  return v;
}
/** Integers as JS numbers (values past 2^53 lose precision, harmless for every flag here). */
function num(values: FlagValues, name: FlagName): number {
  return Number(big(values, name));
}
/** Nanosecond durations as milliseconds. */
function ms(values: FlagValues, name: FlagName): number {
  return Number(big(values, name)) / 1e6;
}
function urls(values: FlagValues, name: FlagName): UrlsValue {
  const v = values.get(name);
  if (typeof v !== 'object' || v === null || !('urls' in v)) throw new Error(`tetcd: --${name} is not a URL flag`);
  return v;
}
function list(values: FlagValues, name: FlagName): string[] {
  const v = values.get(name);
  if (!Array.isArray(v)) throw new Error(`tetcd: --${name} is not a list flag`);
  return v;
}

/** Reads ETCD_* variables into flags not set on the command line (etcd's flags.SetFlagsFromEnv). */
function applyEnv(
  values: FlagValues,
  env: NodeJS.ProcessEnv,
  notices: string[],
  warnings: string[],
): { exitCode: number; stderr: string } | string | null {
  const names = [...FLAGS.map((f) => f.name as string), ...IGNORED_FLAGS].sort();
  const alreadySet = new Set(names.filter((n) => values.isSet(n)).map(flagToEnv));
  const used = new Set<string>();
  let lastError: string | null = null;
  for (const name of names) {
    const key = flagToEnv(name);
    if (alreadySet.has(key)) continue;
    const val = env[key];
    if (val === undefined || val === '') continue;
    used.add(key);
    const err = values.set(name, val, 'env');
    if (err !== null) lastError = `invalid value ${goQuote(val)} for ${key}: ${err}`;
    else notices.push(`recognized and used environment variable ${key}=${val}`);
  }
  for (const [key, val] of Object.entries(env)) {
    if (used.has(key)) continue;
    if (alreadySet.has(key)) {
      // etcd treats this as fatal, not a warning: the user must pick one.
      return {
        exitCode: 1,
        stderr: `conflicting environment variable ${goQuote(key)} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)\n`,
      };
    }
    if (key.startsWith('ETCD_')) warnings.push(`unrecognized environment variable ${key}=${val ?? ''}`);
  }
  return lastError;
}

/** embed.checkBindURLs: listen URLs must name an IP (or localhost), except unix sockets. */
function checkBindUrls(list: readonly GoUrl[]): string | null {
  for (const u of list) {
    if (u.scheme === 'unix' || u.scheme === 'unixs') continue;
    const hp = splitHostPort(u.host);
    if ('error' in hp) return hp.error;
    if (hp.host === 'localhost') continue;
    if (!isIpLiteral(hp.host)) return `expected IP in URL for binding (${u.href})`;
  }
  return null;
}

/** embed.checkHostURLs: advertised URLs need a host. */
function checkHostUrls(list: readonly GoUrl[]): string | null {
  for (const u of list) {
    const hp = splitHostPort(u.host);
    if ('error' in hp) return hp.error;
    if (hp.host === '') return `unexpected empty host (${u.href})`;
  }
  return null;
}

/** The logging part of embed.Config.setupLogging that can fail. */
function checkLogging(values: FlagValues, logOutputs: string[]): string | null {
  const logger = str(values, 'logger');
  const level = str(values, 'log-level');
  if (logger !== 'capnslog' && logger !== 'zap') return `unknown logger option ${goQuote(logger)}`;
  if (!LOG_LEVELS.includes(level)) {
    return `unknown level ${goQuote(level)} (--log-level supports debug, info, warn, error, panic, or fatal)`;
  }
  if (logger === 'capnslog') {
    if (logOutputs.length !== 1) return `--logger=capnslog supports only 1 value in '--log-outputs', got ["${logOutputs.join('" "')}"]`;
    const out = logOutputs[0]!;
    if (!['default', 'stderr', 'stdout'].includes(out))
      return `unknown log-output ${goQuote(out)} (only supports "default", "stderr", "stdout")`;
  } else if (logOutputs.length > 1 && logOutputs.includes('default')) {
    return 'multi logoutput for "default" is not supported yet';
  }
  return null;
}

/** etcd's deprecated --log-output wins when it alone was changed (embed.setupLogging's v3.4 shim). */
function effectiveLogOutputs(values: FlagValues): string[] {
  const outputs = list(values, 'log-outputs');
  const old = list(values, 'log-output');
  if (values.source('log-output') !== 'default' && values.source('log-outputs') === 'default') return old;
  return outputs;
}

/** etcd's embed.Config.Validate (and etcdmain's proxy exception), in etcd's order. */
function validate(values: FlagValues, advertiseUnset: boolean, proxyMayServe: boolean): { exitCode: number; stderr: string } | null {
  const logErr = checkLogging(values, effectiveLogOutputs(values));
  if (logErr) return verifyError(logErr);
  for (const name of ['listen-peer-urls', 'listen-client-urls', 'listen-metrics-urls'] as const) {
    const err = checkBindUrls(urls(values, name).urls);
    if (err) return verifyError(err);
  }
  for (const name of ['initial-advertise-peer-urls', 'advertise-client-urls'] as const) {
    const list = urls(values, name).urls;
    const err = checkHostUrls(list);
    if (err) return verifyError(`--${name} ${goQuote(list.map((u) => u.href).join(','))} must be "host:port" (${err})`);
  }
  const nSet = [str(values, 'discovery'), str(values, 'initial-cluster'), str(values, 'discovery-srv')].filter((s) => s !== '').length;
  const state = str(values, 'initial-cluster-state');
  if (state !== 'new' && state !== 'existing') return verifyError(`unexpected clusterState ${goQuote(state)}`);
  if (nSet > 1) {
    return verifyError('multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"');
  }
  const tick = big(values, 'heartbeat-interval');
  const election = big(values, 'election-timeout');
  if (tick <= 0n) return verifyError(`--heartbeat-interval must be >0 (set to ${tick}ms)`);
  if (election <= 0n) return verifyError(`--election-timeout must be >0 (set to ${election}ms)`);
  if (5n * tick > election) {
    return verifyError(`--election-timeout[${election}ms] should be at least as 5 times as --heartbeat-interval[${tick}ms]`);
  }
  // A writer thread that polls for longer than a second is a mistake, not a tuning.
  if (big(values, 'wal-writer-idle-spin') > 1_000_000_000n) return verifyError('--wal-writer-idle-spin must be at most 1s');
  if (election > BigInt(MAX_ELECTION_MS)) {
    return verifyError(`--election-timeout[${election}ms] is too long, and should be set less than ${MAX_ELECTION_MS}ms`);
  }
  if (advertiseUnset) {
    if (proxyMayServe) return null;
    return verifyError(
      ERR_UNSET_ADVERTISE,
      'When listening on specific address(es), this etcd process must advertise accessible url(s) to each connected client.\n',
    );
  }
  const mode = str(values, 'auto-compaction-mode');
  if (mode !== '' && mode !== 'periodic' && mode !== 'revision') return verifyError(`unknown auto-compaction-mode ${goQuote(mode)}`);
  if (bool(values, 'experimental-enable-lease-checkpoint-persist') && !bool(values, 'experimental-enable-lease-checkpoint')) {
    return verifyError('setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint');
  }
  return null;
}

function tls(values: FlagValues, peer: boolean): TlsConfig {
  const p = peer ? 'peer-' : '';
  return {
    certFile: str(values, `${p}cert-file` as FlagName),
    keyFile: str(values, `${p}key-file` as FlagName),
    clientCertAuth: bool(values, `${p}client-cert-auth` as FlagName),
    trustedCaFile: str(values, `${p}trusted-ca-file` as FlagName),
    crlFile: str(values, peer ? 'peer-crl-file' : 'client-crl-file'),
    allowedHostname: str(values, peer ? 'peer-cert-allowed-hostname' : 'client-cert-allowed-hostname'),
    allowedCn: peer ? str(values, 'peer-cert-allowed-cn') : '',
    autoTls: bool(values, peer ? 'peer-auto-tls' : 'auto-tls'),
    skipClientSanVerify: peer ? bool(values, 'experimental-peer-skip-client-san-verification') : false,
  };
}

/**
 * Parses a member's configuration the way `etcd` does: argv (without node and script), then ETCD_* from env,
 * or only the YAML file when --config-file / ETCD_CONFIG_FILE names one; then etcd's start-up checks.
 * `--help` and `--version` come back as exit results too.
 *
 *   const r = parseConfig(process.argv.slice(2), process.env);
 *   if ('exitCode' in r) { process.stdout.write(r.stdout ?? ''); process.stderr.write(r.stderr ?? ''); process.exit(r.exitCode); }
 */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv, io: ParseIo = defaultIo): ParseResult {
  const values = new FlagValues();
  const warnings: string[] = [];
  const notices: string[] = [];

  const args = parseArgs(values, argv);
  if ('help' in args) return { exitCode: 0, stdout: flagsHelpText(), stderr: usageText() };
  if ('error' in args) return { exitCode: 2, stderr: `${args.error}\n${usageText()}` };
  if (args.rest.length > 0) return verifyError(`'${args.rest[0]}' is not a valid flag`);
  warnings.push(...values.warnings.splice(0));
  if (bool(values, 'version')) return { exitCode: 0, stdout: versionText(io.runtime) };

  let configFile = str(values, 'config-file');
  if (configFile === '') configFile = env.ETCD_CONFIG_FILE ?? '';
  let proxyMayServe = false;
  let advertiseUnset = false;
  let fileValues: FlagValues | null = null;
  if (configFile !== '') {
    // The file replaces flags and env vars entirely, as in etcd.
    fileValues = new FlagValues();
    notices.push(
      `Loading server configuration from ${goQuote(configFile)}. Other configuration command line flags and environment variables will be ignored if provided.`,
    );
    let text: string;
    try {
      text = io.readFile(configFile);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? 'no such file or directory'
          : code === 'EACCES'
            ? 'permission denied'
            : code === 'EISDIR'
              ? 'is a directory'
              : (e as Error).message;
      return verifyError(`open ${configFile}: ${why}`);
    }
    const err = applyYamlConfig(fileValues, text);
    if (err) return err.wrapped ? verifyError(err.error) : { exitCode: 1, stderr: `${err.error}\n` };
    const verr = validate(fileValues, false, false);
    if (verr) return verr;
    for (const name of ['discovery-fallback', 'proxy'] as const) {
      const v = str(fileValues, name);
      const valids = flagSpec(name)?.valids ?? [];
      if (!valids.includes(v)) {
        return {
          exitCode: 1,
          stderr: `unexpected error setting up ${name === 'proxy' ? 'proxyFlag' : 'discovery-fallback flag'}: invalid value\n`,
        };
      }
    }
  } else {
    const envResult = applyEnv(values, env, notices, warnings);
    if (envResult !== null && typeof envResult === 'object') return envResult;
    warnings.push(...values.warnings.splice(0));
    if (typeof envResult === 'string') return verifyError(envResult);
    proxyMayServe = str(values, 'proxy') !== 'off' || (str(values, 'discovery') !== '' && str(values, 'discovery-fallback') === 'proxy');
    // Listening somewhere explicit without saying what to advertise is an error (unless proxying).
    advertiseUnset = values.isSet('listen-client-urls') && !values.isSet('advertise-client-urls') && !proxyMayServe;
    const discovering = str(values, 'discovery') !== '' || str(values, 'discovery-srv') !== '' || str(values, 'discovery-srv-name') !== '';
    if (discovering && !values.isSet('initial-cluster')) values.put('initial-cluster', '', 'default');
    const verr = validate(values, advertiseUnset, proxyMayServe);
    if (verr) return verr;
  }
  const v = fileValues ?? values;

  // etcdmain's defaulting after validation.
  const name = str(v, 'name');
  const apUrls = urls(v, 'initial-advertise-peer-urls').urls;
  let initialCluster = str(v, 'initial-cluster');
  if (name !== 'default' && initialCluster === DEFAULT_INITIAL_CLUSTER) {
    initialCluster = apUrls.map((u) => `${name === '' ? 'default' : name}=${u.href}`).join(',');
  }
  let dataDir = str(v, 'data-dir');
  if (dataDir === '') {
    dataDir = `${name}.etcd`;
    warnings.push(`no data-dir provided, using default data-dir ./${dataDir}`);
  }

  // Checks etcd makes when the server starts, before it touches the data dir (embed.StartEtcd's order).
  let members: ClusterMember[] = [];
  if (str(v, 'discovery') === '' && str(v, 'discovery-srv') === '') {
    const parsed = parseUrlsMap(initialCluster);
    if ('error' in parsed) return { exitCode: 1, stderr: `error setting up initial cluster: ${parsed.error}\n` };
    members = parsed;
  }

  const mode = (str(v, 'auto-compaction-mode') || 'periodic') as 'periodic' | 'revision';
  const retention = str(v, 'auto-compaction-retention') || '0';
  let retentionMs = 0;
  let retentionRevisions = 0;
  const h = parseAtoi(retention);
  if (typeof h === 'bigint' && h >= 0n) {
    if (mode === 'revision') retentionRevisions = Number(h);
    else retentionMs = Number(h) * 3_600_000;
  } else {
    const d = parseGoDuration(retention);
    if (typeof d !== 'bigint') return { exitCode: 1, stderr: `error parsing CompactionRetention: ${d.error}\n` };
    if (mode === 'revision') retentionRevisions = Number(d);
    else retentionMs = Number(d) / 1e6;
  }
  const quota = num(v, 'quota-backend-bytes');
  if (quota > MAX_QUOTA_BYTES) warnings.push(`backend quota ${quota} exceeds maximum recommended quota ${MAX_QUOTA_BYTES}`);
  const maxRequestBytes = num(v, 'max-request-bytes');
  if (maxRequestBytes > RECOMMENDED_MAX_REQUEST_BYTES) {
    warnings.push(`MaxRequestBytes ${maxRequestBytes} exceeds maximum recommended size ${RECOMMENDED_MAX_REQUEST_BYTES}`);
  }
  const bcryptCost = num(v, 'bcrypt-cost');
  if (bcryptCost < 4 || bcryptCost > 31) warnings.push(`Use default bcrypt-cost 10 instead of the invalid value ${bcryptCost}`);
  const level = str(v, 'log-level');

  const sources = {} as Record<FlagName, ValueSource>;
  const unimplementedSet: FlagName[] = [];
  for (const spec of FLAGS) {
    const src = v.source(spec.name);
    sources[spec.name] = src;
    if (src !== 'default' && !IMPLEMENTED[spec.name]) unimplementedSet.push(spec.name);
  }

  const heartbeatIntervalMs = num(v, 'heartbeat-interval');
  const electionTimeoutMs = num(v, 'election-timeout');
  const config: Config = {
    name,
    dataDir,
    walDir: str(v, 'wal-dir'),
    snapshotCount: num(v, 'snapshot-count'),
    heartbeatIntervalMs,
    electionTimeoutMs,
    electionTicks: Math.floor(electionTimeoutMs / heartbeatIntervalMs),
    initialElectionTickAdvance: bool(v, 'initial-election-tick-advance'),
    listenPeerUrls: urls(v, 'listen-peer-urls').urls,
    listenClientUrls: urls(v, 'listen-client-urls').urls,
    maxSnapshots: num(v, 'max-snapshots'),
    maxWals: num(v, 'max-wals'),
    quotaBackendBytes: quota,
    quotaBackendBytesEffective: quota === 0 ? DEFAULT_QUOTA_BYTES : quota < 0 ? Infinity : quota,
    backendBatchIntervalMs: ms(v, 'backend-batch-interval'),
    backendBatchLimit: num(v, 'backend-batch-limit'),
    maxTxnOps: num(v, 'max-txn-ops'),
    maxRequestBytes,
    maxConcurrentStreams: num(v, 'max-concurrent-streams'),
    grpcKeepaliveMinTimeMs: ms(v, 'grpc-keepalive-min-time'),
    grpcKeepaliveIntervalMs: ms(v, 'grpc-keepalive-interval'),
    grpcKeepaliveTimeoutMs: ms(v, 'grpc-keepalive-timeout'),

    initialAdvertisePeerUrls: apUrls,
    initialCluster,
    initialClusterMembers: members,
    initialClusterState: str(v, 'initial-cluster-state') as 'new' | 'existing',
    initialClusterToken: str(v, 'initial-cluster-token'),
    advertiseClientUrls: advertiseUnset ? [] : urls(v, 'advertise-client-urls').urls,
    discovery: str(v, 'discovery'),
    discoveryFallback: str(v, 'discovery-fallback') as 'exit' | 'proxy',
    discoveryProxy: str(v, 'discovery-proxy'),
    discoverySrv: str(v, 'discovery-srv'),
    discoverySrvName: str(v, 'discovery-srv-name'),
    strictReconfigCheck: bool(v, 'strict-reconfig-check'),
    maxLearners: num(v, 'experimental-max-learners'),
    learnerAutoPromote: bool(v, 'learner-auto-promote'),
    preVote: bool(v, 'pre-vote'),
    enableV2: bool(v, 'enable-v2'),
    autoCompactionMode: mode,
    autoCompactionRetention: retention,
    autoCompactionRetentionMs: retentionMs,
    autoCompactionRetentionRevisions: retentionRevisions,

    clientTls: tls(v, false),
    peerTls: tls(v, true),
    cipherSuites: list(v, 'cipher-suites'),
    selfSignedCertValidityYears: num(v, 'self-signed-cert-validity'),
    cors: urls(v, 'cors').values,
    hostWhitelist: list(v, 'host-whitelist'),

    authToken: str(v, 'auth-token'),
    bcryptCost: bcryptCost < 4 || bcryptCost > 31 ? 10 : bcryptCost,
    authTokenTtlS: num(v, 'auth-token-ttl'),

    enablePprof: bool(v, 'enable-pprof'),
    metrics: str(v, 'metrics') === 'extensive' ? 'extensive' : 'basic',
    listenMetricsUrls: urls(v, 'listen-metrics-urls').urls,

    logger: str(v, 'logger') as 'capnslog' | 'zap',
    logOutputs: effectiveLogOutputs(v),
    logLevel: (level === 'dpanic' ? 'panic' : level) as LogLevel,
    debug: bool(v, 'debug'),
    logPackageLevels: str(v, 'log-package-levels'),

    proxy: str(v, 'proxy') as 'off' | 'readonly' | 'on',
    proxyFailureWaitMs: num(v, 'proxy-failure-wait'),
    proxyRefreshIntervalMs: num(v, 'proxy-refresh-interval'),
    proxyDialTimeoutMs: num(v, 'proxy-dial-timeout'),
    proxyWriteTimeoutMs: num(v, 'proxy-write-timeout'),
    proxyReadTimeoutMs: num(v, 'proxy-read-timeout'),

    experimentalInitialCorruptCheck: bool(v, 'experimental-initial-corrupt-check'),
    experimentalCorruptCheckTimeMs: ms(v, 'experimental-corrupt-check-time'),
    experimentalEnableV2v3: str(v, 'experimental-enable-v2v3'),
    experimentalBackendBboltFreelistType: str(v, 'experimental-backend-bbolt-freelist-type'),
    experimentalEnableLeaseCheckpoint: bool(v, 'experimental-enable-lease-checkpoint'),
    experimentalEnableLeaseCheckpointPersist: bool(v, 'experimental-enable-lease-checkpoint-persist'),
    experimentalCompactionBatchLimit: num(v, 'experimental-compaction-batch-limit'),
    experimentalWatchProgressNotifyIntervalMs: ms(v, 'experimental-watch-progress-notify-interval'),
    experimentalWarningApplyDurationMs: ms(v, 'experimental-warning-apply-duration'),

    forceNewCluster: bool(v, 'force-new-cluster'),
    unsafeNoFsync: bool(v, 'unsafe-no-fsync'),
    enableGrpcGateway: bool(v, 'enable-grpc-gateway'),

    quotaAutoDisarm: bool(v, 'quota-auto-disarm'),
    maxRangeResponseBytes: num(v, 'max-range-response-bytes'),
    walBatchBytesMax: num(v, 'wal-batch-max-bytes'),
    walBatchDelayUsMax: Number(big(v, 'wal-batch-max-delay') / 1000n),
    walWriterIdleSpinUs: Number(big(v, 'wal-writer-idle-spin') / 1000n),
    walSegmentBytes: num(v, 'wal-segment-bytes'),
    workerThreads: num(v, 'worker-threads'),
    watchPoolWatchersMin: num(v, 'watch-pool-min-watchers'),
    gatewayPoolMinBytes: num(v, 'gateway-pool-min-bytes'),
    clientWorkers: num(v, 'client-workers'),
    leaseCheckpoint: bool(v, 'lease-checkpoint') || bool(v, 'experimental-enable-lease-checkpoint'),
    leaseCheckpointIntervalMs: ms(v, 'lease-checkpoint-interval'),
    grpcEngine: str(v, 'grpc-engine') as 'node' | 'raw',
    v8WorkersSched: str(v, 'v8-workers-sched') as V8WorkersSched,
    proposalBatchCountMax: num(v, 'proposal-batch-max'),
    applyBatchBytesMax: num(v, 'apply-batch-max-bytes'),
    snapshotCatchupEntries: num(v, 'snapshot-catchup-entries'),

    configFile,
    sources,
    unimplementedSet,
  };
  return { config, warnings, notices };
}

/** Go's %q of a []string: ["a" "b"]. */
function goQuoteList(items: readonly string[]): string {
  return `[${items.map(goQuote).join(' ')}]`;
}

/**
 * The checks etcd makes before bootstrapping a fresh data dir (etcdserver ServerConfig.VerifyBootstrap for a
 * new cluster, VerifyJoinExisting for --initial-cluster-state=existing). Returns etcd's error text or null.
 * A member restarting on an existing WAL skips them, as etcd does.
 *
 *   const err = verifyBootstrap(config); if (err) { log.error(err); process.exit(1); }
 */
export function verifyBootstrap(config: Config): string | null {
  const mine = config.initialClusterMembers.find((m) => m.name === config.name);
  if (mine === undefined) return `couldn't find local name ${goQuote(config.name)} in the initial cluster configuration`;
  const all = config.initialClusterMembers.flatMap((m) => m.peerUrls.map((u) => u.href));
  const clusterText = urlsMapString(config.initialClusterMembers);
  if (new Set(all).size !== all.length) return `initial cluster ${clusterText} has duplicate url`;
  if (config.initialClusterState === 'existing') {
    if (config.discovery !== '') return 'discovery URL should not be set when joining existing initial cluster';
    return null;
  }
  const inCluster = mine.peerUrls.map((u) => u.href).sort();
  const advertised = config.initialAdvertisePeerUrls.map((u) => u.href).sort();
  let cmpErr: string | null = null;
  if (inCluster.length !== advertised.length) cmpErr = `len(${goQuoteList(advertised)}) != len(${goQuoteList(inCluster)})`;
  else {
    // etcd resolves host names before comparing, but never "localhost" or an IP (netutil.resolveURL): on
    // loopback the URLs compare as written.
    const i = advertised.findIndex((u, j) => u !== inCluster[j]);
    if (i >= 0) cmpErr = `resolved urls: ${goQuote(advertised[i]!)} != ${goQuote(inCluster[i]!)}`;
  }
  if (cmpErr !== null) {
    const missingFromAdvertised = inCluster.filter((u) => !advertised.includes(u));
    if (missingFromAdvertised.length > 0) {
      return `--initial-cluster has ${missingFromAdvertised.map((u) => `${config.name}=${u}`).join(',')} but missing from --initial-advertise-peer-urls=${advertised.join(',')} (${cmpErr})`;
    }
    const self = urlsMapString([{ name: config.name, peerUrls: config.initialAdvertisePeerUrls }]);
    const missingFromCluster = advertised.filter((u) => !inCluster.includes(u));
    if (missingFromCluster.length > 0)
      return `--initial-advertise-peer-urls has ${missingFromCluster.join(',')} but missing from --initial-cluster=${self}`;
    return `failed to resolve ${advertised.join(',')} to match --initial-cluster=${self} (${cmpErr})`;
  }
  if (all.length === 0 && config.discovery === '') return 'initial cluster unset and no discovery URL found';
  return null;
}

/**
 * Where a member listens for one of its listen URLs. `localhost` binds 127.0.0.1 (Go resolves it IPv4-first;
 * Node would pick ::1 on some hosts), unix/unixs URLs name a socket path (etcd uses host:port as the path).
 *
 *   listenTarget(config.listenClientUrls[0]!) // { host: '127.0.0.1', port: 2379 }
 */
export function listenTarget(u: GoUrl): { host: string; port: number } | { path: string } {
  if (u.scheme === 'unix' || u.scheme === 'unixs') return { path: u.host };
  const host = u.hostname === 'localhost' ? '127.0.0.1' : u.hostname;
  return { host, port: u.port === '' ? 0 : Number(u.port) };
}
