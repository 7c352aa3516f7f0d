// Piscina worker of the gateway's body decoding (decode_pool.ts): one large body in (moved), its framed
// request or etcd's error text out (the bytes moved back).
import { move } from 'piscina';
import { decodeBody, METHODS_BY_GRPC_PATH } from './decode.js';

/** One task: the method's gRPC path and the body's bytes (UTF-8 JSON). */
export interface DecodeTask {
  path: string;
  body: Uint8Array;
}

/** Piscina's entry point: an ArrayBuffer (moved) holding the framed request, or the error text. */
export default function run(task: DecodeTask): ReturnType<typeof move> | string {
  const desc = METHODS_BY_GRPC_PATH.get(task.path);
  if (desc === undefined) throw new Error(`gateway decode: no method ${task.path}`);
  const b = task.body;
  const r = decodeBody(desc, Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'));
  if (r.error !== undefined) return r.error;
  const f = r.framed;
  const out = f.byteOffset === 0 && f.buffer.byteLength === f.length ? f.buffer : f.buffer.slice(f.byteOffset, f.byteOffset + f.length);
  return move(out as ArrayBuffer);
}
