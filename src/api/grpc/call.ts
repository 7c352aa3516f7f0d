// One gRPC call on one HTTP/2 stream: reassembles length-prefixed request messages, runs the handler,
// frames responses, sends the status in trailers, and turns RST_STREAM/deadline/shutdown into cancellation.
// The call object doubles as the response stream handed to streaming handlers, so a call allocates one
// object; stream events reach it through shared listener functions (no closures per call).
// The handler contracts (descriptors, handler types, the response stream, a registered method) live here, not in
// server.ts: a call and its handlers name each other, and server.ts imports this file (it re-exports them).
import type { HistogramCounts } from '../../metrics.js';
import { constants as h2, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket, PeerCertificate } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { EtcdError, GrpcCode, toEtcdError } from '../../errors.js';
import { ProtoWriter } from '../../proto/wire.js';
import { Metadata } from './metadata.js';
import type { ResolvedServerOptions } from './options.js';
import { FRAME_HEADER_BYTES, encodeGrpcMessage, frameMessage, type GrpcMethodType } from './protocol.js';
import type { CallContext } from '../context.js';

/** What the server provides to its calls. */
export interface CallHost {
  readonly opts: ResolvedServerOptions;
  /** The call's stream has closed; forget it. */
  callClosed(call: ServerCall): void;
}

/** Kinds of handler a method can be registered with. */
export const enum HandlerKind {
  Unary = 0,
  ServerStream = 1,
  Bidi = 2,
}

/**
 * The part of an HTTP/2 connection the gRPC layer uses: node:http2's ServerHttp2Session, or the raw
 * engine's H2Session (api/h2/session.ts), which implements the same calls with the same meaning.
 */
export interface GrpcSession {
  readonly destroyed: boolean;
  readonly closed: boolean;
  readonly socket: Socket | TLSSocket;
  close(): void;
  destroy(): void;
  goaway(code?: number, lastStreamID?: number, opaqueData?: ArrayBufferView): void;
  ping(callback: (err: Error | null, duration: number, payload: Buffer) => void): boolean;
  setLocalWindowSize(windowSize: number): void;
  // biome-ignore lint/suspicious/noExplicitAny: node:events' listener type, so that node:http2's sessions and streams fit
  on(event: string, listener: (...args: any[]) => void): unknown;
}

/** The part of an HTTP/2 stream a call uses: node:http2's ServerHttp2Stream, or the raw engine's H2Stream. */
export interface GrpcStream {
  /** The HTTP/2 stream id (undefined on node:http2 until the stream is open). */
  readonly id: number | undefined;
  readonly destroyed: boolean;
  readonly closed: boolean;
  readonly headersSent: boolean;
  readonly writableLength: number;
  readonly session: GrpcSession | undefined;
  respond(headers: OutgoingHttpHeaders, options?: { endStream?: boolean; waitForTrailers?: boolean; sendDate?: boolean }): void;
  write(chunk: Uint8Array): boolean;
  end(chunk?: Uint8Array): void;
  sendTrailers(headers: OutgoingHttpHeaders): void;
  close(code?: number): void;
  destroy(): void;
  pause(): void;
  resume(): void;
  // biome-ignore lint/suspicious/noExplicitAny: node:events' listener type, so that node:http2's sessions and streams fit
  on(event: string, listener: (...args: any[]) => void): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: node:events' listener type, so that node:http2's sessions and streams fit
  off(event: string, listener: (...args: any[]) => void): unknown;
}

/**
 * The part of a generated method descriptor the server uses (src/proto/rpc.ts emits these):
 *
 *   server.unary(KV.methods.Range, (req, call) => ({ header, kvs, count: kvs.length }));
 */
export interface MethodDescriptor<Req, ResInit> {
  /** `/package.Service/Method` */
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  /** Decodes one request message; throws (ProtoDecodeError) on malformed input. */
  decodeRequest(buf: Uint8Array): Req;
  /** Encodes one response message. */
  encodeResponse(m: ResInit): Uint8Array;
  /** Optional pair that lets the server write the message straight into its frame buffer (no copy). */
  sizeResponse?(m: ResInit): number;
  writeResponse?(m: ResInit, w: ProtoWriter): void;
}

/**
 * A unary handler: the response, or a promise of it; a thrown EtcdError becomes the status. DEFERRED means
 * the handler answers later itself (`call.respondFramed()` / `call.fail()`).
 */
export type UnaryHandler<Req, ResInit> = (req: Req, call: ServerCall) => ResInit | Promise<ResInit> | Deferred;

/** The response side of a streaming call. */
export interface ServerWriter<ResInit> {
  /** Sends a message; false means "wait for drained()" (or the call is over). */
  write(m: ResInit): boolean;
  /** True while write() would return true. */
  readonly writable: boolean;
  /** Resolves when the send queue is below its soft limit again, or the call is over. */
  drained(): Promise<void>;
  /** Ends the call with OK, or with the status of `err`. */
  end(err?: unknown): void;
  /** True once nothing more can be sent. */
  readonly done: boolean;
}

/** A bidirectional stream: set `onMessage`/`onHalfClose` (synchronously, or messages queue up). */
export interface BidiStream<Req, ResInit> extends ServerWriter<ResInit> {
  onMessage: ((m: Req) => void) | undefined;
  onHalfClose: (() => void) | undefined;
  /** Stops reading requests until resume(); HTTP/2 flow control pushes back on the client. */
  pause(): void;
  resume(): void;
}

/**
 * A server-streaming handler. If it returns a promise, the call ends when the promise settles
 * (OK, or the rejection's status); otherwise it must call `stream.end()` itself.
 */
export type ServerStreamHandler<Req, ResInit> = (req: Req, stream: ServerWriter<ResInit>, call: ServerCall) => void | Promise<void>;

/** A bidi handler, started when the call's headers arrive; same ending rule as ServerStreamHandler. */
export type BidiHandler<Req, ResInit> = (stream: BidiStream<Req, ResInit>, call: ServerCall) => void | Promise<void>;

/** Counters of one method, in go-grpc-prometheus's terms; read by the metrics module. */
export interface GrpcMethodStats {
  readonly service: string;
  readonly method: string;
  readonly type: GrpcMethodType;
  /** grpc_server_started_total */
  started: number;
  /** grpc_server_handled_total by status code (index = code). */
  readonly handled: number[];
  /** grpc_server_msg_received_total */
  msgReceived: number;
  /** grpc_server_msg_sent_total */
  msgSent: number;
  /** etcd_network_client_grpc_received_bytes_total / _sent_bytes_total: message bytes, frame headers not counted. */
  bytesReceived: number;
  bytesSent: number;
  /** grpc_server_handling_seconds, kept only with --metrics extensive (one clock read per call start and end). */
  handlingSeconds: HistogramCounts | undefined;
}

/** @internal A registered method. */
export interface MethodEntry {
  readonly desc: MethodDescriptor<unknown, unknown>;
  readonly kind: HandlerKind;
  readonly unary: UnaryHandler<unknown, unknown> | undefined;
  readonly serverStream: ServerStreamHandler<unknown, unknown> | undefined;
  readonly bidi: BidiHandler<unknown, unknown> | undefined;
  readonly stats: GrpcMethodStats;
}

/** @internal Per-connection state. */
export interface SessionState {
  readonly session: GrpcSession;
  activeCalls: number;
  /** Bumped on every stream and DATA chunk; keepalive pings only connections where it stood still. */
  activity: number;
  activitySeen: number;
  /** Set when we send headers or data: the next client ping is not a strike (grpc-go's rule). */
  resetPingStrikes: boolean;
  pingStrikes: number;
  /** The socket's bytesWritten when the client last pinged. */
  bytesWrittenAtLastPing: number;
  lastPingAtMs: number;
  /** Highest stream id the client opened (the last-stream-id of a GOAWAY we send). */
  lastStreamId: number;
  /** GOAWAY(ENHANCE_YOUR_CALM) went out; the connection is being dropped. */
  calmed: boolean;
  /** The client's address and port, kept because the socket is unreachable once the session ends. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The CN of the verified TLS client certificate: undefined until looked up, null if none. */
  certCommonName: string | null | undefined;
  keepaliveTimer: NodeJS.Timeout | undefined;
  pingTimeoutTimer: NodeJS.Timeout | undefined;
}

const kCall = Symbol('tetcd.grpcCall');
type CallStream = GrpcStream & { [kCall]?: ServerCall };

// Pre-built header objects: Node copies them on send, so they can be shared by every call.
/** Response headers of every successful call. */
export const RESPONSE_HEADERS: OutgoingHttpHeaders = Object.freeze({ ':status': 200, 'content-type': 'application/grpc' });
const RESPOND_WITH_TRAILERS = Object.freeze({ waitForTrailers: true, sendDate: false });
const RESPOND_AND_END = Object.freeze({ endStream: true, sendDate: false });
const TRAILERS_OK: OutgoingHttpHeaders = Object.freeze({ 'grpc-status': '0' });
const statusStrings: readonly string[] = Array.from({ length: 17 }, (_, i) => String(i));

/**
 * What a unary handler returns when it answers later itself, through `call.respondFramed()` or
 * `call.fail()` (a forwarding handler: the answer comes from another process).
 */
export const DEFERRED: unique symbol = Symbol('tetcd.grpcDeferred');
export type Deferred = typeof DEFERRED;

/** The status the server sends once a call is over before its handler answered (grpc-go texts). */
const CANCELED_MESSAGE = 'context canceled';
const DEADLINE_MESSAGE = 'context deadline exceeded';

/**
 * Sends a status with no response message ("trailers-only") on a stream that never became a call:
 * unknown method, bad content-type, malformed headers. RST_STREAM(NO_ERROR) follows if the client is
 * still sending, as grpc-go does, so a misbehaving client cannot keep the stream open.
 */
export function respondTrailersOnly(stream: GrpcStream, code: GrpcCode, message: string, httpStatus = 200, clientDone = false): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  try {
    stream.respond(
      {
        ':status': httpStatus,
        'content-type': 'application/grpc',
        'grpc-status': statusStrings[code],
        'grpc-message': encodeGrpcMessage(message),
      },
      RESPOND_AND_END,
    );
    if (!clientDone) stream.close(h2.NGHTTP2_NO_ERROR);
  } catch {
    // The stream died under us (client reset): nothing left to tell it.
  }
}

/**
 * A gRPC call as its handler sees it.
 *
 *   server.unary(KV.methods.Range, (req, call) => {
 *     const token = call.metadata.get('token');
 *     if (call.deadlineMs < Date.now() + 10) ...
 *     return range(req, call.signal);
 *   });
 */
export class ServerCall implements CallContext {
  /** The method path, e.g. `/etcdserverpb.KV/Range`. */
  readonly method: string;
  /** When the client gives up (epoch ms, Date.now() clock); Infinity without `grpc-timeout`. */
  readonly deadlineMs: number;

  private readonly _stream: CallStream;
  private readonly _headers: IncomingHttpHeaders;
  private readonly _entry: MethodEntry;
  private readonly _host: CallHost;
  private readonly _sess: SessionState;
  private _metadata: Metadata | undefined = undefined;
  private _abort: AbortController | undefined = undefined;
  /** onCancel() hooks, and the status the call was cancelled with. */
  private _cancelHooks: ((reason: EtcdError) => void)[] | undefined = undefined;
  private _cancelReason: EtcdError | undefined = undefined;
  /** The handler decided how the call ends (answer, end(), throw): onCancel hooks are not called. */
  private _handlerEnding = false;
  private _timer: NodeJS.Timeout | undefined = undefined;
  private _trailers: OutgoingHttpHeaders = TRAILERS_OK;
  /** The status is decided (sent or being sent) or the stream is gone: nothing more goes out. */
  private _finished = false;
  /** When the call started (performance.now()), if its method keeps handling times. */
  private _startedMs = 0;
  /** Ended without the handler deciding: client reset, deadline, shutdown, send queue overflow. */
  private _cancelled = false;
  private _aborted = false;
  private _headersSent = false;
  /** The client half-closed (END_STREAM seen and every DATA byte consumed). */
  private _halfClosed = false;
  private _closed = false;
  private readonly _gzip: boolean;
  /** The (decompressed) request message of a unary or server-streaming call, once it arrived. */
  private _requestBytes: Uint8Array | undefined = undefined;

  // Reassembly of length-prefixed messages that span DATA frames.
  private _rxCount = 0;
  private _rxHead: Buffer | undefined = undefined;
  private _rxHeadLen = 0;
  private _rxBody: Buffer | undefined = undefined;
  private _rxBodyFilled = 0;
  private _rxFlag = 0;

  // Bidi inbound delivery.
  private _onMessage: ((m: unknown) => void) | undefined = undefined;
  private _onHalfClose: (() => void) | undefined = undefined;
  private _queue: unknown[] | undefined = undefined;
  private _queuePaused = false;
  private _halfClosePending = false;

  /** @internal Created by GrpcServer for a stream whose headers passed validation. */
  constructor(
    host: CallHost,
    sess: SessionState,
    stream: GrpcStream,
    headers: IncomingHttpHeaders,
    entry: MethodEntry,
    path: string,
    timeoutMs: number,
    gzip: boolean,
  ) {
    this._host = host;
    this._sess = sess;
    this._stream = stream as CallStream;
    this._headers = headers;
    this._entry = entry;
    this.method = path;
    this._gzip = gzip;
    this.deadlineMs = timeoutMs >= 0 ? Date.now() + timeoutMs : Infinity;
    this._stream[kCall] = this;
    sess.activeCalls++;
    entry.stats.started++;
    if (entry.stats.handlingSeconds !== undefined) this._startedMs = performance.now();
    stream.on('data', onStreamData);
    stream.on('end', onStreamEnd);
    stream.on('close', onStreamClose);
    stream.on('wantTrailers', onStreamWantTrailers);
    if (timeoutMs >= 0) {
      // setTimeout cannot wait longer than 2^31-1 ms; such a deadline is as good as none.
      if (timeoutMs <= 0x7fffffff) this._timer = setTimeout(onDeadline, timeoutMs, this);
    }
  }

  /** Request metadata (lower-cased keys; `token` is etcd's auth token). */
  get metadata(): Metadata {
    return (this._metadata ??= new Metadata(this._headers));
  }

  /** Aborted when the call is over for any reason (like a Go context); the reason is an EtcdError. */
  get signal(): AbortSignal {
    if (this._abort === undefined) {
      this._abort = new AbortController();
      if (this._aborted) this._abort.abort(new EtcdError(GrpcCode.Canceled, CANCELED_MESSAGE));
    }
    return this._abort.signal;
  }

  /**
   * True once the call ended without its handler deciding the status (client reset, deadline, shutdown,
   * send queue past its hard limit, a malformed request message): when onCancel hooks run.
   */
  get cancelled(): boolean {
    return this._cancelled || this._cancelReason !== undefined;
  }

  /** True once nothing more can be sent: the status went out or the stream is gone. */
  get done(): boolean {
    return this._finished;
  }

  /** Streaming: true while write() would return true (the send queue is below its soft limit). */
  get writable(): boolean {
    const stream = this._stream;
    return !this._finished && !stream.destroyed && stream.writableLength < this._host.opts.sendQueueBytesHigh;
  }

  /** etcd's auth token as sent: the `token` metadata, else `authorization` (CallContext). */
  /** Metadata `hasleader: true` (clientv3's WithRequireLeader): fail while the member has no leader (CallContext). */
  get requireLeader(): boolean {
    return firstHeader(this._headers.hasleader) === 'true';
  }

  get token(): string | undefined {
    const h = this._headers;
    return firstHeader(h.token) ?? firstHeader(h.authorization);
  }

  /**
   * The CN of a client certificate the TLS layer verified (CallContext); undefined on cleartext or
   * without one. Looked up once per connection.
   */
  get certCommonName(): string | undefined {
    const sess = this._sess;
    if (sess.certCommonName === undefined) sess.certCommonName = verifiedCommonName(sess.session);
    return sess.certCommonName ?? undefined;
  }

  /**
   * Calls `fn` once if the call ends without its handler deciding (CallContext.onCancel): client reset
   * or gone, deadline, shutdown, send queue past its hard limit, a malformed request message. At once
   * if it already did.
   */
  onCancel(fn: (reason: EtcdError) => void): void {
    if (this._aborted) {
      if (this._cancelReason !== undefined) fn(this._cancelReason);
      return;
    }
    (this._cancelHooks ??= []).push(fn);
  }

  /**
   * The request message as it arrived (protobuf, decompressed) for a unary or server-streaming call, and
   * for a bidi call the message being delivered to onMessage (valid during that callback): a forwarding
   * handler passes it on without encoding it again. A view into a buffer the call owns.
   */
  get requestBytes(): Uint8Array | undefined {
    return this._requestBytes;
  }

  /**
   * Answers a unary call whose handler returned DEFERRED with a response message that is already framed
   * for gRPC (5-byte prefix + protobuf). Ignored once the call is over (cancelled, deadline).
   */
  respondFramed(framed: Uint8Array): void {
    if (this._entry.kind !== HandlerKind.Unary) throw new Error(`${this.method}: respondFramed() on a streaming call`);
    if (this._finished) return;
    this._handlerEnding = true;
    const size = framed.length - FRAME_HEADER_BYTES;
    const maxSend = this._host.opts.maxSendMessageBytes;
    if (size > maxSend) {
      this._fail(GrpcCode.ResourceExhausted, `grpc: trying to send message larger than max (${size} vs. ${maxSend})`, true);
      return;
    }
    this._sendFramed(framed);
  }

  /** Ends a unary call whose handler returned DEFERRED with the status of `err` (EtcdError keeps its code). */
  fail(err: unknown): void {
    this._failWith(err);
  }

  /** The client's address as the socket reports it. */
  get peerAddress(): string {
    return this._sess.remoteAddress;
  }

  /** The client's port. */
  get peerPort(): number {
    return this._sess.remotePort;
  }

  /** The client's TLS certificate (client-cert auth); undefined on cleartext or without one. */
  get peerCertificate(): PeerCertificate | undefined {
    const session = this._sess.session;
    const socket = (session.destroyed ? undefined : session.socket) as TLSSocket | undefined;
    if (socket === undefined || typeof socket.getPeerCertificate !== 'function') return undefined;
    const cert = socket.getPeerCertificate();
    return cert !== null && Object.keys(cert).length > 0 ? cert : undefined;
  }

  // ---- response side (ServerWriter / BidiStream) ----

  /**
   * Sends a response message that is already framed for gRPC (5-byte prefix + protobuf) on a streaming
   * call (a forwarding handler: the member framed it; the watch fan-out pool built it), or `messages` such
   * messages back to back in one buffer (one write for all of them). Same result and limits as write();
   * the size limit is checked against the whole buffer, which is at least as strict.
   */
  writeFramed(framed: Uint8Array, messages = 1): boolean {
    if (this._entry.kind === HandlerKind.Unary) throw new Error(`${this.method}: writeFramed() on a unary call; use respondFramed()`);
    if (this._finished) return false;
    const size = framed.length - FRAME_HEADER_BYTES;
    const maxSend = this._host.opts.maxSendMessageBytes;
    if (size > maxSend) {
      this._fail(GrpcCode.ResourceExhausted, `trying to send message larger than max (${size} vs. ${maxSend})`, true);
      return false;
    }
    return this._writeFramed(framed, messages);
  }

  /**
   * Sends one response message on a streaming call. Returns false when the send queue is above its soft
   * limit (wait for `drained()` before writing more) or the call is over. Past the hard limit the call is
   * cancelled with RESOURCE_EXHAUSTED so a client that does not read cannot grow server memory.
   */
  write(message: unknown): boolean {
    if (this._entry.kind === HandlerKind.Unary) throw new Error(`${this.method}: write() on a unary call; return the response instead`);
    if (this._finished) return false;
    const framed = this._frame(message, 'trying to send message larger than max');
    if (framed === undefined) return false;
    return this._writeFramed(framed);
  }

  private _writeFramed(framed: Uint8Array, messages = 1): boolean {
    const opts = this._host.opts;
    const stream = this._stream;
    if (stream.destroyed || stream.closed) return false;
    try {
      if (!this._headersSent) {
        this._headersSent = true;
        stream.respond(RESPONSE_HEADERS, RESPOND_WITH_TRAILERS);
      }
      stream.write(framed);
    } catch {
      stream.destroy(); // the session died under us; 'close' accounts for the call
      return false;
    }
    this._sess.resetPingStrikes = true;
    this._entry.stats.msgSent += messages;
    this._entry.stats.bytesSent += framed.length - FRAME_HEADER_BYTES * messages;
    const queuedBytes = stream.writableLength;
    if (queuedBytes > opts.sendQueueBytesMax) {
      this._cancel(
        GrpcCode.ResourceExhausted,
        `grpc: send queue of ${queuedBytes} bytes exceeds the limit of ${opts.sendQueueBytesMax}`,
        false,
      );
      stream.close(h2.NGHTTP2_ENHANCE_YOUR_CALM);
      return false;
    }
    return queuedBytes < opts.sendQueueBytesHigh;
  }

  /** Resolves when the send queue is below its soft limit again, or the call is over. */
  drained(): Promise<void> {
    const stream = this._stream;
    if (this._finished || stream.writableLength < this._host.opts.sendQueueBytesHigh) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        stream.off('drain', done);
        stream.off('close', done);
        resolve();
      };
      stream.on('drain', done);
      stream.on('close', done);
    });
  }

  /** Ends the call: OK, or the error's status (EtcdError keeps its code, anything else is UNKNOWN). */
  end(err?: unknown): void {
    if (this._entry.kind === HandlerKind.Unary) throw new Error(`${this.method}: end() on a unary call; return or throw instead`);
    if (this._finished) return;
    this._handlerEnding = true;
    if (err !== undefined && err !== null) {
      const e = toEtcdError(err);
      this._fail(e.code, e.message, true);
      return;
    }
    this._finished = true;
    this._clearTimer();
    this._handled(GrpcCode.OK);
    const stream = this._stream;
    if (!(stream.destroyed || stream.closed)) {
      this._sess.resetPingStrikes = true;
      if (this._headersSent) {
        endQuietly(stream);
      } else {
        this._headersSent = true;
        respondTrailersOnly(stream, GrpcCode.OK, '', 200, this._halfClosed);
      }
    }
    this._abortSignal();
  }

  /** Bidi: the callback that receives each request message (messages that came earlier are queued). */
  set onMessage(fn: ((m: unknown) => void) | undefined) {
    this._onMessage = fn;
    if (fn !== undefined && this._queue !== undefined && this._queue.length > 0) this._flushQueue();
  }
  get onMessage(): ((m: unknown) => void) | undefined {
    return this._onMessage;
  }

  /** Bidi: called once when the client has sent its last message. */
  set onHalfClose(fn: (() => void) | undefined) {
    this._onHalfClose = fn;
    if (fn !== undefined && this._halfClosePending && (this._queue === undefined || this._queue.length === 0)) {
      this._halfClosePending = false;
      this._safely(fn);
    }
  }
  get onHalfClose(): (() => void) | undefined {
    return this._onHalfClose;
  }

  /** Stops reading requests (HTTP/2 flow control then stops the client). */
  pause(): void {
    this._stream.pause();
  }

  /** Resumes reading requests after pause(). */
  resume(): void {
    if (!this._queuePaused) this._stream.resume();
  }

  // ---- internals driven by stream events ----

  /** @internal */
  _data(chunk: Buffer): void {
    if (this._finished) return; // the status is out; the rest of the request is discarded
    this._sess.activity++;
    const len = chunk.length;
    const maxRecv = this._host.opts.maxRecvMessageBytes;
    let pos = 0;
    while (pos < len) {
      const body = this._rxBody;
      if (body !== undefined) {
        const n = Math.min(len - pos, body.length - this._rxBodyFilled);
        chunk.copy(body, this._rxBodyFilled, pos, pos + n);
        pos += n;
        this._rxBodyFilled += n;
        if (this._rxBodyFilled === body.length) {
          this._rxBody = undefined;
          this._message(this._rxFlag, body);
          if (this._finished) return;
        }
        continue;
      }
      let flag: number;
      let msgLen: number;
      if (this._rxHeadLen === 0 && len - pos >= FRAME_HEADER_BYTES) {
        flag = chunk[pos];
        msgLen = chunk.readUInt32BE(pos + 1);
        pos += FRAME_HEADER_BYTES;
      } else {
        const head = (this._rxHead ??= Buffer.allocUnsafe(FRAME_HEADER_BYTES));
        const n = Math.min(FRAME_HEADER_BYTES - this._rxHeadLen, len - pos);
        chunk.copy(head, this._rxHeadLen, pos, pos + n);
        pos += n;
        this._rxHeadLen += n;
        if (this._rxHeadLen < FRAME_HEADER_BYTES) return;
        this._rxHeadLen = 0;
        flag = head[0];
        msgLen = head.readUInt32BE(1);
      }
      if (msgLen > maxRecv) {
        this._fail(GrpcCode.ResourceExhausted, `grpc: received message larger than max (${msgLen} vs. ${maxRecv})`, true);
        return;
      }
      if (flag > 1) {
        this._fail(GrpcCode.Internal, `grpc: received unexpected payload format ${flag}`, true);
        return;
      }
      if (len - pos >= msgLen) {
        // Common case: the whole message is in this chunk; decode straight from it.
        const whole = chunk.subarray(pos, pos + msgLen);
        pos += msgLen;
        this._message(flag, whole);
        if (this._finished) return;
      } else {
        this._rxBody = Buffer.allocUnsafe(msgLen);
        this._rxBodyFilled = 0;
        this._rxFlag = flag;
      }
    }
  }

  /** @internal The client half-closed. */
  _end(): void {
    this._halfClosed = true;
    if (this._finished) return;
    if (this._rxBody !== undefined || this._rxHeadLen > 0) {
      this._fail(GrpcCode.Internal, 'grpc: client half-closed in the middle of a message (unexpected EOF)', true);
      return;
    }
    if (this._entry.kind === HandlerKind.Bidi) {
      if (this._onHalfClose !== undefined && (this._queue === undefined || this._queue.length === 0)) this._safely(this._onHalfClose);
      else this._halfClosePending = true;
    } else if (this._rxCount === 0) {
      this._fail(GrpcCode.Internal, 'grpc: client half-closed without sending the request message (EOF)', true);
    }
  }

  /** @internal The HTTP/2 stream is gone (after our status, or reset by the client, or connection lost). */
  _close(): void {
    if (this._closed) return;
    this._closed = true;
    this._clearTimer();
    if (!this._finished) {
      this._finished = true;
      this._cancelled = true;
      this._handled(GrpcCode.Canceled);
    }
    this._abortSignal();
    this._stream[kCall] = undefined;
    this._sess.activeCalls--;
    this._host.callClosed(this);
  }

  /** @internal Ready for trailers: all DATA has been handed to HTTP/2. */
  _wantTrailers(): void {
    const stream = this._stream;
    if (stream.destroyed || stream.closed) return;
    try {
      stream.sendTrailers(this._trailers);
    } catch {
      stream.destroy();
      return;
    }
    // Node sends trailers from setImmediate; ours runs after it, so the reset follows the trailers.
    if (!this._halfClosed) setImmediate(resetIfClientStillOpen, this);
  }

  /** @internal */
  _resetIfClientStillOpen(): void {
    const stream = this._stream;
    if (!this._halfClosed && !stream.destroyed && !stream.closed) stream.close(h2.NGHTTP2_NO_ERROR);
  }

  /**
   * @internal Ends the call without its handler: `sendStatus` false only when the stream is reset
   * instead. The handler's signal is aborted with the same status.
   */
  _cancel(code: GrpcCode, message: string, sendStatus: boolean): void {
    if (this._finished) return;
    this._cancelled = true;
    if (sendStatus) {
      this._fail(code, message, false);
    } else {
      this._finished = true;
      this._clearTimer();
      this._handled(code);
    }
    this._abortSignal(new EtcdError(code, message));
  }

  /** @internal The deadline passed. */
  _deadline(): void {
    this._timer = undefined;
    this._cancel(GrpcCode.DeadlineExceeded, DEADLINE_MESSAGE, true);
  }

  /** @internal The handler's unary answer. */
  _sendUnary(res: unknown): void {
    if (this._finished) return;
    const framed = this._frame(res, 'grpc: trying to send message larger than max');
    if (framed === undefined) return;
    this._sendFramed(framed);
  }

  private _sendFramed(framed: Uint8Array): void {
    const stream = this._stream;
    if (stream.destroyed || stream.closed) return; // 'close' accounts for it
    this._finished = true;
    this._handlerEnding = true;
    this._clearTimer();
    this._entry.stats.msgSent++;
    this._entry.stats.bytesSent += framed.length - FRAME_HEADER_BYTES;
    this._handled(GrpcCode.OK);
    this._sess.resetPingStrikes = true;
    this._headersSent = true;
    try {
      stream.respond(RESPONSE_HEADERS, RESPOND_WITH_TRAILERS);
      stream.end(framed);
    } catch {
      stream.destroy();
    }
    if (this._abort !== undefined) this._abortSignal();
  }

  /** @internal Any error thrown or rejected by the handler. */
  _failWith(err: unknown): void {
    if (!this._finished) this._handlerEnding = true;
    const e = toEtcdError(err);
    this._fail(e.code, e.message, true);
  }

  /**
   * A response message with its 5-byte gRPC prefix in one buffer: sized and written in place when the
   * descriptor offers sizeResponse/writeResponse, else encoded and copied. Undefined (and the call
   * failed) if encoding throws or the message is over maxSendMessageBytes.
   */
  private _frame(m: unknown, tooLargeText: string): Uint8Array | undefined {
    const desc = this._entry.desc;
    const maxSend = this._host.opts.maxSendMessageBytes;
    try {
      if (desc.sizeResponse !== undefined && desc.writeResponse !== undefined) {
        const size = desc.sizeResponse(m);
        if (size > maxSend) {
          this._fail(GrpcCode.ResourceExhausted, `${tooLargeText} (${size} vs. ${maxSend})`, true);
          return undefined;
        }
        const w = new ProtoWriter(FRAME_HEADER_BYTES + size);
        const b = w.buf;
        b[0] = 0;
        b[1] = size >>> 24;
        b[2] = (size >>> 16) & 255;
        b[3] = (size >>> 8) & 255;
        b[4] = size & 255;
        w.pos = FRAME_HEADER_BYTES;
        desc.writeResponse(m, w);
        return w.finish();
      }
      const body = desc.encodeResponse(m);
      if (body.length > maxSend) {
        this._fail(GrpcCode.ResourceExhausted, `${tooLargeText} (${body.length} vs. ${maxSend})`, true);
        return undefined;
      }
      return frameMessage(body);
    } catch (err) {
      this._fail(GrpcCode.Internal, `grpc: error while marshaling: ${errorText(err)}`, true);
      return undefined;
    }
  }

  /** Counts the call's end with its status code (grpc_server_handled_total, and its handling time if kept). */
  private _handled(code: GrpcCode): void {
    const stats = this._entry.stats;
    stats.handled[code]++;
    if (stats.handlingSeconds !== undefined) stats.handlingSeconds.observe((performance.now() - this._startedMs) / 1000);
  }

  private _fail(code: GrpcCode, message: string, abortHandler: boolean): void {
    if (this._finished) return;
    this._finished = true;
    this._clearTimer();
    this._handled(code);
    const stream = this._stream;
    if (!(stream.destroyed || stream.closed)) {
      this._sess.resetPingStrikes = true;
      if (this._headersSent) {
        this._trailers = { 'grpc-status': statusStrings[code], 'grpc-message': encodeGrpcMessage(message) };
        endQuietly(stream);
      } else {
        this._headersSent = true;
        respondTrailersOnly(stream, code, message, 200, this._halfClosed);
      }
    }
    if (abortHandler) this._abortSignal(new EtcdError(code, message));
  }

  private _message(flag: number, body: Buffer): void {
    const opts = this._host.opts;
    if (flag === 1) {
      if (!this._gzip) {
        this._fail(GrpcCode.Internal, 'grpc: compressed flag set with identity or empty encoding', true);
        return;
      }
      const maxRecv = opts.maxRecvMessageBytes;
      try {
        // Bounded inflate: a small compressed message must not expand past the receive limit.
        body = gunzipSync(body, { maxOutputLength: maxRecv + 1 });
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
          this._fail(GrpcCode.ResourceExhausted, `grpc: received message larger than max (${maxRecv + 1} vs. ${maxRecv})`, true);
        } else {
          this._fail(GrpcCode.Internal, `grpc: failed to decompress the received message ${errorText(err)}`, true);
        }
        return;
      }
      if (body.length > maxRecv) {
        this._fail(GrpcCode.ResourceExhausted, `grpc: received message larger than max (${body.length} vs. ${maxRecv})`, true);
        return;
      }
    }
    const entry = this._entry;
    this._rxCount++;
    entry.stats.msgReceived++;
    entry.stats.bytesReceived += body.length;
    if (entry.kind !== HandlerKind.Bidi && this._rxCount > 1) {
      this._fail(GrpcCode.Internal, 'grpc: more than one request message for a unary or server-streaming method', true);
      return;
    }
    this._requestBytes = body;
    let req: unknown;
    try {
      req = entry.desc.decodeRequest(body);
    } catch (err) {
      this._fail(GrpcCode.Internal, `grpc: error unmarshalling request: ${errorText(err)}`, true);
      return;
    }
    switch (entry.kind) {
      case HandlerKind.Unary:
        this._runUnary(req);
        break;
      case HandlerKind.ServerStream:
        this._runServerStream(req);
        break;
      case HandlerKind.Bidi:
        this._deliver(req, body);
        break;
    }
  }

  private _runUnary(req: unknown): void {
    let res: unknown;
    try {
      res = this._entry.unary!(req, this);
    } catch (err) {
      this._failWith(err);
      return;
    }
    if (res instanceof Promise) void awaitUnary(this, res);
    else if (res !== DEFERRED) this._sendUnary(res);
  }

  private _runServerStream(req: unknown): void {
    let ret: void | Promise<void>;
    try {
      ret = this._entry.serverStream!(req, this as ServerWriter<unknown>, this);
    } catch (err) {
      this._failWith(err);
      return;
    }
    if (ret instanceof Promise) void awaitStreaming(this, ret);
  }

  /** @internal Starts a bidi handler as soon as the headers arrive (before any message). */
  _runBidi(): void {
    let ret: void | Promise<void>;
    try {
      ret = this._entry.bidi!(this as BidiStream<unknown, unknown>, this);
    } catch (err) {
      this._failWith(err);
      return;
    }
    if (ret instanceof Promise) void awaitStreaming(this, ret);
  }

  private _deliver(req: unknown, body: Uint8Array): void {
    const fn = this._onMessage;
    if (fn !== undefined && (this._queue === undefined || this._queue.length === 0)) {
      try {
        fn(req);
      } catch (err) {
        this._failWith(err);
      }
      return;
    }
    // Each queued message is two entries: the decoded request and its bytes (requestBytes at delivery).
    const q = (this._queue ??= []);
    q.push(req, body);
    if (q.length >= 2 * this._host.opts.inboundQueueMessagesMax && !this._queuePaused) {
      this._queuePaused = true;
      this._stream.pause();
    }
  }

  private _flushQueue(): void {
    const q = this._queue!;
    while (q.length > 0 && this._onMessage !== undefined && !this._finished) {
      const m = q.shift();
      this._requestBytes = q.shift() as Uint8Array;
      try {
        this._onMessage(m);
      } catch (err) {
        this._failWith(err);
        return;
      }
    }
    if (q.length === 0) {
      if (this._queuePaused) {
        this._queuePaused = false;
        this._stream.resume();
      }
      if (this._halfClosePending && this._onHalfClose !== undefined && !this._finished) {
        this._halfClosePending = false;
        this._safely(this._onHalfClose);
      }
    }
  }

  private _safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this._failWith(err);
    }
  }

  private _clearTimer(): void {
    if (this._timer !== undefined) {
      clearTimeout(this._timer);
      this._timer = undefined;
    }
  }

  private _abortSignal(reason?: EtcdError): void {
    if (this._aborted) return;
    this._aborted = true;
    const byHandler = this._handlerEnding;
    if (this._abort === undefined && byHandler) return;
    const r = reason ?? new EtcdError(GrpcCode.Canceled, CANCELED_MESSAGE);
    if (!byHandler) this._cancelReason = r;
    if (this._abort !== undefined) this._abort.abort(r);
    const hooks = this._cancelHooks;
    this._cancelHooks = undefined;
    if (hooks === undefined || byHandler) return;
    for (const fn of hooks) {
      try {
        fn(r);
      } catch {
        // A hook's failure is its own; the call is over either way.
      }
    }
  }
}

// ---- shared listeners: `this` is the stream, the call hangs off it ----

function onStreamData(this: CallStream, chunk: Buffer): void {
  const call = this[kCall];
  if (call !== undefined) call._data(chunk);
}

function onStreamEnd(this: CallStream): void {
  const call = this[kCall];
  if (call !== undefined) call._end();
}

function onStreamClose(this: CallStream): void {
  const call = this[kCall];
  if (call !== undefined) call._close();
}

function onStreamWantTrailers(this: CallStream): void {
  const call = this[kCall];
  if (call !== undefined) call._wantTrailers();
  else if (!this.destroyed && !this.closed) this.sendTrailers(TRAILERS_OK);
}

function onDeadline(call: ServerCall): void {
  call._deadline();
}

function resetIfClientStillOpen(call: ServerCall): void {
  call._resetIfClientStillOpen();
}

async function awaitUnary(call: ServerCall, pending: Promise<unknown>): Promise<void> {
  let res: unknown;
  try {
    res = await pending;
  } catch (err) {
    call._failWith(err);
    return;
  }
  call._sendUnary(res);
}

async function awaitStreaming(call: ServerCall, pending: Promise<void>): Promise<void> {
  try {
    await pending;
  } catch (err) {
    call.end(err);
    return;
  }
  call.end();
}

function endQuietly(stream: GrpcStream): void {
  try {
    stream.end();
  } catch {
    stream.destroy();
  }
}

/** The CN of the peer certificate the TLS layer verified on `session`'s socket, or null. */
function verifiedCommonName(session: GrpcSession): string | null {
  const socket = (session.destroyed ? undefined : session.socket) as TLSSocket | undefined;
  if (socket === undefined || socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return null;
  const cn = socket.getPeerCertificate()?.subject?.CN as string | string[] | undefined;
  return typeof cn === 'string' ? cn : (cn?.[0] ?? null);
}

// A header sent several times arrives as an array: the first value counts.
function firstHeader(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' || v === undefined ? v : v[0];
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
