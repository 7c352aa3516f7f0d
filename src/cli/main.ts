// `tetcd`: parses etcd's flags, environment and config file, starts the member and serves clients on
// every --listen-client-urls until SIGINT/SIGTERM, then shuts down gracefully.
import { parseConfig, verifyBootstrap, type Config } from '../config/config.js';
import { newLogger, type Logger } from '../log.js';
import { EtcdServer } from '../server/server.js';
import type { ServerConfig } from '../server/config.js';
import { Wal } from '../wal/index.js';
import { GrpcServer } from '../api/grpc/server.js';
import { ClientListener } from '../api/listener.js';
import { registerServices } from '../api/services.js';
import { httpHandler, memberHttpBackend } from '../api/http.js';
import { ClientWorkers } from '../client_procs/host.js';
import path from 'node:path';
import { applyV8WorkersSched } from '../v8_workers.js';

/** etcd's gRPC receive limit: the request limit plus room for the envelope. */
const GRPC_OVERHEAD_BYTES = 512 * 1024;

function serverConfig(c: Config, log: Logger): ServerConfig {
  return {
    name: c.name,
    dataDir: c.dataDir,
    walDir: c.walDir || undefined,
    initialCluster: c.initialClusterMembers.map((m) => ({ name: m.name, peerURLs: m.peerUrls.map((u) => u.href) })),
    initialClusterToken: c.initialClusterToken,
    initialClusterState: c.initialClusterState,
    listenPeerUrls: c.listenPeerUrls.map((u) => u.href),
    advertiseClientUrls: c.advertiseClientUrls.map((u) => u.href),
    heartbeatMs: c.heartbeatIntervalMs,
    electionMs: c.electionTimeoutMs,
    snapshotCount: c.snapshotCount,
    snapshotCatchupEntries: c.snapshotCatchupEntries,
    watchProgressNotifyIntervalMs: c.experimentalWatchProgressNotifyIntervalMs,
    // etcd's defaults when the flags are 0/unset: 100 ms and 10000 operations.
    backendBatchIntervalMs: c.backendBatchIntervalMs > 0 ? c.backendBatchIntervalMs : 100,
    backendBatchLimit: c.backendBatchLimit > 0 ? c.backendBatchLimit : 10_000,
    maxRequestBytes: c.maxRequestBytes,
    maxTxnOps: c.maxTxnOps,
    maxRangeResponseBytes: c.maxRangeResponseBytes,
    quotaBackendBytes: c.quotaBackendBytesEffective,
    preVote: c.preVote,
    autoCompactionMode: c.autoCompactionMode,
    autoCompactionRetentionMs: c.autoCompactionRetentionMs,
    autoCompactionRetentionRevisions: c.autoCompactionRetentionRevisions,
    walSegmentBytes: c.walSegmentBytes,
    walBatchBytesMax: c.walBatchBytesMax,
    walBatchDelayUsMax: c.walBatchDelayUsMax,
    walWriterIdleSpinUs: c.walWriterIdleSpinUs,
    proposalBatchCountMax: c.proposalBatchCountMax,
    applyBatchBytesMax: c.applyBatchBytesMax,
    workerThreads: c.workerThreads,
    watchPoolWatchersMin: c.watchPoolWatchersMin,
    unsafeNoFsync: c.unsafeNoFsync,
    leaseCheckpoint: c.leaseCheckpoint,
    leaseCheckpointIntervalMs: c.leaseCheckpointIntervalMs,
    authToken: c.authToken,
    authTokenTtlSec: c.authTokenTtlS,
    bcryptCost: c.bcryptCost,
    clientCertAuth: c.clientTls.clientCertAuth,
    logger: log,
  };
}

async function main(): Promise<number> {
  const parsed = parseConfig(process.argv.slice(2), process.env);
  if ('exitCode' in parsed) {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    return parsed.exitCode;
  }
  const c = parsed.config;
  const log = newLogger(c.logLevel);
  for (const w of parsed.warnings) log.warn(w);
  for (const n of parsed.notices) log.info(n);
  for (const f of c.unimplementedSet) log.warn('flag is parsed but its feature is not implemented yet; it has no effect', { flag: f });
  applyV8WorkersSched(c.v8WorkersSched, log);

  const walDir = c.walDir || path.join(c.dataDir, 'member', 'wal');
  if (!Wal.exists(walDir)) {
    const err = verifyBootstrap(c);
    if (err !== null) {
      log.error(err);
      return 1;
    }
  }

  const server = await EtcdServer.start(serverConfig(c, log));
  const grpcOptions = {
    maxRecvMessageBytes: c.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    maxConcurrentStreams: c.maxConcurrentStreams,
    keepaliveIntervalMs: c.grpcKeepaliveIntervalMs,
    keepaliveTimeoutMs: c.grpcKeepaliveTimeoutMs,
    keepaliveMinTimeMs: c.grpcKeepaliveMinTimeMs,
    engine: c.grpcEngine,
  };
  const http = memberHttpBackend(server);
  // Either the member serves its clients itself, or client processes do and forward to it.
  let grpc: GrpcServer | undefined;
  let workers: ClientWorkers | undefined;
  const listeners: ClientListener[] = [];
  if (c.clientWorkers > 0) {
    workers = await ClientWorkers.start({
      count: c.clientWorkers,
      server,
      http,
      log,
      config: {
        listenClientUrls: c.listenClientUrls.map((u) => u.href),
        memberIdHex: server.memberId.toString(16),
        limits: { maxTxnOps: c.maxTxnOps, maxRequestBytes: c.maxRequestBytes },
        grpc: grpcOptions,
        logLevel: c.logLevel,
        v8WorkersSched: c.v8WorkersSched,
        drainTimeoutMs: 2000,
      },
    });
    for (const u of c.listenClientUrls) log.info('ready to serve client requests', { address: u.host, 'client-workers': c.clientWorkers });
  } else {
    grpc = new GrpcServer(grpcOptions);
    registerServices(grpc, server);
    const http1 = httpHandler(http);
    for (const u of c.listenClientUrls) {
      listeners.push(await ClientListener.listen({ url: u.href, grpc, http1 }));
      log.info('ready to serve client requests', { address: u.host });
    }
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('received signal; shutting down', { signal });
      void (async () => {
        if (workers !== undefined) await workers.stop(2000);
        if (grpc !== undefined) await grpc.shutdown({ graceful: true, timeoutMs: 2000 });
        await Promise.all(listeners.map((l) => l.close(1000)));
        await server.stop();
        resolve(0);
      })();
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    // A start-up failure is the user's to read: its message, and the stack only when asked for.
    const detail = err instanceof Error ? (process.env.TETCD_DEBUG ? (err.stack ?? err.message) : err.message) : String(err);
    process.stderr.write(`tetcd: ${detail}\n`);
    process.exit(1);
  },
);
