// etcd 3.4's HTTP/JSON gateway (grpc-gateway v1) on the client port: POST /v3/<path> (and /v3beta/<path>)
// with a JSON body becomes a call of the gRPC method the .proto maps to that path, served by the same gRPC
// server, handlers, checks and per-call context as gRPC clients get (in a client process: forwarded to the
// member as its gRPC calls are). Request bodies are read as Go's json.Decoder reads them, answers and
// errors are grpc-gateway's. Limits: body bytes, streaming requests open, bytes a streaming response holds.
// WebSockets to the same paths (ws.ts) become the same calls; paths Go's ServeMux would not serve as given
// (unclean, or `/v3` without its slash) are redirected as there.
import type { IncomingHttpHeaders } from 'node:http2';
import { ServerResponse, type IncomingMessage, type RequestListener } from 'node:http';
import { posix } from 'node:path';
import type { Duplex } from 'node:stream';
import type { GrpcServer } from '../grpc/server.js';
import type { GrpcSession } from '../grpc/call.js';
import type { AnyMethodDescriptor } from '../../proto/service.js';
import { goScanValue } from '../../proto/go_json.js';
import { Errors, GrpcCode } from '../../errors.js';
import { GatewayCall, type CallOwner } from './call.js';
import { CORS_HEADERS, replyError, replyPlain } from './errors.js';
import { GATEWAY_SERVICES, decodeBody, decodeValue, type DecodedBody } from './decode.js';
import type { BodyDecoder } from './decode_pool.js';
import { acceptHandshake, isWebSocketUpgrade, WsFrameReader, wsExchange } from './ws.js';

/** Limits of one gateway. */
export interface GatewayOptions {
  /** Largest request body in bytes (a streaming request: largest undecoded part). Default 4 × the gRPC receive limit. */
  bodyBytesMax?: number;
  /** Streaming requests (watch, keep-alive, observe, snapshot) open at once; more get ErrTooManyRequests. Default 10,000. */
  streamsMax?: number;
  /** Bytes one streaming response may hold that the client has not read; past it the request is cut. Default 16 MiB. */
  streamBufferedBytesMax?: number;
  /** Decodes large unary bodies off the event loop (decode_pool.ts); default: every body inline. */
  decoder?: BodyDecoder;
}

/** etcd 3.4's gateway paths (`/v3/...`), each with the method it calls. */
export const GATEWAY_ROUTES: ReadonlyMap<string, AnyMethodDescriptor> = (() => {
  const m = new Map<string, AnyMethodDescriptor>();
  for (const svc of GATEWAY_SERVICES) {
    for (const desc of Object.values(svc.methods)) {
      for (const path of desc.httpPaths) if (!m.has(path)) m.set(path, desc);
    }
  }
  return m;
})();

const STREAMS_MAX_DEFAULT = 10_000;
const STREAM_BUFFERED_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
const GRPC_METADATA_PREFIX = 'grpc-metadata-';

/**
 * The JSON gateway of one gRPC server.
 *
 *   const gw = new Gateway(grpc);
 *   ClientListener.listen({ url, grpc, http1: withGateway(gw, httpHandler(backend)) });
 */
export class Gateway implements CallOwner {
  readonly bodyBytesMax: number;
  readonly streamsMax: number;
  readonly streamBufferedBytesMax: number;
  private streams = 0;
  private readonly decoder: BodyDecoder | undefined;
  /** Bodies decoded on the pool (for tests and the bench). */
  pooledBodies = 0;

  constructor(
    private readonly grpc: GrpcServer,
    options: GatewayOptions = {},
  ) {
    this.bodyBytesMax = options.bodyBytesMax ?? 4 * grpc.opts.maxRecvMessageBytes;
    this.streamsMax = options.streamsMax ?? STREAMS_MAX_DEFAULT;
    this.streamBufferedBytesMax = options.streamBufferedBytesMax ?? STREAM_BUFFERED_BYTES_MAX_DEFAULT;
    this.decoder = options.decoder;
    for (const [k, v] of Object.entries({ bodyBytesMax: this.bodyBytesMax, streamsMax: this.streamsMax })) {
      if (!(Number.isInteger(v) && v > 0)) throw new RangeError(`Gateway: ${k} must be a positive integer, got ${v}`);
    }
  }

  /** Streaming requests open now. */
  get streamsOpen(): number {
    return this.streams;
  }

  get session(): GrpcSession {
    return this.grpc.localSession();
  }

  /** Serves one request whose path starts with /v3/ or /v3beta/. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    let path = q < 0 ? url : url.slice(0, q);
    if (path.startsWith('/v3beta/')) path = `/v3/${path.slice(8)}`;
    if (req.method === 'OPTIONS') {
      res.writeHead(200, { ...CORS_HEADERS, 'Content-Length': 0 });
      res.end();
      return;
    }
    const desc = GATEWAY_ROUTES.get(path);
    if (desc === undefined) {
      replyPlain(res, 404, 'Not Found\n');
      return;
    }
    if (req.method !== 'POST') {
      replyPlain(res, 405, 'Method Not Allowed\n');
      return;
    }
    if (desc.responseStream) {
      if (this.streams >= this.streamsMax) {
        const e = Errors.TooManyRequests();
        replyError(res, e.code, e.message);
        return;
      }
      this.streams++;
      res.once('close', this.streamClosed);
    }
    if (desc.requestStream) new BidiReader(this, desc, req, res).start();
    else this.readWhole(desc, req, res);
  };

  /**
   * A WebSocket to a gateway path: after the handshake, the call of that path with the messages as its
   * body (a unary call takes the first message as its whole body, as its JSON decoder reads one value).
   */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (!acceptHandshake(req, socket)) return;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const desc = GATEWAY_ROUTES.get(path.startsWith('/v3beta/') ? `/v3/${path.slice(8)}` : path);
    const bidi = desc?.requestStream === true;
    const ws = wsExchange(url, req, socket);
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      ws.wsReq.emit('end');
    };
    this.handle(ws.req, ws.res);
    const reader = new WsFrameReader(socket, this.bodyBytesMax, {
      message: (payload) => {
        if (ended) return;
        ws.wsReq.emit('data', bidi ? `${payload.toString('utf8')}\n` : payload);
        if (!bidi) end();
      },
      gone: end,
    });
    if (head.length > 0) reader.push(head);
  };

  private readonly streamClosed = (): void => {
    this.streams--;
  };

  /** Reads a unary or server-streaming request's body, then calls. */
  private readWhole(desc: AnyMethodDescriptor, req: IncomingMessage, res: ServerResponse): void {
    const max = this.bodyBytesMax;
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > max) {
        refused = true;
        this.refuseBody(res);
        return;
      }
      if (first === undefined) first = chunk;
      else (chunks ??= [first]).push(chunk);
    });
    req.on('end', () => {
      if (refused) return;
      const body = chunks !== undefined ? Buffer.concat(chunks, size) : first;
      if (body === undefined) {
        this.answer(desc, req, res, decodeBody(desc, ''));
        return;
      }
      const pooled = this.decoder !== undefined && size >= this.decoder.minBytes ? this.decoder.decode(desc, body) : undefined;
      if (pooled === undefined) {
        this.answer(desc, req, res, decodeBody(desc, body.toString('utf8')));
        return;
      }
      this.pooledBodies++;
      pooled.then(
        (decoded) => this.answer(desc, req, res, decoded),
        (err: unknown) => this.answer(desc, req, res, { error: `etcdserver: gateway could not decode the body: ${String(err)}` }),
      );
    });
  }

  /** A body over the limit: 429, and the connection is not reused (the rest of the body is not read). */
  refuseBody(res: ServerResponse): void {
    replyError(res, GrpcCode.ResourceExhausted, `etcdserver: gateway request body exceeds ${this.bodyBytesMax} bytes`, {
      Connection: 'close',
    });
  }

  /** Calls the method with a decoded body, or answers why the body does not decode (InvalidArgument, as etcd). */
  private answer(desc: AnyMethodDescriptor, req: IncomingMessage, res: ServerResponse, decoded: DecodedBody): void {
    if (decoded.error !== undefined) {
      if (!res.destroyed) replyError(res, GrpcCode.InvalidArgument, decoded.error);
      return;
    }
    if (res.destroyed) return; // the client left while its body was decoded
    const call = this.open(desc, req, res);
    call.pushMessage(decoded.framed);
    call.pushEnd();
  }

  /** Starts the gRPC call of a request. */
  open(desc: AnyMethodDescriptor, req: IncomingMessage, res: ServerResponse): GatewayCall {
    const call = new GatewayCall(this, desc, req, res);
    this.grpc.handleLocalStream(call, grpcHeaders(desc.path, req.headers), !desc.requestStream);
    return call;
  }
}

/**
 * The request's metadata as grpc-gateway passes it: `Authorization` (etcd's token), `Grpc-Metadata-*`
 * headers without their prefix, and `Grpc-Timeout`.
 */
function grpcHeaders(path: string, h: IncomingMessage['headers']): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { ':method': 'POST', ':path': path, 'content-type': 'application/grpc' };
  if (h.authorization !== undefined) out.authorization = h.authorization;
  const timeout = h['grpc-timeout'];
  if (timeout !== undefined) out['grpc-timeout'] = timeout;
  for (const k in h) {
    if (k.length > GRPC_METADATA_PREFIX.length && k.startsWith(GRPC_METADATA_PREFIX)) {
      const name = k.slice(GRPC_METADATA_PREFIX.length);
      if (name[0] !== ':' && name !== 'content-type') out[name] = h[k];
    }
  }
  return out;
}

/**
 * The request side of a bidi stream (Watch, LeaseKeepAlive): JSON values are read from the body as they
 * arrive and sent one by one; the first decides (a body that does not start with a valid request gets an
 * error and no call), a later bad one ends the requests (half-close), as grpc-gateway does.
 */
class BidiReader {
  private text = '';
  private pos = 0;
  private call: GatewayCall | undefined = undefined;
  private done = false;

  constructor(
    private readonly gw: Gateway,
    private readonly desc: AnyMethodDescriptor,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {}

  start(): void {
    this.req.setEncoding('utf8');
    this.req.on('data', this.onData);
    this.req.on('end', this.onEnd);
  }

  private readonly onData = (chunk: string): void => {
    if (this.done) return;
    this.text = this.pos === 0 ? this.text + chunk : this.text.slice(this.pos) + chunk;
    this.pos = 0;
    this.drain(false);
    if (!this.done && Buffer.byteLength(this.text) - this.pos > this.gw.bodyBytesMax) {
      if (this.call === undefined) {
        this.gw.refuseBody(this.res);
        this.stop();
      } else {
        this.halfClose();
      }
    }
  };

  private readonly onEnd = (): void => {
    if (this.done) return;
    this.drain(true);
    if (!this.done) this.halfClose();
  };

  /** Sends every complete value; at the end of the body an incomplete one is an error. */
  private drain(atEnd: boolean): void {
    for (;;) {
      const scan = goScanValue(this.text, this.pos);
      if (scan.kind === 'eof') return;
      if (scan.kind === 'error') {
        if (!atEnd && scan.text === 'unexpected EOF') return; // the rest is on its way
        this.fail(scan.text);
        return;
      }
      this.pos = scan.end;
      const decoded = decodeValue(this.desc, JSON.parse(this.text.slice(scan.start, scan.end)));
      if (decoded.error !== undefined) {
        this.fail(decoded.error);
        return;
      }
      this.call ??= this.gw.open(this.desc, this.req, this.res);
      this.call.pushMessage(decoded.framed);
      if (this.done) return;
    }
  }

  /** A value that does not decode: before the first message the request fails (Unknown, as etcd), after it the requests end. */
  private fail(text: string): void {
    if (this.call === undefined) {
      replyError(this.res, GrpcCode.Unknown, text);
      this.stop();
      return;
    }
    this.halfClose();
  }

  private halfClose(): void {
    this.call ??= this.gw.open(this.desc, this.req, this.res);
    this.call.pushEnd();
    this.stop();
  }

  /** Reads no more of the body (what still arrives is discarded). */
  private stop(): void {
    this.done = true;
    this.text = '';
    this.pos = 0;
  }
}

/** Go's cleanPath: the path with `//`, `.` and `..` resolved, keeping a trailing slash. */
function goCleanPath(p: string): string {
  let np = posix.normalize(p);
  if (np.length > 1 && np.endsWith('/')) np = np.slice(0, -1);
  return p.endsWith('/') && np !== '/' ? `${np}/` : np;
}

/**
 * Where etcd 3.4's client mux (Go's ServeMux, after its /v3beta/ -> /v3/ rewrite) redirects a request
 * (301): to the clean path when the path is not clean, to `/v3/` from `/v3`; undefined when it serves it.
 */
export function goMuxRedirect(url: string): string | undefined {
  if (!url.startsWith('/')) return undefined;
  const q = url.indexOf('?');
  let path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 || q === url.length - 1 ? '' : url.slice(q);
  if (path.startsWith('/v3beta/')) path = `/v3/${path.slice(8)}`;
  const clean = goCleanPath(path);
  if (clean !== path) return clean + query;
  return path === '/v3' ? `/v3/${query}` : undefined;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' };

/** Go's http.Redirect with 301: a small HTML body for GET and HEAD, none otherwise. */
function replyRedirect(req: IncomingMessage, res: ServerResponse, location: string): void {
  const html = req.method === 'GET' || req.method === 'HEAD';
  const body = html ? `<a href="${location.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c])}">Moved Permanently</a>.\n\n` : '';
  res.writeHead(301, {
    ...CORS_HEADERS,
    ...(html ? { 'Content-Type': 'text/html; charset=utf-8' } : {}),
    Location: location,
    ...(req.method === 'HEAD' ? {} : { 'Content-Length': Buffer.byteLength(body) }),
  });
  res.end(body);
}

/**
 * Routes `/v3/` and `/v3beta/` requests to the gateway and everything else to `next` (etcd 3.4 serves no
 * `/v3alpha/`: those get `next`'s 404 as there); paths Go's ServeMux would redirect are redirected.
 *
 *   http1: withGateway(new Gateway(grpc), httpHandler(backend))
 */
export function withGateway(gateway: Gateway, next: RequestListener): RequestListener {
  return (req, res) => {
    const url = req.url;
    const to = url === undefined ? undefined : goMuxRedirect(url);
    if (to !== undefined) replyRedirect(req, res, to);
    else if (url !== undefined && (url.startsWith('/v3/') || url.startsWith('/v3beta/'))) gateway.handle(req, res);
    else next(req, res);
  };
}

/** A listener of http.Server's 'upgrade' event. */
export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * The client port's upgrade requests: a WebSocket to a gateway path goes to the gateway; any other
 * request that carries an Upgrade header is served as a plain request (as etcd serves it), on a
 * connection that then closes.
 *
 *   ClientListener.listen({ url, grpc, http1: withGateway(gw, next), upgrade: gatewayUpgrade(gw, next) })
 */
export function gatewayUpgrade(gateway: Gateway, next: RequestListener): UpgradeListener {
  const plain = withGateway(gateway, next);
  return (req, socket, head) => {
    const url = req.url ?? '/';
    const ws = (url.startsWith('/v3/') || url.startsWith('/v3beta/')) && goMuxRedirect(url) === undefined && isWebSocketUpgrade(req);
    if (ws) gateway.upgrade(req, socket, head);
    else serveWithoutUpgrade(plain, req, socket, head);
  };
}

/** Serves an upgrade request as an ordinary one (its body: `head`, then the socket up to Content-Length). */
function serveWithoutUpgrade(handler: RequestListener, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => {});
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as never);
  res.once('finish', () => {
    res.detachSocket(socket as never);
    socket.end();
  });
  let left = Number(req.headers['content-length'] ?? 0) || 0;
  const feed = (d: Buffer): void => {
    const part = d.subarray(0, left);
    left -= part.length;
    if (part.length > 0) req.push(part);
    if (left === 0) {
      socket.off('data', feed);
      req.push(null);
    }
  };
  if (left === 0) req.push(null);
  else {
    if (head.length > 0) feed(head);
    if (left > 0) socket.on('data', feed);
  }
  handler(req, res);
}
