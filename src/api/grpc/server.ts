// A lean gRPC server on HTTP/2 (tetcd's own framing in api/h2, or node:http2): method registry, header
// validation, per-connection keepalive and ping policing, graceful/immediate shutdown, and per-method
// counters for metrics.
// Sockets come from outside (api/listener.ts sniffs HTTP/2 vs HTTP/1.1 on the client port).
import http2, { constants as h2, type Http2Server, type IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { H2Session, type H2SessionOptions } from '../h2/session.js';
import { GrpcCode } from '../../errors.js';
import type { ProtoWriter } from '../../proto/wire.js';
import { HandlerKind, ServerCall, respondTrailersOnly, type CallHost, type Deferred, type GrpcSession, type GrpcStream } from './call.js';
import { GRPC_CODE_COUNT, isGrpcContentType, methodType, parseGrpcTimeoutMs, type GrpcMethodType } from './protocol.js';

export { ServerCall, DEFERRED, type Deferred } from './call.js';
export type { Metadata } from './metadata.js';

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
}

/** Options; defaults are etcd 3.4's. */
export interface GrpcServerOptions {
  /** Largest request message; etcd: --max-request-bytes + 512 KiB. Default 2 MiB. */
  maxRecvMessageBytes?: number;
  /** Largest response message; etcd: MaxInt32. */
  maxSendMessageBytes?: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; etcd --max-concurrent-streams, default 2^32-1. */
  maxConcurrentStreams?: number;
  /** Ping a connection idle this long (etcd --grpc-keepalive-interval, 2 h); 0 = never. */
  keepaliveIntervalMs?: number;
  /** Close a connection whose keepalive ping is not answered within this (etcd --grpc-keepalive-timeout, 20 s). */
  keepaliveTimeoutMs?: number;
  /** Clients may ping at most this often (etcd --grpc-keepalive-min-time, 5 s); 0 = no policing. */
  keepaliveMinTimeMs?: number;
  /** Streaming write() returns false above this many queued bytes. Default 1 MiB. */
  sendQueueBytesHigh?: number;
  /** A streaming call whose queue passes this is cancelled (RESOURCE_EXHAUSTED). Default 64 MiB. */
  sendQueueBytesMax?: number;
  /** Bidi messages queued before the handler set onMessage; beyond it the stream is paused. Default 64. */
  inboundQueueMessagesMax?: number;
  /** Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). Default 1 MiB. */
  streamWindowBytes?: number;
  /** Per-connection receive window. Default 16 MiB. */
  connectionWindowBytes?: number;
  /** Node's cap on one session's buffered memory (maxSessionMemory). Default 128 MiB. */
  sessionMemoryMaxMb?: number;
  /**
   * Who speaks HTTP/2: 'node' (node:http2, nghttp2) or 'raw' (api/h2: frames parsed and written on the
   * socket by tetcd itself, one object per stream). Default 'raw': it measured 2× node:http2's put rate
   * (bench/RESULTS.md, "The raw HTTP/2 engine").
   */
  engine?: GrpcEngine;
}

/** HTTP/2 implementations the server can run on. */
export type GrpcEngine = 'node' | 'raw';
export const GRPC_ENGINES: readonly GrpcEngine[] = ['node', 'raw'];

/** Options after defaults. */
export type ResolvedServerOptions = Readonly<Required<GrpcServerOptions>>;

const MAX_UINT32 = 4294967295;
/** Node's default writable high-water mark of an HTTP/2 stream. */
/** Bytes a session may write between two client pings without that counting as data sent (ping acks). */
const PING_ACK_SLACK_BYTES = 64;
const STREAM_HIGH_WATER_BYTES = 16 * 1024;
/** Largest request header list the raw engine accepts (node:http2's default maxHeaderListSize is 64 KiB). */
const HEADER_LIST_BYTES_MAX = 65535;
const defaults: ResolvedServerOptions = {
  maxRecvMessageBytes: 1572864 + 512 * 1024,
  maxSendMessageBytes: 2147483647,
  maxConcurrentStreams: MAX_UINT32,
  keepaliveIntervalMs: 2 * 3600_000,
  keepaliveTimeoutMs: 20_000,
  keepaliveMinTimeMs: 5_000,
  sendQueueBytesHigh: 1 << 20,
  sendQueueBytesMax: 64 << 20,
  inboundQueueMessagesMax: 64,
  streamWindowBytes: 1 << 20,
  connectionWindowBytes: 16 << 20,
  sessionMemoryMaxMb: 128,
  engine: 'raw',
};

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

const kSession = Symbol('tetcd.grpcSession');
type StatefulSession = GrpcSession & { [kSession]?: SessionState };

/** grpc-go allows this many policy-violating pings before GOAWAY(ENHANCE_YOUR_CALM). */
const PING_STRIKES_MAX = 2;
/** Without active streams a client may ping only this rarely (grpc-go: defaultPingTimeout). */
const IDLE_PING_MIN_MS = 2 * 3600_000;
const SERVER_STOPPED_MESSAGE = 'grpc: the server has been stopped';

/** Shutdown choices: graceful lets unary calls finish (up to timeoutMs); streams end with UNAVAILABLE. */
export interface ShutdownOptions {
  graceful?: boolean;
  /** How long in-flight unary calls may take after GOAWAY before they are cut. Default 10 s. */
  timeoutMs?: number;
}

/**
 * The gRPC server. Register methods, then hand it connections (api/listener.ts does).
 *
 *   const server = new GrpcServer({ maxRecvMessageBytes: cfg.maxRequestBytes + 512 * 1024 });
 *   server.unary(KV.methods.Put, (req, call) => kv.put(req, call));
 *   server.bidi(Watch.methods.Watch, (stream, call) => { stream.onMessage = (req) => ...; });
 *   const listener = await ClientListener.listen({ url: 'http://127.0.0.1:2379', grpc: server });
 *   ...
 *   await server.shutdown({ graceful: true, timeoutMs: 5000 });
 *   await listener.close();
 */
export class GrpcServer implements CallHost {
  readonly opts: ResolvedServerOptions;
  /** Per-method counters, in registration order. */
  readonly stats: GrpcMethodStats[] = [];
  /** The node:http2 server of engine 'node' (never listens itself; connections are handed in). */
  private readonly http2: Http2Server | undefined = undefined;

  private readonly methods = new Map<string, MethodEntry>();
  private readonly services = new Set<string>();
  private readonly calls = new Set<ServerCall>();
  private readonly sessions = new Set<SessionState>();
  private state: 'serving' | 'draining' | 'stopped' = 'serving';
  /** What the raw engine's sessions announce and enforce (engine 'raw'). */
  private readonly rawOptions: H2SessionOptions | undefined = undefined;
  private idleWaiter: (() => void) | undefined = undefined;
  private drained: Promise<void> = Promise.resolve();

  constructor(options: GrpcServerOptions = {}) {
    const o: Required<GrpcServerOptions> = { ...defaults };
    for (const [k, v] of Object.entries(options) as [keyof GrpcServerOptions, never][]) {
      if (v !== undefined) o[k] = v;
    }
    for (const [k, v] of Object.entries(o)) {
      if (k === 'engine') {
        if (!GRPC_ENGINES.includes(v as GrpcEngine)) throw new RangeError(`GrpcServer: engine must be one of ${GRPC_ENGINES.join(', ')}, got ${String(v)}`);
        continue;
      }
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`GrpcServer: option ${k} must be a non-negative number, got ${v}`);
    }
    if (o.maxRecvMessageBytes > 0xffffffff) throw new RangeError('GrpcServer: maxRecvMessageBytes must fit 32 bits');
    if (o.sendQueueBytesHigh > o.sendQueueBytesMax) throw new RangeError('GrpcServer: sendQueueBytesHigh must not exceed sendQueueBytesMax');
    // drained() relies on the stream's 'drain', which Node emits only past its own 16 KiB high-water mark.
    if (o.sendQueueBytesHigh < STREAM_HIGH_WATER_BYTES) throw new RangeError(`GrpcServer: sendQueueBytesHigh must be at least ${STREAM_HIGH_WATER_BYTES}`);
    if (o.inboundQueueMessagesMax < 1) throw new RangeError('GrpcServer: inboundQueueMessagesMax must be at least 1');
    this.opts = Object.freeze(o);
    if (o.engine === 'raw') {
      this.rawOptions = {
        maxConcurrentStreams: o.maxConcurrentStreams,
        streamWindowBytes: o.streamWindowBytes,
        connectionWindowBytes: o.connectionWindowBytes,
        sessionMemoryBytesMax: o.sessionMemoryMaxMb * 1024 * 1024,
        headerListBytesMax: HEADER_LIST_BYTES_MAX,
      };
      return;
    }
    this.http2 = http2.createServer({
      settings: {
        maxConcurrentStreams: Math.min(o.maxConcurrentStreams, MAX_UINT32),
        initialWindowSize: Math.min(o.streamWindowBytes, 2147483647),
        enablePush: false,
      },
      maxSessionMemory: o.sessionMemoryMaxMb,
    });
    this.http2.on('session', this.onSession);
    this.http2.on('stream', this.onStream);
    this.http2.on('sessionError', noop);
  }

  /** Registers a unary method. */
  unary<Req, ResInit>(desc: MethodDescriptor<Req, ResInit>, handler: UnaryHandler<Req, ResInit>): void {
    this.register(desc as MethodDescriptor<unknown, unknown>, HandlerKind.Unary, handler as UnaryHandler<unknown, unknown>, undefined, undefined);
  }

  /** Registers a server-streaming method. */
  serverStream<Req, ResInit>(desc: MethodDescriptor<Req, ResInit>, handler: ServerStreamHandler<Req, ResInit>): void {
    this.register(desc as MethodDescriptor<unknown, unknown>, HandlerKind.ServerStream, undefined, handler as ServerStreamHandler<unknown, unknown>, undefined);
  }

  /** Registers a bidirectional-streaming method. */
  bidi<Req, ResInit>(desc: MethodDescriptor<Req, ResInit>, handler: BidiHandler<Req, ResInit>): void {
    this.register(desc as MethodDescriptor<unknown, unknown>, HandlerKind.Bidi, undefined, undefined, handler as unknown as BidiHandler<unknown, unknown>);
  }

  /** Serves one connection (a socket whose next bytes are the HTTP/2 client preface, or an h2 TLS socket). */
  handleConnection(socket: Duplex): void {
    if (this.state !== 'serving') {
      socket.destroy();
      return;
    }
    if (this.http2 !== undefined) {
      this.http2.emit('connection', socket);
      return;
    }
    const session = new H2Session(socket as Socket, this.rawOptions!, this.onStream);
    this.onSession(session);
    session.start();
  }

  /** Number of calls whose stream is still open. */
  get activeCalls(): number {
    return this.calls.size;
  }

  /** Number of open connections. */
  get connections(): number {
    return this.sessions.size;
  }

  /**
   * Stops serving. Graceful: GOAWAY to every connection, streaming calls end with UNAVAILABLE, unary
   * calls may finish until timeoutMs, then everything left is cut. Immediate: everything is cut now.
   */
  async shutdown(options: ShutdownOptions = {}): Promise<void> {
    const graceful = options.graceful ?? true;
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (this.state === 'stopped') return;
    if (graceful && this.state === 'draining') {
      await this.drained; // a second graceful request waits for the first
      return;
    }
    if (graceful && this.state === 'serving') {
      this.state = 'draining';
      let drainedNow!: () => void;
      this.drained = new Promise<void>((resolve) => { drainedNow = resolve; });
      for (const s of this.sessions) {
        if (!s.session.closed && !s.session.destroyed) s.session.close();
      }
      for (const call of [...this.calls]) {
        if (this.entryOf(call).kind !== HandlerKind.Unary) call._cancel(GrpcCode.Unavailable, SERVER_STOPPED_MESSAGE, true);
      }
      if (this.calls.size > 0 || this.sessions.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          this.idleWaiter = resolve;
          timer = setTimeout(resolve, timeoutMs);
        });
        clearTimeout(timer);
        this.idleWaiter = undefined;
      }
      this.stop();
      drainedNow();
      return;
    }
    this.stop();
  }

  private stop(): void {
    this.state = 'stopped';
    for (const call of [...this.calls]) call._cancel(GrpcCode.Unavailable, SERVER_STOPPED_MESSAGE, false);
    for (const s of [...this.sessions]) this.dropSession(s, true);
  }

  /** @internal */
  callClosed(call: ServerCall): void {
    this.calls.delete(call);
    this.maybeIdle();
  }

  private entryOf(call: ServerCall): MethodEntry {
    const e = this.methods.get(call.method);
    if (e === undefined) throw new Error(`assertion failed: call on unregistered method ${call.method}`);
    return e;
  }

  private register(desc: MethodDescriptor<unknown, unknown>, kind: HandlerKind,
    unary: UnaryHandler<unknown, unknown> | undefined, serverStream: ServerStreamHandler<unknown, unknown> | undefined,
    bidi: BidiHandler<unknown, unknown> | undefined): void {
    const path = desc.path;
    const slash = path.lastIndexOf('/');
    if (path[0] !== '/' || slash <= 1 || slash === path.length - 1) throw new Error(`GrpcServer: bad method path ${path}`);
    const wantRequestStream = kind === HandlerKind.Bidi;
    const wantResponseStream = kind !== HandlerKind.Unary;
    if (desc.requestStream !== wantRequestStream || desc.responseStream !== wantResponseStream) {
      throw new Error(`GrpcServer: ${path} is ${methodType(desc.requestStream, desc.responseStream)}, not registrable as ${methodType(wantRequestStream, wantResponseStream)}`);
    }
    if (this.methods.has(path)) throw new Error(`GrpcServer: method ${path} registered twice`);
    const service = path.slice(1, slash);
    const stats: GrpcMethodStats = {
      service, method: path.slice(slash + 1), type: methodType(desc.requestStream, desc.responseStream),
      started: 0, handled: new Array<number>(GRPC_CODE_COUNT).fill(0), msgReceived: 0, msgSent: 0,
    };
    this.methods.set(path, { desc, kind, unary, serverStream, bidi, stats });
    this.services.add(service);
    this.stats.push(stats);
  }

  private readonly onSession = (session: GrpcSession): void => {
    const s: SessionState = {
      session, activeCalls: 0, activity: 0, activitySeen: 0, resetPingStrikes: false, pingStrikes: 0, bytesWrittenAtLastPing: 0,
      lastPingAtMs: 0, lastStreamId: 0, calmed: false, keepaliveTimer: undefined, pingTimeoutTimer: undefined,
      remoteAddress: session.socket?.remoteAddress ?? '', remotePort: session.socket?.remotePort ?? 0, certCommonName: undefined,
    };
    (session as StatefulSession)[kSession] = s;
    this.sessions.add(s);
    session.on('error', noop);
    session.on('close', () => this.dropSession(s, false));
    if (this.opts.keepaliveMinTimeMs > 0) session.on('ping', () => this.onClientPing(s));
    if (this.opts.keepaliveIntervalMs > 0 && this.opts.keepaliveTimeoutMs > 0) this.armKeepalive(s);
    try {
      if (this.opts.connectionWindowBytes > 65535) session.setLocalWindowSize(Math.min(this.opts.connectionWindowBytes, 2147483647));
    } catch {
      // The connection died while being set up; 'close' cleans up.
    }
    if (this.state !== 'serving') session.close();
  };

  private readonly onStream = (stream: GrpcStream, headers: IncomingHttpHeaders, flags: number): void => {
    stream.on('error', noop);
    const sess = (stream.session as StatefulSession | undefined)?.[kSession];
    if (sess === undefined || this.state !== 'serving') {
      stream.close(h2.NGHTTP2_REFUSED_STREAM);
      return;
    }
    sess.activity++;
    if (stream.id !== undefined && stream.id > sess.lastStreamId) sess.lastStreamId = stream.id;
    const clientDone = (flags & h2.NGHTTP2_FLAG_END_STREAM) !== 0;
    const contentType = headers['content-type'];
    if (!isGrpcContentType(contentType)) {
      respondTrailersOnly(stream, GrpcCode.InvalidArgument, `invalid gRPC request content-type "${contentType ?? ''}"`, 415, clientDone);
      return;
    }
    const httpMethod = headers[':method'];
    if (httpMethod !== 'POST') {
      respondTrailersOnly(stream, GrpcCode.Internal, `Received a HEADERS frame with :method "${httpMethod ?? ''}" which should be POST`, 405, clientDone);
      return;
    }
    const path = headers[':path'] ?? '';
    const entry = this.methods.get(path);
    if (entry === undefined) {
      respondTrailersOnly(stream, GrpcCode.Unimplemented, this.unknownMethodText(path), 200, clientDone);
      return;
    }
    let timeoutMs = -1;
    const timeout = headerText(headers['grpc-timeout']);
    if (timeout !== undefined) {
      try {
        timeoutMs = parseGrpcTimeoutMs(timeout);
      } catch (err) {
        respondTrailersOnly(stream, GrpcCode.Internal, `malformed grpc-timeout: ${(err as Error).message}`, 400, clientDone);
        return;
      }
    }
    let gzip = false;
    const encoding = headerText(headers['grpc-encoding']);
    if (encoding !== undefined && encoding !== 'identity') {
      if (encoding !== 'gzip') {
        respondTrailersOnly(stream, GrpcCode.Unimplemented, `grpc: Decompressor is not installed for grpc-encoding "${encoding}"`, 200, clientDone);
        return;
      }
      gzip = true;
    }
    const call = new ServerCall(this, sess, stream, headers, entry, path, timeoutMs, gzip);
    this.calls.add(call);
    if (timeoutMs === 0) {
      call._deadline();
      return;
    }
    if (entry.kind === HandlerKind.Bidi) call._runBidi();
  };

  /** grpc-go's texts for a path it cannot route. */
  private unknownMethodText(path: string): string {
    const sm = path[0] === '/' ? path.slice(1) : path;
    const pos = sm.lastIndexOf('/');
    if (pos < 0) return `malformed method name: "${path}"`;
    const service = sm.slice(0, pos);
    if (!this.services.has(service)) return `unknown service ${service}`;
    return `unknown method ${sm.slice(pos + 1)} for service ${service}`;
  }

  // grpc-go's keepalive enforcement: a ping is a strike when it comes sooner than keepaliveMinTimeMs
  // after the previous one (or than 2 h when no call is open) and we have sent nothing since; the
  // third strike earns GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings") and the connection is closed.
  private onClientPing(s: SessionState): void {
    const now = Date.now();
    const last = s.lastPingAtMs;
    s.lastPingAtMs = now;
    s.activity++;
    // Data sent since the last ping forgives it (grpc-go resets strikes when it writes): a client
    // reading a large response sends BDP-estimation pings while its DATA frames arrive. More than a
    // few bytes must have gone out, since answering the previous ping wrote 17 bytes by itself.
    const written = s.session.socket?.bytesWritten ?? 0;
    const sentData = written - s.bytesWrittenAtLastPing > PING_ACK_SLACK_BYTES;
    s.bytesWrittenAtLastPing = written;
    if (s.resetPingStrikes || sentData) {
      s.resetPingStrikes = false;
      s.pingStrikes = 0;
      return;
    }
    const minGapMs = s.activeCalls < 1 ? IDLE_PING_MIN_MS : this.opts.keepaliveMinTimeMs;
    if (last + minGapMs > now) s.pingStrikes++;
    if (s.pingStrikes > PING_STRIKES_MAX) {
      const session = s.session;
      if (session.destroyed || s.calmed) return;
      s.calmed = true;
      try {
        // The last stream we saw: the client must not take a call we ran for one it may retry.
        session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM, s.lastStreamId, Buffer.from('too_many_pings'));
      } catch {
        // already closing
      }
      // Let the GOAWAY reach the socket before the connection is torn down.
      setImmediate(() => this.dropSession(s, true));
    }
  }

  private armKeepalive(s: SessionState): void {
    s.keepaliveTimer = setTimeout(() => this.keepaliveTick(s), this.opts.keepaliveIntervalMs);
    s.keepaliveTimer.unref();
  }

  // Every keepaliveIntervalMs: if nothing arrived since the last tick, ping; no ack within
  // keepaliveTimeoutMs closes the connection (grpc-go's server keepalive).
  private keepaliveTick(s: SessionState): void {
    s.keepaliveTimer = undefined;
    const session = s.session;
    if (session.destroyed || session.closed) return;
    if (s.activity !== s.activitySeen) {
      s.activitySeen = s.activity;
      this.armKeepalive(s);
      return;
    }
    s.pingTimeoutTimer = setTimeout(() => this.dropSession(s, true), this.opts.keepaliveTimeoutMs);
    s.pingTimeoutTimer.unref();
    try {
      session.ping((err) => {
        if (s.pingTimeoutTimer !== undefined) clearTimeout(s.pingTimeoutTimer);
        s.pingTimeoutTimer = undefined;
        if (err) return; // the session is going away; 'close' cleans up
        s.activity++;
        s.activitySeen = s.activity;
        this.armKeepalive(s);
      });
    } catch {
      this.dropSession(s, true);
    }
  }

  private dropSession(s: SessionState, destroy: boolean): void {
    if (s.keepaliveTimer !== undefined) clearTimeout(s.keepaliveTimer);
    if (s.pingTimeoutTimer !== undefined) clearTimeout(s.pingTimeoutTimer);
    s.keepaliveTimer = undefined;
    s.pingTimeoutTimer = undefined;
    if (destroy && !s.session.destroyed) s.session.destroy();
    if (this.sessions.delete(s)) this.maybeIdle();
  }

  private maybeIdle(): void {
    if (this.idleWaiter !== undefined && this.calls.size === 0 && this.sessions.size === 0) this.idleWaiter();
  }
}

function noop(): void {}

// Node gives duplicated headers as arrays (or joined); a protocol header is meant once: use the first.
function headerText(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' || v === undefined ? v : v[0];
}
