// A trivial gRPC server for measuring the load generator itself: every unary call on any path gets
// the same pre-encoded PutResponse at once. It runs `--procs N` processes sharing one port (node:cluster)
// so the server side is as cheap and as parallel as Node allows. Prints {"port":N} when listening.
//
//   node dist/bench/lib/trivial-server.js --procs 2
import cluster from 'node:cluster';
import http2, { type ServerHttp2Stream } from 'node:http2';
import { encodePutResponse } from '../../src/proto/rpc.js';

const argOf = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};

/** A PutResponse as etcd sends it (header with ids, revision and term), framed for gRPC. */
function responseFrame(): Buffer {
  const body = encodePutResponse({ header: { cluster_id: 0x1234567890abcdefn, member_id: 0xfedcba0987654321n, revision: 123456, raft_term: 2 } });
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  return frame;
}

function serve(port: number): void {
  const frame = responseFrame();
  const headers = { ':status': 200, 'content-type': 'application/grpc' };
  const trailers = { 'grpc-status': '0' };
  function onWantTrailers(this: ServerHttp2Stream): void {
    this.sendTrailers(trailers);
  }
  function onEnd(this: ServerHttp2Stream): void {
    if (this.destroyed) return;
    this.respond(headers, { waitForTrailers: true });
    this.end(frame);
  }
  const server = http2.createServer({ settings: { maxConcurrentStreams: 1000, initialWindowSize: 1 << 20 } });
  server.on('stream', (stream: ServerHttp2Stream) => {
    stream.on('wantTrailers', onWantTrailers);
    stream.on('end', onEnd);
    stream.on('error', () => {});
    stream.resume();
  });
  server.on('sessionError', () => {});
  server.listen(port, '127.0.0.1', () => {
    if (process.send !== undefined && !cluster.isPrimary) process.send({ listening: true });
  });
}

if (cluster.isPrimary) {
  const procs = Math.max(1, Math.min(16, Number(argOf('procs', '2'))));
  const port = Number(argOf('port', '0'));
  if (!Number.isInteger(port) || port <= 0) throw new Error('trivial-server: --port <free port> is required (workers must share a fixed port)');
  let listening = 0;
  for (let i = 0; i < procs; i++) {
    const w = cluster.fork({ TRIVIAL_SERVER_PORT: String(port) });
    w.on('message', (m: { listening?: boolean }) => {
      if (m.listening === true && ++listening === procs) console.log(JSON.stringify({ port }));
    });
  }
  const quit = (): void => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
} else {
  serve(Number(process.env.TRIVIAL_SERVER_PORT));
  process.on('SIGTERM', () => process.exit(0));
  // If the primary dies without stopping us, do not linger.
  process.on('disconnect', () => process.exit(0));
}
