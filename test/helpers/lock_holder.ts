// A lock holder in a process of its own, for tests that SIGKILL it: grants a lease (TTL from argv), keeps
// it alive, takes the named lock through the Lock service and prints `locked <key>`; then holds it until
// it is killed.
//
//   node dist/test/helpers/lock_holder.js 127.0.0.1:2379 mutex 2
import * as grpc from '../../tools/lib/grpcjs.js';
import { decodeLockResponse, encodeLockRequest } from '../../src/proto/v3lock.js';
import { decodeLeaseGrantResponse, encodeLeaseGrantRequest, encodeLeaseKeepAliveRequest } from '../../src/proto/rpc.js';

const [endpoint, name, ttl] = process.argv.slice(2);
const client = new grpc.Client(endpoint, grpc.credentials.createInsecure());

function unary(path: string, body: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (x: Uint8Array) => Buffer.from(x),
      (x: Buffer) => x,
      body,
      (err: grpc.ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(res!)),
    );
  });
}

async function main(): Promise<void> {
  const lease = decodeLeaseGrantResponse(await unary('/etcdserverpb.Lease/LeaseGrant', encodeLeaseGrantRequest({ TTL: Number(ttl) }))).ID;
  const ka = client.makeBidiStreamRequest(
    '/etcdserverpb.Lease/LeaseKeepAlive',
    (x: Uint8Array) => Buffer.from(x),
    (x: Buffer) => x,
  );
  ka.on('data', () => {});
  ka.on('error', () => {});
  setInterval(() => ka.write(encodeLeaseKeepAliveRequest({ ID: lease })), 400);
  const res = decodeLockResponse(await unary('/v3lockpb.Lock/Lock', encodeLockRequest({ name: Buffer.from(name), lease })));
  process.stdout.write(`locked ${Buffer.from(res.key).toString()}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
