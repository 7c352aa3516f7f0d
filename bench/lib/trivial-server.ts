// A trivial gRPC server for measuring the load generator itself: every unary call on any path gets
// the same pre-encoded PutResponse at once, on the HTTP/2 engine tetcd's gRPC server uses by default. It
// runs `--procs N` processes sharing one port (node:cluster) so the server side is as cheap and as
// parallel as Node allows. Prints {"port":N} when listening.
//
//   node dist/bench/lib/trivial-server.js --procs 2
import cluster from 'node:cluster';
import net from 'node:net';
import { H2Session, type H2SessionOptions, type H2Stream } from '../../src/api/h2/session.js';
import { encodePutResponse } from '../../src/proto/rpc.js';

const argOf = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};

/** A PutResponse as etcd sends it (header with ids, revision and term), framed for gRPC. */
function responseFrame(): Buffer {
  const body = encodePutResponse({
    header: { cluster_id: 0x1234567890abcdefn, member_id: 0xfedcba0987654321n, revision: 123456, raft_term: 2 },
  });
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  return frame;
}

/** The engine tetcd serves gRPC on by default: its own HTTP/2 framing (src/api/h2/session.ts). */
const SESSION_OPTIONS: H2SessionOptions = {
  maxConcurrentStreams: 1000,
  streamWindowBytes: 1 << 20,
  connectionWindowBytes: 16 << 20,
  sessionMemoryBytesMax: 128 << 20,
  headerListBytesMax: 65535,
};

function serve(port: number): void {
  const frame = responseFrame();
  // Frozen: the engine encodes a frozen header object once and reuses the block.
  const headers = Object.freeze({ ':status': 200, 'content-type': 'application/grpc' });
  const trailers = Object.freeze({ 'grpc-status': '0' });
  const respondOptions = Object.freeze({ waitForTrailers: true });
  function onWantTrailers(this: H2Stream): void {
    this.sendTrailers(trailers);
  }
  function onEnd(this: H2Stream): void {
    if (this.closed) return;
    this.respond(headers, respondOptions);
    this.end(frame);
  }
  function onStream(stream: H2Stream): void {
    stream.on('wantTrailers', onWantTrailers);
    stream.on('end', onEnd);
  }
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {});
    const session = new H2Session(socket, SESSION_OPTIONS, onStream);
    session.start();
  });
  server.listen(port, '127.0.0.1', () => {
    if (process.send !== undefined && !cluster.isPrimary) process.send({ listening: true });
  });
}

if (cluster.isPrimary) {
  const procs = Math.max(1, Math.min(16, Number(argOf('procs', '2'))));
  const port = Number(argOf('port', '0'));
  if (!Number.isInteger(port) || port <= 0)
    throw new Error('trivial-server: --port <free port> is required (workers must share a fixed port)');
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
