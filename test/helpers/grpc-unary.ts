// One unary etcd call over @grpc/grpc-js with an optional auth token, its outcome as one comparable line:
// `ok <response JSON without header>` or `error <code> <message>`. The auth suites compare these lines.
import * as grpc from '../../tools/lib/grpcjs.js';

/** What a generated method descriptor offers (src/proto/*.ts). */
export interface UnaryDesc {
  path: string;
  encodeRequest(m: never): Uint8Array;
  decodeResponse(b: Uint8Array): unknown;
}

/** The response without its header (IDs, terms, revisions differ between members) and bytes as text. */
export function describeResponse(res: unknown): string {
  return JSON.stringify(res, (k, v: unknown) => {
    if (k === 'header') return undefined;
    if (v instanceof Uint8Array) return Buffer.from(v).toString();
    // A Buffer has been through its toJSON by the time the replacer sees it.
    const o = v as { type?: unknown; data?: unknown };
    if (o !== null && typeof o === 'object' && o.type === 'Buffer' && Array.isArray(o.data))
      return Buffer.from(o.data as number[]).toString();
    if (typeof v === 'bigint') return v.toString();
    return v;
  });
}

/** The raw outcome: the decoded response, or the status error. */
export function unaryRaw(
  client: grpc.Client,
  d: UnaryDesc,
  req: unknown,
  token?: string,
  timeoutMs = 10_000,
): Promise<{ res?: unknown; err?: grpc.ServiceError }> {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('token', token);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      d.path,
      (m: unknown) => Buffer.from(d.encodeRequest(m as never)),
      (b: Buffer) => d.decodeResponse(b),
      req,
      md,
      { deadline: Date.now() + timeoutMs },
      (err, res) => resolve(err ? { err } : { res }),
    );
  });
}

/** The outcome as a line. */
export async function unary(client: grpc.Client, d: UnaryDesc, req: unknown, token?: string): Promise<string> {
  const r = await unaryRaw(client, d, req, token);
  return r.err ? `error ${r.err.code} ${r.err.details}` : `ok ${describeResponse(r.res)}`;
}
