// A gateway request body to the gRPC request it stands for: the JSON text read as Go's json.Decoder reads
// it, the method's request message built from it, encoded and framed for gRPC; or the text etcd's gateway
// answers when that fails. The same function runs inline and on the worker threads (decode_worker.ts).
import { frameMessage } from '../grpc/protocol.js';
import type { AnyMethodDescriptor, ServiceDescriptor } from '../../proto/service.js';
import { KV, Watch, Lease, Cluster, Maintenance, Auth } from '../../proto/rpc.js';
import { Lock } from '../../proto/v3lock.js';
import { Election } from '../../proto/v3election.js';
import { JsonFieldError } from '../../proto/json.js';
import { goScanValue } from '../../proto/go_json.js';

/** The services in the order etcd registers their gateway handlers: the first to claim a path keeps it. */
export const GATEWAY_SERVICES: readonly ServiceDescriptor[] = [KV, Watch, Lease, Cluster, Maintenance, Auth, Lock, Election];

/** Every method the gateway can call, by gRPC path (`/etcdserverpb.KV/Put`). */
export const METHODS_BY_GRPC_PATH: ReadonlyMap<string, AnyMethodDescriptor> = new Map(
  GATEWAY_SERVICES.flatMap((svc) => Object.values(svc.methods).map((d) => [d.path, d] as const)),
);

/** A decoded body: the gRPC-framed request, or etcd's text for why it does not decode. */
export type DecodedBody = { framed: Buffer; error?: undefined } | { framed?: undefined; error: string };

/**
 * Decodes a unary or server-streaming request body (the first JSON value; an empty body is the empty message).
 *
 *   decodeBody(KV.methods.Put, '{"key":"Zm9v"}')   // { framed: <5-byte prefix + PutRequest> }
 *   decodeBody(KV.methods.Put, '{"key":5}')        // { error: 'json: cannot unmarshal number into Go value of type []uint8' }
 */
export function decodeBody(desc: AnyMethodDescriptor, text: string): DecodedBody {
  let value: unknown;
  try {
    value = text.length === 0 ? undefined : JSON.parse(text);
  } catch {
    // Go reads the first value and leaves the rest; its syntax errors are its own words.
    const scan = goScanValue(text, 0);
    if (scan.kind === 'error') return { error: scan.text };
    value = scan.kind === 'eof' ? undefined : JSON.parse(text.slice(scan.start, scan.end));
  }
  return decodeValue(desc, value);
}

/** The request message of one parsed JSON value. */
export function decodeValue(desc: AnyMethodDescriptor, value: unknown): DecodedBody {
  try {
    return { framed: frameMessage(desc.encodeRequest(desc.requestFromJson(value) as never)) };
  } catch (err) {
    return { error: decodeErrorText(err) };
  }
}

/** What etcd's gateway says about a value that does not decode into the request message. */
export function decodeErrorText(err: unknown): string {
  if (err instanceof JsonFieldError) return err.goText;
  return err instanceof Error ? err.message : String(err);
}
