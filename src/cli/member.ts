// `tetcd` (the member): parses etcd's flags, environment and config file, starts the member and serves clients
// on every --listen-client-urls until SIGINT/SIGTERM, then shuts down gracefully. Loaded by main.ts.
import { parseConfig, verifyBootstrap, type Config } from '../config/config.js';
import { newLogger, type Logger } from '../log.js';
import { EtcdServer } from '../server/server.js';
import type { ServerConfig } from '../server/config.js';
import { Wal } from '../wal/index.js';
import { GrpcServer } from '../api/grpc/server.js';
import { ClientListener } from '../api/listener.js';
import { registerServices } from '../api/services.js';
import { addGrpcMetrics, httpHandler, memberHttpBackend, type MemberHttp } from '../api/http.js';
import { Gateway, gatewayUpgrade, withGateway } from '../api/gateway/index.js';
import { startDecodePool, type BodyDecoder } from '../api/gateway/decode_pool.js';
import { ETCD_SERVER_VERSION } from '../config/version.js';
import { createServer, type Server as HttpServer } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { ClientWorkers } from '../client_procs/host.js';
import path from 'node:path';
import { applyV8WorkersSched } from '../v8_workers.js';
import { clientTls, peerTls, transportTls } from './tls_setup.js';

/** etcd's gRPC receive limit: the request limit plus room for the envelope. */
const GRPC_OVERHEAD_BYTES = 512 * 1024;

function serverConfig(c: Config, log: Logger, peer: ServerConfig['peerTls']): ServerConfig {
  return {
    peerTls: peer,
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
    quotaAutoDisarm: c.quotaAutoDisarm,
    preVote: c.preVote,
    strictReconfigCheck: c.strictReconfigCheck,
    maxLearners: c.maxLearners,
    learnerAutoPromote: c.learnerAutoPromote,
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
    initialCorruptCheck: c.experimentalInitialCorruptCheck,
    corruptCheckTimeMs: c.experimentalCorruptCheckTimeMs,
    leaseCheckpoint: c.leaseCheckpoint,
    leaseCheckpointIntervalMs: c.leaseCheckpointIntervalMs,
    authToken: c.authToken,
    authTokenTtlSec: c.authTokenTtlS,
    bcryptCost: c.bcryptCost,
    clientCertAuth: c.clientTls.clientCertAuth,
    logger: log,
  };
}

/** Runs a member with `args` (etcd's flags) until it stops; resolves with the exit code. */
export async function runMember(args: readonly string[]): Promise<number> {
  const parsed = parseConfig([...args], process.env);
  if ('exitCode' in parsed) {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    return parsed.exitCode;
  }
  const c = parsed.config;
  const log = newLogger(c.logLevel, { outputs: c.logOutputs });
  log.info('starting an etcd server', {
    'etcd-version': ETCD_SERVER_VERSION,
    'node-version': process.version,
    name: c.name,
    'data-dir': c.dataDir,
    'wal-dir': c.walDir,
    'listen-client-urls': c.listenClientUrls.map((u) => u.href),
    'advertise-client-urls': c.advertiseClientUrls.map((u) => u.href),
    'listen-peer-urls': c.listenPeerUrls.map((u) => u.href),
    'listen-metrics-urls': c.listenMetricsUrls.map((u) => u.href),
    'initial-cluster-state': c.initialClusterState,
    'client-workers': c.clientWorkers,
  });
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

  const peerSide = await peerTls(c, log);
  const clientSide = await clientTls(c, log);
  const server = await EtcdServer.start(serverConfig(c, log, peerSide.material && transportTls(peerSide.material)));
  const peerMaterial = peerSide.material;
  peerMaterial?.watch(() => server.setPeerTls(transportTls(peerMaterial)));
  const grpcOptions = {
    maxRecvMessageBytes: c.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    maxConcurrentStreams: c.maxConcurrentStreams,
    keepaliveIntervalMs: c.grpcKeepaliveIntervalMs,
    keepaliveTimeoutMs: c.grpcKeepaliveTimeoutMs,
    keepaliveMinTimeMs: c.grpcKeepaliveMinTimeMs,
    engine: c.grpcEngine,
  };
  const http = memberHttpBackend(server);
  for (const u of c.listenMetricsUrls) {
    // etcd serves https metrics URLs with the client TLS material.
    if (u.scheme === 'https' && clientSide.material === undefined) {
      throw new Error(`TLS key/cert (--cert-file, --key-file) must be provided for metrics url ${u.href} with HTTPS scheme`);
    }
  }
  // The metrics URLs listen before the client URLs: once a client sees the member healthy, they answer too
  // (with client processes, the client URLs can answer /health before the member gets further).
  const metricsServers: HttpServer[] = [];
  const tlsMetricsServers: TlsServer[] = [];
  for (const u of c.listenMetricsUrls) {
    const m = clientSide.material;
    const srv = createServer(httpHandler(http, 'metrics'));
    let listening: HttpServer | TlsServer = srv;
    if (u.scheme === 'https' && m !== undefined) {
      // etcd makes these listeners with transport.NewListener on the client TLS material: the allowed
      // hostname and the SAN check of the client certificate apply, as well as the CA and CRL.
      const s = createTlsServer({ ...m.serverOptions(), ALPNProtocols: ['http/1.1'] }, (socket: TLSSocket) => {
        socket.on('error', () => {});
        void m.checkListenerClient(socket).then((why) => (why === null ? srv.emit('connection', socket) : socket.destroy()));
      });
      s.on('tlsClientError', () => {});
      tlsMetricsServers.push(s);
      listening = s;
    }
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(Number(u.port), u.hostname, () => resolve());
    });
    metricsServers.push(srv);
    log.info('serving metrics', { address: u.href });
  }
  // Either the member serves its clients itself, or client processes do and forward to it.
  let grpc: GrpcServer | undefined;
  let workers: ClientWorkers | undefined;
  let decoder: BodyDecoder | undefined;
  const listeners: ClientListener[] = [];
  if (c.clientWorkers > 0) {
    workers = await ClientWorkers.start({
      count: c.clientWorkers,
      server,
      http,
      log,
      config: {
        listenClientUrls: c.listenClientUrls.map((u) => u.href),
        clientTls: clientSide.files,
        memberIdHex: server.memberId.toString(16),
        limits: { maxTxnOps: c.maxTxnOps, maxRequestBytes: c.maxRequestBytes },
        grpc: grpcOptions,
        logLevel: c.logLevel,
        logOutputs: c.logOutputs,
        metrics: c.metrics,
        v8WorkersSched: c.v8WorkersSched,
        drainTimeoutMs: 2000,
        grpcGateway: c.enableGrpcGateway,
      },
    });
    const w = workers;
    http.clientMetrics = () => w.metricsJson();
    addClientProcessMetrics(http, w);
    for (const u of c.listenClientUrls) servingClients(log, u.host, u.scheme === 'https' && clientSide.material !== undefined);
  } else {
    const g = new GrpcServer(grpcOptions);
    grpc = g;
    if (c.metrics === 'extensive') g.keepHandlingTimes();
    registerServices(g, server);
    addGrpcMetrics(http.metrics, () => g.stats, c.metrics);
    // Large gateway bodies are decoded on the worker threads when there are any (decode_pool.ts).
    decoder = c.enableGrpcGateway && c.workerThreads > 0 ? startDecodePool(c.workerThreads, c.gatewayPoolMinBytes) : undefined;
    const gateway = c.enableGrpcGateway ? new Gateway(g, { decoder }) : undefined;
    const http1 = gateway !== undefined ? withGateway(gateway, httpHandler(http)) : httpHandler(http);
    const upgrade = gateway !== undefined ? gatewayUpgrade(gateway, httpHandler(http)) : undefined;
    const m = clientSide.material;
    for (const u of c.listenClientUrls) {
      const secure = u.scheme === 'https' && m !== undefined;
      listeners.push(
        await ClientListener.listen({
          url: u.href,
          grpc: g,
          http1,
          upgrade,
          ...(secure ? { tls: m.serverOptions(), verifyClient: (s) => m.checkClient(s) } : {}),
        }),
      );
      servingClients(log, u.host, secure);
    }
  }
  const clientMaterial = clientSide.material;
  clientMaterial?.watch(() => {
    for (const l of listeners) l.setSecureContext(clientMaterial.serverOptions());
    for (const s of tlsMetricsServers) s.setSecureContext(clientMaterial.serverOptions());
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('received signal; shutting down', { signal });
      void (async () => {
        if (workers !== undefined) await workers.stop(2000);
        log.info('closing etcd server', {
          name: c.name,
          'data-dir': c.dataDir,
          'advertise-peer-urls': c.initialAdvertisePeerUrls.map((u) => u.href),
          'advertise-client-urls': c.advertiseClientUrls.map((u) => u.href),
        });
        if (grpc !== undefined) await grpc.shutdown({ graceful: true, timeoutMs: 2000 });
        await Promise.all(listeners.map((l) => l.close(1000)));
        for (const srv of metricsServers) {
          srv.closeAllConnections();
          srv.close();
        }
        for (const srv of tlsMetricsServers) srv.close();
        await decoder?.close();
        await server.stop();
        clientSide.material?.close();
        peerMaterial?.close();
        log.info('closed etcd server', { name: c.name, 'data-dir': c.dataDir });
        resolve(0);
      })();
    };
    // A member removed from the cluster stops, as etcd's does (exit status 0).
    server.whenRemoved(() => stop('removed from the cluster'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}

/** etcd's messages once a client URL is served. */
function servingClients(log: Logger, address: string, secure: boolean): void {
  log.info('ready to serve client requests');
  if (secure) log.info('serving client traffic securely', { address });
  else log.info('serving client traffic insecurely; this is strongly discouraged!', { address });
}

/** tetcd's own metrics of the client processes and their channels to the member. */
function addClientProcessMetrics(http: MemberHttp, workers: ClientWorkers): void {
  const m = http.metrics;
  const per = (f: (ch: ClientWorkers['channels'][number]) => number) => () =>
    workers.channels.map((ch, i) => ({ labels: { client_process: String(i) }, value: f(ch) }));
  m.gauge('tetcd_client_processes', 'Client processes alive (--client-workers).', () => workers.alive);
  m.counter('tetcd_client_process_restarts_total', 'Client processes started to replace ones that exited.', () => workers.restarts);
  m.counter(
    'tetcd_client_process_channel_calls_total',
    'Calls the member answered on a client process channel.',
    per((ch) => ch.callsServed),
  );
  m.gauge(
    'tetcd_client_process_channel_calls_in_flight',
    'Calls being served on a client process channel.',
    per((ch) => ch.callsInFlight),
  );
  m.gauge(
    'tetcd_client_process_channel_streams',
    'Streams open on a client process channel.',
    per((ch) => ch.streamsOpen),
  );
  m.gauge(
    'tetcd_client_process_channel_stream_queued_bytes',
    'Stream response bytes the member holds for a client process (waiting for its credit).',
    per((ch) => ch.streamQueuedBytes),
  );
}
