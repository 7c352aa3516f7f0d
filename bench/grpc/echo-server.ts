// A unary echo server for the gRPC bench, run as its own process: `tetcd` (our GrpcServer behind the
// client listener) or `grpcjs` (@grpc/grpc-js), the same handler either way. Prints its port, then
// serves until stdin closes or SIGTERM; each "cpu" line on stdin is answered with its CPU time so far.
import { GrpcServer } from '../../src/api/grpc/server.js';
import { ClientListener } from '../../src/api/listener.js';
import { EchoService, decodeEcho, encodeEcho, type Echo } from '../../tools/lib/echo.js';
import * as grpc from '../../tools/lib/grpcjs.js';

const kind = process.argv[2];

function echo(req: Echo): Partial<Echo> {
  return { payload: req.payload, n: req.n };
}

let stop: () => Promise<void>;
let port: number;
if (kind === 'tetcd') {
  const server = new GrpcServer();
  server.unary(EchoService.Unary, echo);
  const listener = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc: server });
  port = listener.port;
  stop = async () => {
    await server.shutdown({ graceful: false });
    await listener.destroy();
  };
} else if (kind === 'grpcjs') {
  const server = new grpc.Server();
  const service: grpc.ServiceDefinition = {
    Unary: {
      path: EchoService.Unary.path,
      requestStream: false,
      responseStream: false,
      originalName: 'Unary',
      requestSerialize: (m: Partial<Echo>) => Buffer.from(encodeEcho(m)),
      requestDeserialize: (b: Buffer) => decodeEcho(b),
      responseSerialize: (m: Partial<Echo>) => Buffer.from(encodeEcho(m)),
      responseDeserialize: (b: Buffer) => decodeEcho(b),
    },
  };
  server.addService(service, {
    Unary: (call: grpc.ServerUnaryCall<Echo, Partial<Echo>>, cb: grpc.sendUnaryData<Partial<Echo>>) => cb(null, echo(call.request)),
  });
  port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  stop = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
} else {
  throw new Error('usage: echo-server.js tetcd|grpcjs');
}
console.log(JSON.stringify({ port }));
const quit = (): void => {
  void stop().then(() => process.exit(0));
};
process.stdin.on('end', quit);
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => {
  for (const line of d.split('\n')) {
    if (line.trim() === 'cpu') {
      const u = process.cpuUsage();
      console.log(JSON.stringify({ cpuUs: u.user + u.system }));
    }
  }
});
process.on('SIGTERM', quit);
