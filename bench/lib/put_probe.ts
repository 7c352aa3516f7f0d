// Puts that measure a server while something else runs on it (a snapshot, a catch-up): one put, closed loops of
// 256-byte puts recording each latency, and their p99.
import { GrpcConn } from './grpc-client.js';
import { encodePutRequest } from '../../src/proto/rpc.js';

/** One put; throws with the gRPC status on failure. */
export async function put(c: GrpcConn, key: string, value: Uint8Array): Promise<void> {
  const r = await c.unary('/etcdserverpb.KV/Put', encodePutRequest({ key: Buffer.from(key), value }), 30_000);
  if (r.grpcStatus !== 0) throw new Error(`put ${key}: ${r.grpcStatus} ${r.grpcMessage}`);
}

/** Closed-loop puts from `clients` connections until `stop` settles; each put's latency in ms. */
export async function putLoops(ep: string, clients: number, stop: Promise<unknown>): Promise<number[]> {
  const conns = await Promise.all(Array.from({ length: clients }, () => GrpcConn.connect(ep, 5000)));
  const lat: number[] = [];
  let running = true;
  void stop.finally(() => {
    running = false;
  });
  const value = Buffer.alloc(256, 0x61);
  await Promise.all(
    conns.map(async (c, i) => {
      for (let k = 0; running; k++) {
        const t0 = performance.now();
        await put(c, `probe/${i}/${k % 100}`, value);
        lat.push(performance.now() - t0);
      }
    }),
  );
  for (const c of conns) c.close();
  return lat;
}

/** The 99th percentile of `v`. */
export function p99(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]!;
}
