// Entry of a client process (--client-workers N): a node:cluster worker the member forked. It accepts
// client connections on the member's client URLs (the port is shared through the primary), terminates
// gRPC and HTTP/1.1, validates requests and forwards them to the member over the channel on fd 4.
// It lives exactly as long as the member: it exits when the channel or the IPC link to the member closes.
import cluster from 'node:cluster';
import net from 'node:net';
import { GrpcServer } from '../api/grpc/server.js';
import { ClientListener } from '../api/listener.js';
import { addGrpcMetrics, httpHandler } from '../api/http.js';
import { Gateway, gatewayUpgrade, withGateway } from '../api/gateway/index.js';
import { Metrics } from '../metrics.js';
import { newLogger } from '../log.js';
import { applyV8WorkersSched } from '../v8_workers.js';
import { Forwarder } from './forwarder.js';
import { CHANNEL_FD, CLIENT_PROCESS_ENV, parseClientProcessConfig, type ClientProcessMessage, type MemberMessage } from './protocol.js';
import type { TLSSocket } from 'node:tls';
import { TlsMaterial } from '../transport/tls.js';

function send(m: ClientProcessMessage): void {
  if (process.send !== undefined && process.connected) process.send(m);
}

async function main(): Promise<void> {
  if (!cluster.isWorker) throw new Error('tetcd: the client process entry runs only as a worker forked by a member');
  const cfg = parseClientProcessConfig(process.env[CLIENT_PROCESS_ENV]);
  const log = newLogger(cfg.logLevel, { outputs: cfg.logOutputs }).with({ 'client-process': cfg.index });
  applyV8WorkersSched(cfg.v8WorkersSched, log);
  const socket = new net.Socket({ fd: CHANNEL_FD, readable: true, writable: true });
  socket.setNoDelay?.(true);
  const fwd = new Forwarder(socket, cfg.limits, { memberId: BigInt('0x' + cfg.memberIdHex) });
  const grpc = new GrpcServer(cfg.grpc);
  if (cfg.metrics === 'extensive') grpc.keepHandlingTimes();
  fwd.register(grpc);
  // This process's gRPC counters: the member sums every client process's into its /metrics.
  const metrics = new Metrics();
  addGrpcMetrics(metrics, () => grpc.stats, cfg.metrics);
  const http = httpHandler(fwd.httpBackend());
  const gateway = cfg.grpcGateway ? new Gateway(grpc) : undefined;
  const http1 = gateway !== undefined ? withGateway(gateway, http) : http;
  const upgrade = gateway !== undefined ? gatewayUpgrade(gateway, http) : undefined;

  let stopping = false;
  const listeners: ClientListener[] = [];
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await grpc.shutdown({ graceful: true, timeoutMs: cfg.drainTimeoutMs });
      await Promise.all(listeners.map((l) => l.close(1000)));
      process.exit(code);
    })();
  };
  // Without the member there is nothing to serve: go at once (calls in flight already failed).
  fwd.onClose = () => {
    if (stopping) process.exit(0);
    log.warn('channel to the member closed; client process exits');
    process.exit(1);
  };
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: MemberMessage) => {
    if (m.type === 'drain') stop(0);
    else if (m.type === 'metrics') {
      void metrics.json().then((json) => send({ type: 'metrics', id: m.id, metrics: json }));
    }
  });
  // A terminal's Ctrl-C reaches the whole process group: the member drains us itself, so only go
  // on our own if it does not (it may be gone).
  process.on('SIGINT', () => setTimeout(() => stop(0), cfg.drainTimeoutMs).unref());
  process.on('SIGTERM', () => stop(0));

  try {
    const m = cfg.clientTls === undefined ? undefined : TlsMaterial.load(cfg.clientTls, log);
    for (const url of cfg.listenClientUrls) {
      const secure = url.startsWith('https:') && m !== undefined;
      const tls = secure ? { tls: m.serverOptions(), verifyClient: (s: TLSSocket) => m.checkClient(s) } : {};
      listeners.push(await ClientListener.listen({ url, grpc, http1, upgrade, exclusive: false, ...tls }));
    }
    m?.watch(() => {
      for (const l of listeners) l.setSecureContext(m.serverOptions());
    });
  } catch (err) {
    send({ type: 'failed', error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  }
  send({ type: 'listening' });
}

main().catch((err: unknown) => {
  process.stderr.write(`tetcd client process: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
