// The bench's workloads — what each one sends, to how many members, with how many clients — and the
// data they need: pre-encoded Put/Range requests (8-byte keys, 256-byte values) and bulk key loading.
import { KV, encodePutRequest, encodeRangeRequest, encodeTxnRequest, decodeTxnResponse, type RequestOpInit } from '../../src/proto/rpc.js';
import { GrpcConn } from './grpc-client.js';

export const KEY_BYTES = 8;
export const VALUE_BYTES = 256;
/** Put keys are drawn from this many distinct keys. */
export const PUT_KEY_SPACE = 100_000;
/** Distinct pre-encoded put requests the generator rotates through (each ~270 B, copied to every worker). */
export const PUT_BODIES = 16_384;
/** Range workloads read these many preloaded keys, in rotation. */
export const RANGE_KEYS = 1_000;
/** etcd's default --max-txn-ops: puts per Txn when loading keys. */
export const TXN_OPS_MAX = 128;

/** A measured workload. `load` runs the generator; `memory` fills a member and reads its RSS; `ceiling` measures the generator itself. */
export interface Workload {
  name: string;
  title: string;
  kind: 'load' | 'memory' | 'ceiling';
  members: number;
  method: 'put' | 'range';
  serializable: boolean;
  connections: number;
  concurrency: number;
  /** In the default set. */
  inDefault: boolean;
}

/** Every workload the runner knows, in the order they run. */
export const WORKLOADS: readonly Workload[] = [
  {
    name: 'ceiling',
    title: 'load generator vs a trivial gRPC server (generator ceiling)',
    kind: 'ceiling',
    members: 0,
    method: 'put',
    serializable: false,
    connections: 100,
    concurrency: 1000,
    inDefault: true,
  },
  {
    name: 'put-1',
    title: 'put, 1 client, 1 connection, 1 member',
    kind: 'load',
    members: 1,
    method: 'put',
    serializable: false,
    connections: 1,
    concurrency: 1,
    inDefault: true,
  },
  {
    name: 'range-lin-1',
    title: 'range (linearizable), 1 client, 1 connection, 1 member',
    kind: 'load',
    members: 1,
    method: 'range',
    serializable: false,
    connections: 1,
    concurrency: 1,
    inDefault: true,
  },
  {
    name: 'range-ser-1',
    title: 'range (serializable), 1 client, 1 connection, 1 member',
    kind: 'load',
    members: 1,
    method: 'range',
    serializable: true,
    connections: 1,
    concurrency: 1,
    inDefault: true,
  },
  {
    name: 'put-1000',
    title: 'put, 1000 clients, 100 connections, 1 member',
    kind: 'load',
    members: 1,
    method: 'put',
    serializable: false,
    connections: 100,
    concurrency: 1000,
    inDefault: true,
  },
  {
    name: 'range-lin-1000',
    title: 'range (linearizable), 1000 clients, 100 connections, 1 member',
    kind: 'load',
    members: 1,
    method: 'range',
    serializable: false,
    connections: 100,
    concurrency: 1000,
    inDefault: true,
  },
  {
    name: 'range-ser-1000',
    title: 'range (serializable), 1000 clients, 100 connections, 1 member',
    kind: 'load',
    members: 1,
    method: 'range',
    serializable: true,
    connections: 100,
    concurrency: 1000,
    inDefault: true,
  },
  {
    name: 'c3-put-1000',
    title: 'put, 1000 clients, 100 connections, 3 members',
    kind: 'load',
    members: 3,
    method: 'put',
    serializable: false,
    connections: 100,
    concurrency: 1000,
    inDefault: true,
  },
  {
    name: 'c3-range-lin-1000',
    title: 'range (linearizable), 1000 clients, 100 connections, 3 members',
    kind: 'load',
    members: 3,
    method: 'range',
    serializable: false,
    connections: 100,
    concurrency: 1000,
    inDefault: true,
  },
  {
    name: 'c3-range-ser-1000',
    title: 'range (serializable), 1000 clients, 100 connections, 3 members',
    kind: 'load',
    members: 3,
    method: 'range',
    serializable: true,
    connections: 100,
    concurrency: 1000,
    inDefault: true,
  },
  // About 20 s per server for 1M keys here, well under the 3 minutes that would keep it out of the default set.
  {
    name: 'memory',
    title: 'RSS of 1 member holding N keys × 256 B values',
    kind: 'memory',
    members: 1,
    method: 'put',
    serializable: false,
    connections: 4,
    concurrency: 16,
    inDefault: true,
  },
];

/** A small deterministic PRNG (xorshift32) so both servers get byte-identical requests. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** Uniform integer in [0, n). */
  intn(n: number): number {
    let s = this.s;
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    this.s = s;
    return s % n;
  }
}

/** The i-th key of a key family: one prefix byte and 7 decimal digits, 8 bytes in all. */
export function keyOf(prefix: string, i: number): Buffer {
  if (prefix.length !== 1 || i < 0 || i >= 10_000_000 || !Number.isInteger(i)) throw new RangeError('keyOf: 1-char prefix, 0 <= i < 1e7');
  const k = Buffer.from(prefix + String(i).padStart(KEY_BYTES - 1, '0'), 'latin1');
  if (k.length !== KEY_BYTES) throw new Error('keyOf: key is not 8 bytes');
  return k;
}

/** A value of `bytes` bytes derived from the seed (not all-zero, so nothing below can shortcut it). */
export function valueFor(bytes: number, seed: number): Buffer {
  const rng = new Rng(seed);
  const v = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) v[i] = 0x21 + rng.intn(94);
  return v;
}

/** `count` encoded PutRequests with keys drawn uniformly from `keySpace` keys ('k' family), one shared value. */
export function putBodies(count: number, keySpace: number, seed: number): Uint8Array[] {
  const rng = new Rng(seed);
  const value = valueFor(VALUE_BYTES, seed ^ 0x5bd1e995);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) out.push(encodePutRequest({ key: keyOf('k', rng.intn(keySpace)), value }));
  return out;
}

/** One encoded single-key RangeRequest per key 0..keys-1 of the 'k' family. */
export function rangeBodies(keys: number, serializable: boolean): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < keys; i++) out.push(encodeRangeRequest({ key: keyOf('k', i), serializable }));
  return out;
}

/** The generator's path and bodies for a load workload. */
export function requestsFor(w: Workload, seed: number): { path: string; bodies: Uint8Array[] } {
  if (w.method === 'put') return { path: KV.methods.Put.path, bodies: putBodies(PUT_BODIES, PUT_KEY_SPACE, seed) };
  return { path: KV.methods.Range.path, bodies: rangeBodies(RANGE_KEYS, w.serializable) };
}

/** How to bulk-load keys. */
export interface LoadKeysOptions {
  /** Key family prefix (one byte). */
  prefix: string;
  count: number;
  valueBytes: number;
  connections: number;
  /** Txns outstanding per connection. */
  inFlightPerConnection: number;
  /** Puts per Txn (at most etcd's default max of 128). */
  txnOps: number;
  callTimeoutMs: number;
  /** Called after each finished Txn with the number of keys written so far. */
  onProgress?: (written: number) => void;
  /** TLS verified with this CA's PEM; cleartext without. */
  tlsCa?: string;
}

/**
 * Writes keys prefix+0 .. prefix+(count-1), each with a valueBytes value, as Txns of txnOps puts spread
 * over several connections to the given endpoints. Rejects on the first failed call.
 */
export async function loadKeys(endpoints: readonly string[], o: LoadKeysOptions): Promise<void> {
  if (o.txnOps < 1 || o.txnOps > TXN_OPS_MAX) throw new RangeError(`loadKeys: 1..${TXN_OPS_MAX} ops per txn`);
  const conns: GrpcConn[] = [];
  try {
    for (let i = 0; i < o.connections; i++) conns.push(await GrpcConn.connect(endpoints[i % endpoints.length], 5_000, o.tlsCa));
    const value = valueFor(o.valueBytes, 12345);
    let next = 0;
    let written = 0;
    const lane = async (conn: GrpcConn): Promise<void> => {
      for (;;) {
        const from = next;
        if (from >= o.count) return;
        const to = Math.min(o.count, from + o.txnOps);
        next = to;
        const success: RequestOpInit[] = [];
        for (let i = from; i < to; i++) success.push({ request_put: { key: keyOf(o.prefix, i), value } });
        const r = await conn.unary(KV.methods.Txn.path, encodeTxnRequest({ success }), o.callTimeoutMs);
        if (r.grpcStatus !== 0) throw new Error(`loading keys ${from}..${to - 1}: grpc-status ${r.grpcStatus} ${r.grpcMessage}`);
        if (!decodeTxnResponse(r.body).succeeded) throw new Error(`loading keys ${from}..${to - 1}: txn did not succeed`);
        written += to - from;
        o.onProgress?.(written);
      }
    };
    const lanes: Promise<void>[] = [];
    for (const c of conns) for (let j = 0; j < o.inFlightPerConnection; j++) lanes.push(lane(c));
    await Promise.all(lanes);
  } finally {
    for (const c of conns) c.close();
  }
}
