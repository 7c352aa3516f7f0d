// Piscina worker of bench/http/decode.bench.ts: decodes one gateway request body (JSON text bytes) into
// the framed protobuf request, as the gateway does inline, and hands the bytes back by transfer.
import { move } from 'piscina';
import { KV } from '../../src/proto/rpc.js';
import { frameMessage } from '../../src/api/grpc/protocol.js';

export default function run(body: Uint8Array): ReturnType<typeof move> {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  const framed = frameMessage(KV.methods.Put.encodeRequest(KV.methods.Put.requestFromJson(JSON.parse(text))));
  const out = new Uint8Array(framed.length);
  out.set(framed);
  return move(out.buffer);
}
