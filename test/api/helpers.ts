// Shared fixtures for the api tests: the Echo service (tools/lib/echo.ts, shared with the bench), a server on
// a loopback port, a raw node:http2 client that can send malformed gRPC, and grpc-js client helpers.
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { GrpcServer, type GrpcEngine, type GrpcServerOptions } from '../../src/api/grpc/server.js';
import { ClientListener } from '../../src/api/listener.js';
import { decodeGrpcMessage } from '../../src/api/grpc/protocol.js';
import { decodeEcho, encodeEcho, type Echo } from '../../tools/lib/echo.js';
import * as grpc from '../../tools/lib/grpcjs.js';

export { EchoService, decodeEcho, encodeEcho, sizeEcho, writeEcho, type Echo } from '../../tools/lib/echo.js';

/** A GrpcServer behind a ClientListener on a free loopback port. */
export interface Running {
  server: GrpcServer;
  listener: ClientListener;
  port: number;
  address: string;
  stop(): Promise<void>;
}

/** The HTTP/2 engine the api tests run on: TETCD_GRPC_ENGINE (test/run.ts runs them on each), else the default. */
export const TEST_ENGINE = (process.env.TETCD_GRPC_ENGINE || undefined) as GrpcEngine | undefined;

export async function startServer(options: GrpcServerOptions, register: (s: GrpcServer) => void): Promise<Running> {
  const server = new GrpcServer({ engine: TEST_ENGINE, ...options });
  register(server);
  const listener = await ClientListener.listen({ url: 'http://127.0.0.1:0', grpc: server, sniffTimeoutMs: 2000 });
  return {
    server,
    listener,
    port: listener.port,
    address: `127.0.0.1:${listener.port}`,
    async stop() {
      await server.shutdown({ graceful: false });
      await listener.destroy();
    },
  };
}

/** Frames a message as gRPC does (flag, 4-byte big-endian length, body). */
export function frame(body: Uint8Array, flag = 0, claimedLength = body.length): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = flag;
  b.writeUInt32BE(claimedLength >>> 0, 1);
  b.set(body, 5);
  return b;
}

/** What a raw HTTP/2 request got back. */
export interface RawResult {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  data: Buffer;
  /** grpc-status from trailers, or from headers in a trailers-only response. */
  grpcStatus: number | undefined;
  grpcMessage: string;
  rstCode: number;
}

export interface RawRequest {
  path: string;
  headers?: OutgoingHttpHeaders;
  /** Written one after the other, each in its own DATA frame. */
  chunks?: Uint8Array[];
  /** Send END_STREAM after the chunks (default true). */
  end?: boolean;
}

/** One request on an existing session; resolves when the stream closes. */
export function rawRequest(session: ClientHttp2Session, r: RawRequest): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': r.path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...r.headers,
    });
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const parts: Buffer[] = [];
    req.on('response', (h) => {
      headers = h;
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('error', () => {
      /* reported through rstCode */
    });
    req.on('close', () => {
      const src = trailers['grpc-status'] !== undefined ? trailers : headers;
      const status = src['grpc-status'];
      resolve({
        headers,
        trailers,
        data: Buffer.concat(parts),
        grpcStatus: status === undefined ? undefined : Number(status),
        grpcMessage: decodeGrpcMessage(String(src['grpc-message'] ?? '')),
        rstCode: req.rstCode ?? 0,
      });
    });
    for (const c of r.chunks ?? []) req.write(c);
    if (r.end ?? true) req.end();
    req.setTimeout(10_000, () => reject(new Error(`raw request ${r.path} timed out`)));
  });
}

export function connectRaw(port: number): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Splits a response body into its gRPC messages. */
export function unframe(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos + 5 <= data.length) {
    const len = data.readUInt32BE(pos + 1);
    out.push(data.subarray(pos + 5, pos + 5 + len));
    pos += 5 + len;
  }
  return out;
}

// ---- grpc-js helpers ----

const serialize = (m: Partial<Echo>): Buffer => Buffer.from(encodeEcho(m));
const deserialize = (b: Buffer): Echo => decodeEcho(b);

export function grpcClient(address: string, options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), options);
}

export interface UnaryOutcome {
  err: grpc.ServiceError | null;
  res: Echo | undefined;
}

export function callUnary(
  client: grpc.Client,
  path: string,
  req: Partial<Echo>,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<UnaryOutcome> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, serialize, deserialize, req, metadata, options, (err, res) => {
      resolve({ err: err ?? null, res });
    });
  });
}

export function callServerStream(
  client: grpc.Client,
  path: string,
  req: Partial<Echo>,
  options: grpc.CallOptions = {},
): grpc.ClientReadableStream<Echo> {
  return client.makeServerStreamRequest(path, serialize, deserialize, req, new grpc.Metadata(), options);
}

export function callBidi(client: grpc.Client, path: string, options: grpc.CallOptions = {}): grpc.ClientDuplexStream<Partial<Echo>, Echo> {
  return client.makeBidiStreamRequest(path, serialize, deserialize, new grpc.Metadata(), options);
}

/** Resolves with the final status of a grpc-js streaming call. */
export function statusOf(call: { on(ev: 'status', fn: (s: grpc.StatusObject) => void): unknown }): Promise<grpc.StatusObject> {
  return new Promise((resolve) => call.on('status', resolve));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `cond` every 5 ms until true or timeoutMs passes. */
export async function waitFor(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export { grpc };
