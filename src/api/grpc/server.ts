// A lean gRPC server on HTTP/2 (tetcd's own framing in api/h2, or node:http2): method registry, header
// validation, per-connection keepalive and ping policing, graceful/immediate shutdown, and per-method
// counters for metrics.
// Sockets come from outside (api/listener.ts sniffs HTTP/2 vs HTTP/1.1 on the client port).
import { HistogramCounts, GRPC_HANDLING_SECONDS_BUCKETS } from '../../metrics.js';
import http2, { constants as h2, type Http2Server, type IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { H2Session, type H2SessionOptions } from '../h2/session.js';
import { LocalSession } from './local.js';
import { GrpcCode } from '../../errors.js';
import {
  HandlerKind,
  ServerCall,
  respondTrailersOnly,
  type BidiHandler,
  type CallHost,
  type GrpcMethodStats,
  type GrpcSession,
  type GrpcStream,
  type MethodDescriptor,
  type MethodEntry,
  type ServerStreamHandler,
  type SessionState,
  type UnaryHandler,
} from './call.js';
import { GRPC_ENGINES, type GrpcEngine, type GrpcServerOptions, type ResolvedServerOptions } from './options.js';
import { GRPC_CODE_COUNT, isGrpcContentType, methodType, parseGrpcTimeoutMs } from './protocol.js';

export { ServerCall, DEFERRED, type Deferred } from './call.js';
export type {
  BidiHandler,
  BidiStream,
  GrpcMethodStats,
  MethodDescriptor,
  ServerStreamHandler,
  ServerWriter,
  UnaryHandler,
} from './call.js';
export { GRPC_ENGINES, type GrpcEngine, type GrpcServerOptions, type ResolvedServerOptions } from './options.js';
export type { Metadata } from './metadata.js';

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
  /** Keep grpc_server_handling_seconds per method (--metrics extensive); see keepHandlingTimes(). */
  private handlingHistograms = false;
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
  /** The connection of calls that do not arrive over HTTP/2 (handleLocalStream), made on first use. */
  private local: LocalSession | undefined = undefined;

  constructor(options: GrpcServerOptions = {}) {
    const o: Required<GrpcServerOptions> = { ...defaults };
    for (const [k, v] of Object.entries(options) as [keyof GrpcServerOptions, never][]) {
      if (v !== undefined) o[k] = v;
    }
    for (const [k, v] of Object.entries(o)) {
      if (k === 'engine') {
        if (!GRPC_ENGINES.includes(v as GrpcEngine))
          throw new RangeError(`GrpcServer: engine must be one of ${GRPC_ENGINES.join(', ')}, got ${String(v)}`);
        continue;
      }
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
        throw new RangeError(`GrpcServer: option ${k} must be a non-negative number, got ${v}`);
    }
    if (o.maxRecvMessageBytes > 0xffffffff) throw new RangeError('GrpcServer: maxRecvMessageBytes must fit 32 bits');
    if (o.sendQueueBytesHigh > o.sendQueueBytesMax)
      throw new RangeError('GrpcServer: sendQueueBytesHigh must not exceed sendQueueBytesMax');
    // drained() relies on the stream's 'drain', which Node emits only past its own 16 KiB high-water mark.
    if (o.sendQueueBytesHigh < STREAM_HIGH_WATER_BYTES)
      throw new RangeError(`GrpcServer: sendQueueBytesHigh must be at least ${STREAM_HIGH_WATER_BYTES}`);
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

  /** Keeps each method's handling-time histogram from now on (etcd's --metrics extensive). */
  keepHandlingTimes(): void {
    this.handlingHistograms = true;
    for (const st of this.stats) st.handlingSeconds ??= new HistogramCounts(GRPC_HANDLING_SECONDS_BUCKETS);
  }

  /** Registers a unary method. */
  unary<Req, ResInit>(desc: MethodDescriptor<Req, ResInit>, handler: UnaryHandler<Req, ResInit>): void {
    this.register(
      desc as MethodDescriptor<unknown, unknown>,
      HandlerKind.Unary,
      handler as UnaryHandler<unknown, unknown>,
      undefined,
      undefined,
    );
  }

  /** Registers a server-streaming method. */
  serverStream<Req, ResInit>(desc: MethodDescriptor<Req, ResInit>, handler: ServerStreamHandler<Req, ResInit>): void {
    this.register(
      desc as MethodDescriptor<unknown, unknown>,
      HandlerKind.ServerStream,
      undefined,
      handler as ServerStreamHandler<unknown, unknown>,
      undefined,
    );
  }

  /** Registers a bidirectional-streaming method. */
  bidi<Req, ResInit>(desc: MethodDescriptor<Req, ResInit>, handler: BidiHandler<Req, ResInit>): void {
    this.register(
      desc as MethodDescriptor<unknown, unknown>,
      HandlerKind.Bidi,
      undefined,
      undefined,
      handler as unknown as BidiHandler<unknown, unknown>,
    );
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

  /**
   * The connection that streams given to handleLocalStream must name as their `session` (one per server;
   * a new one after the previous was closed).
   */
  localSession(): GrpcSession {
    if (this.local === undefined || this.local.closed) {
      this.local = new LocalSession();
      this.onSession(this.local);
    }
    return this.local;
  }

  /**
   * Serves one call that did not arrive over HTTP/2 (the JSON gateway, api/gateway): `stream` behaves as
   * an HTTP/2 stream of localSession() carrying gRPC-framed messages both ways, `headers` as its request
   * headers (`:method`, `:path`, `content-type`, metadata). Same method table, checks and counters as a
   * call over HTTP/2.
   */
  handleLocalStream(stream: GrpcStream, headers: IncomingHttpHeaders, clientDone: boolean): void {
    this.onStream(stream, headers, clientDone ? h2.NGHTTP2_FLAG_END_STREAM : 0);
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
      this.drained = new Promise<void>((resolve) => {
        drainedNow = resolve;
      });
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

  private register(
    desc: MethodDescriptor<unknown, unknown>,
    kind: HandlerKind,
    unary: UnaryHandler<unknown, unknown> | undefined,
    serverStream: ServerStreamHandler<unknown, unknown> | undefined,
    bidi: BidiHandler<unknown, unknown> | undefined,
  ): void {
    const path = desc.path;
    const slash = path.lastIndexOf('/');
    if (path[0] !== '/' || slash <= 1 || slash === path.length - 1) throw new Error(`GrpcServer: bad method path ${path}`);
    const wantRequestStream = kind === HandlerKind.Bidi;
    const wantResponseStream = kind !== HandlerKind.Unary;
    if (desc.requestStream !== wantRequestStream || desc.responseStream !== wantResponseStream) {
      throw new Error(
        `GrpcServer: ${path} is ${methodType(desc.requestStream, desc.responseStream)}, not registrable as ${methodType(wantRequestStream, wantResponseStream)}`,
      );
    }
    if (this.methods.has(path)) throw new Error(`GrpcServer: method ${path} registered twice`);
    const service = path.slice(1, slash);
    const stats: GrpcMethodStats = {
      service,
      method: path.slice(slash + 1),
      type: methodType(desc.requestStream, desc.responseStream),
      started: 0,
      handled: new Array<number>(GRPC_CODE_COUNT).fill(0),
      msgReceived: 0,
      msgSent: 0,
      bytesReceived: 0,
      bytesSent: 0,
      handlingSeconds: this.handlingHistograms ? new HistogramCounts(GRPC_HANDLING_SECONDS_BUCKETS) : undefined,
    };
    this.methods.set(path, { desc, kind, unary, serverStream, bidi, stats });
    this.services.add(service);
    this.stats.push(stats);
  }

  private readonly onSession = (session: GrpcSession): void => {
    const s: SessionState = {
      session,
      activeCalls: 0,
      activity: 0,
      activitySeen: 0,
      resetPingStrikes: false,
      pingStrikes: 0,
      bytesWrittenAtLastPing: 0,
      lastPingAtMs: 0,
      lastStreamId: 0,
      calmed: false,
      keepaliveTimer: undefined,
      pingTimeoutTimer: undefined,
      remoteAddress: session.socket?.remoteAddress ?? '',
      remotePort: session.socket?.remotePort ?? 0,
      certCommonName: undefined,
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
      respondTrailersOnly(
        stream,
        GrpcCode.Internal,
        `Received a HEADERS frame with :method "${httpMethod ?? ''}" which should be POST`,
        405,
        clientDone,
      );
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
        respondTrailersOnly(
          stream,
          GrpcCode.Unimplemented,
          `grpc: Decompressor is not installed for grpc-encoding "${encoding}"`,
          200,
          clientDone,
        );
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
