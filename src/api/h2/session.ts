// The server side of HTTP/2 (RFC 9113) on a bare socket, for the gRPC server's 'raw' engine: frames are
// parsed straight from the socket's chunks and written into one output buffer per connection, flushed once
// per tick; a stream is one plain object with listener slots, not a Duplex. It implements what gRPC over
// HTTP/2 uses (HEADERS/CONTINUATION, DATA with flow control both ways, SETTINGS, PING, RST_STREAM, GOAWAY)
// and answers everything else as the RFC says; server push and priorities are not offered.
//
// The session and stream objects expose the part of node:http2's ServerHttp2Session/ServerHttp2Stream
// API that api/grpc uses, with the same meaning, so api/grpc/call.ts drives either engine:
//
//   const session = new H2Session(socket, { maxConcurrentStreams, streamWindowBytes, ... }, onStream);
//   session.on('close', ...); session.start();
//   function onStream(stream, headers, flags) {
//     stream.on('data', ...); stream.on('end', ...); stream.on('close', ...);
//     stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
//     stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
//     stream.end(framedResponse);
//   }
import type { Socket } from 'node:net';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { HpackDecoder, HpackError, encodeStatelessBlock } from './hpack.js';
import {
  PREFACE,
  FRAME_HEADER_BYTES,
  T_DATA,
  T_HEADERS,
  T_PRIORITY,
  T_RST_STREAM,
  T_SETTINGS,
  T_PUSH_PROMISE,
  T_PING,
  T_GOAWAY,
  T_WINDOW_UPDATE,
  T_CONTINUATION,
  F_END_STREAM,
  F_ACK,
  F_END_HEADERS,
  F_PADDED,
  F_PRIORITY,
  S_HEADER_TABLE_SIZE,
  S_ENABLE_PUSH,
  S_MAX_CONCURRENT_STREAMS,
  S_INITIAL_WINDOW_SIZE,
  S_MAX_FRAME_SIZE,
  S_MAX_HEADER_LIST_SIZE,
  H2Error,
} from './frames.js';

/** SETTINGS_MAX_FRAME_SIZE we accept (the RFC's default; we do not announce more). */
const RECV_FRAME_BYTES_MAX = 16_384;
const DEFAULT_WINDOW_BYTES = 65_535;
const WINDOW_MAX = 0x7fffffff;
/** HPACK dynamic table size we allow the client (the RFC's default; not announced). */
const HEADER_TABLE_BYTES = 4096;
/** Largest header block (HEADERS + CONTINUATIONs) we decode; beyond it the connection is closed. */
const HEADER_BLOCK_BYTES_MAX = 256 * 1024;
/**
 * CONTINUATION frames one header block may take: a block at the 256 KiB limit in frames of the minimum
 * size needs 16; a flood of tiny or empty ones (CVE-2024-27316's kind) is cut here.
 */
const CONTINUATIONS_MAX = 64;
/** Output staging buffer; a flush hands the filled part to the socket and the rest is reused. */
const OUT_BUFFER_BYTES = 16 * 1024;
/** Payloads at least this large go to the socket as they are, not copied into the staging buffer. */
const OUT_COPY_BYTES_MAX = 2048;
/** Queued bytes above which a stream's write() returns false (node:http2's high-water mark). */
const STREAM_HIGH_WATER_BYTES = 16 * 1024;
/** Above this much unsent socket data, DATA frames wait (flow control still applies below it). */
const SOCKET_HIGH_WATER_BYTES = 1 << 20;
/** Pings of ours awaiting an ack (node:http2's maxOutstandingPings). */
const PINGS_OUTSTANDING_MAX = 10;
/** Memory counted per open stream against the session's limit, besides its buffered bytes. */
const STREAM_OVERHEAD_BYTES = 1024;
/** Streams closed while the client was still sending whose late frames are ignored, not protocol errors. */
const RECENTLY_CLOSED_MAX = 1024;
/** Per-entry overhead of a header list size (RFC 9113 §6.5.2). */
const HEADER_ENTRY_OVERHEAD = 32;

/** What the server announces and enforces. */
export interface H2SessionOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: client streams beyond it are refused (REFUSED_STREAM). */
  maxConcurrentStreams: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE: how much a client may send on a stream before we read it. */
  streamWindowBytes: number;
  /** The connection's receive window, opened right after the preface. */
  connectionWindowBytes: number;
  /** Buffered bytes (queued output, paused input, per-stream overhead) beyond which new streams are refused. */
  sessionMemoryBytesMax: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: a larger request header list is refused (ENHANCE_YOUR_CALM). */
  headerListBytesMax: number;
}

/** Called for each new client stream whose headers are valid HTTP/2; flags has END_STREAM (1) if no body follows. */
export type H2StreamHandler = (stream: H2Stream, headers: IncomingHttpHeaders, flags: number) => void;

type Listener = (this: H2Stream, arg?: unknown) => void;
type SessionListener = (arg?: unknown) => void;
type Slot = Listener | Listener[] | undefined;
type PingCallback = (err: Error | null, durationMs: number, payload: Buffer) => void;

interface PendingPing {
  payload: Buffer;
  sentAt: bigint;
  cb: PingCallback;
}

/** Frozen header objects (the gRPC layer's shared response headers and OK trailers) encode once. */
const blockCache = new WeakMap<object, Buffer>();
/** Request headers node:http2 keeps only the first of when repeated; others are joined (cookie with '; '). */
const SINGLE_VALUE = new Set([
  'content-type',
  'content-length',
  'user-agent',
  'authorization',
  'proxy-authorization',
  'referer',
  'host',
  'from',
  'if-modified-since',
  'if-unmodified-since',
  'max-forwards',
  'age',
  'etag',
  'expires',
  'last-modified',
  'location',
  'retry-after',
  'server',
  'content-md5',
  'content-encoding',
  'content-language',
  'content-location',
  'content-range',
  'te',
  'grpc-timeout',
  'grpc-encoding',
  'grpc-accept-encoding',
]);
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function headerBlock(headers: OutgoingHttpHeaders): Buffer {
  const cached = blockCache.get(headers);
  if (cached !== undefined) return cached;
  const pairs: [string, string][] = [];
  const status = headers[':status'];
  if (status !== undefined) pairs.push([':status', String(status)]);
  for (const name of Object.keys(headers)) {
    if (name === ':status') continue;
    const v = headers[name];
    if (v === undefined) continue;
    const lower = name.toLowerCase();
    if (Array.isArray(v)) for (const one of v) pairs.push([lower, String(one)]);
    else pairs.push([lower, String(v)]);
  }
  const block = Buffer.from(encodeStatelessBlock(pairs));
  if (Object.isFrozen(headers)) blockCache.set(headers, block);
  return block;
}

function emit(slot: Slot, stream: H2Stream, arg?: unknown): void {
  if (slot === undefined) return;
  if (typeof slot === 'function') {
    slot.call(stream, arg);
    return;
  }
  for (const fn of slot.slice()) fn.call(stream, arg);
}

function addTo(slot: Slot, fn: Listener): Slot {
  if (slot === undefined) return fn;
  if (typeof slot === 'function') return [slot, fn];
  slot.push(fn);
  return slot;
}

function removeFrom(slot: Slot, fn: Listener): Slot {
  if (slot === fn) return undefined;
  if (slot === undefined || typeof slot === 'function') return slot;
  const i = slot.lastIndexOf(fn);
  if (i >= 0) slot.splice(i, 1);
  return slot.length === 0 ? undefined : slot.length === 1 ? slot[0] : slot;
}

class StreamStateError extends Error {
  readonly code = 'ERR_HTTP2_INVALID_STREAM';
}

/**
 * One client stream. Events ('data', 'end', 'wantTrailers', 'drain', 'close', 'error') reach listeners
 * with `this` set to the stream, as node:http2's do.
 */
export class H2Stream {
  readonly id: number;
  readonly session: H2Session;
  /** Set once the stream is closed (either side reset it, or both sides ended). */
  closed = false;
  destroyed = false;
  headersSent = false;
  /** The RST_STREAM code that ended the stream (0 if it ended normally). */
  rstCode = 0;

  /** @internal */ sendWindow: number;
  /** @internal */ recvWindow: number;
  /** @internal Bytes read but not yet given back to the client as stream window. */
  recvUnacked = 0;
  /** @internal END_STREAM received. */
  remoteClosed = false;
  /** @internal END_STREAM sent. */
  localClosed = false;
  /** @internal DATA waiting for window. */
  queue: Buffer[] | undefined = undefined;
  /** @internal */ queuedBytes = 0;
  /** @internal end() was called: END_STREAM (or the trailers) goes out once the queue is empty. */
  ending = false;
  /** @internal */ waitForTrailers = false;
  /** @internal */ trailersAsked = false;
  /** @internal */ paused = false;
  /** @internal Received while paused. */
  inbox: Buffer[] | undefined = undefined;
  /** @internal */ inboxBytes = 0;
  /** @internal END_STREAM arrived while paused (or before its data was delivered). */
  endPending = false;
  /** @internal */ resumeScheduled = false;

  private lData: Slot = undefined;
  private lEnd: Slot = undefined;
  private lClose: Slot = undefined;
  private lWantTrailers: Slot = undefined;
  private lDrain: Slot = undefined;

  /** @internal */
  constructor(session: H2Session, id: number, sendWindow: number, recvWindow: number) {
    this.session = session;
    this.id = id;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** Bytes written but not yet framed (waiting for flow-control window or the socket). */
  get writableLength(): number {
    return this.queuedBytes;
  }

  on(event: string, fn: Listener): this {
    switch (event) {
      case 'data':
        this.lData = addTo(this.lData, fn);
        break;
      case 'end':
        this.lEnd = addTo(this.lEnd, fn);
        break;
      case 'close':
        this.lClose = addTo(this.lClose, fn);
        break;
      case 'wantTrailers':
        this.lWantTrailers = addTo(this.lWantTrailers, fn);
        break;
      case 'drain':
        this.lDrain = addTo(this.lDrain, fn);
        break;
      case 'error':
        break; // errors end the stream; 'close' tells
      default:
        throw new Error(`h2: stream event ${event} is not supported`);
    }
    return this;
  }

  off(event: string, fn: Listener): this {
    switch (event) {
      case 'data':
        this.lData = removeFrom(this.lData, fn);
        break;
      case 'end':
        this.lEnd = removeFrom(this.lEnd, fn);
        break;
      case 'close':
        this.lClose = removeFrom(this.lClose, fn);
        break;
      case 'wantTrailers':
        this.lWantTrailers = removeFrom(this.lWantTrailers, fn);
        break;
      case 'drain':
        this.lDrain = removeFrom(this.lDrain, fn);
        break;
      default:
        break;
    }
    return this;
  }

  /** Sends the response headers; `endStream` ends the response with them, `waitForTrailers` asks for trailers after the data. */
  respond(headers: OutgoingHttpHeaders, options?: { endStream?: boolean; waitForTrailers?: boolean; sendDate?: boolean }): void {
    if (this.closed) throw new StreamStateError('h2: the stream is closed');
    if (this.headersSent) throw new Error('h2: response headers already sent');
    this.headersSent = true;
    const endStream = options?.endStream === true;
    this.waitForTrailers = options?.waitForTrailers === true;
    this.session._sendHeaders(this, headerBlock(headers), endStream);
    if (endStream) {
      this.ending = true;
      this.session._localEnded(this);
    }
  }

  /** Queues response data (after respond()). False when more than the high-water mark is queued. */
  write(chunk: Uint8Array): boolean {
    if (this.closed) return false;
    if (!this.headersSent || this.ending) throw new Error('h2: write() before respond() or after end()');
    if (chunk.length > 0) this.session._sendData(this, chunk as Buffer);
    return this.queuedBytes < STREAM_HIGH_WATER_BYTES;
  }

  /** Ends the response: then the trailers ('wantTrailers') or an empty END_STREAM DATA frame. */
  end(chunk?: Uint8Array): void {
    if (this.closed || this.ending) return;
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    this.ending = true;
    this.session._endData(this);
  }

  /** Sends the trailers (after 'wantTrailers'); they end the response. */
  sendTrailers(headers: OutgoingHttpHeaders): void {
    if (this.closed) throw new StreamStateError('h2: the stream is closed');
    if (this.localClosed) throw new Error('h2: trailers already sent');
    this.session._sendHeaders(this, headerBlock(headers), true);
    this.session._localEnded(this);
  }

  /** Resets the stream with `code` (RST_STREAM) unless it is already closed. */
  close(code: number = H2Error.NO_ERROR): void {
    if (this.closed) return;
    this.session._reset(this, code, true);
  }

  destroy(): void {
    this.close(H2Error.CANCEL);
  }

  /** Stops delivering 'data'; what arrives is kept and its stream window not given back. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if ((this.inbox !== undefined || this.endPending) && !this.resumeScheduled) {
      this.resumeScheduled = true;
      process.nextTick(deliverInbox, this);
    }
  }

  /** @internal */ _emitData(chunk: Buffer): void {
    emit(this.lData, this, chunk);
  }
  /** @internal */ _emitEnd(): void {
    emit(this.lEnd, this);
  }
  /** @internal */ _emitClose(): void {
    emit(this.lClose, this);
  }
  /** @internal */ _emitWantTrailers(): void {
    if (this.lWantTrailers === undefined) {
      // Nobody will send trailers: end with empty ones so the client is not left waiting.
      this.sendTrailers({});
      return;
    }
    emit(this.lWantTrailers, this);
  }
  /** @internal */ _emitDrain(): void {
    emit(this.lDrain, this);
  }
}

function deliverInbox(stream: H2Stream): void {
  stream.resumeScheduled = false;
  stream.session._deliverInbox(stream);
}

/**
 * One HTTP/2 connection, server side. Events: 'close' (the connection is gone), 'error' (never fatal
 * beyond the connection), 'ping' (the client pinged; payload), 'goaway' (the client is leaving).
 */
export class H2Session {
  readonly socket: Socket;
  destroyed = false;
  /** close() was called or the connection is gone: no new streams. */
  closed = false;

  private readonly opts: H2SessionOptions;
  private readonly onStream: H2StreamHandler;
  private readonly decoder = new HpackDecoder(HEADER_TABLE_BYTES);
  private readonly fields: string[] = [];
  private readonly streams = new Map<number, H2Stream>();
  /** Streams with DATA waiting for window, in arrival order. */
  private readonly blocked = new Set<H2Stream>();
  private lastStreamId = 0;
  private prefaceSeen = false;
  private settingsSeen = false;
  private rest: Buffer | undefined = undefined;
  /** A header block waiting for its CONTINUATION frames. */
  private pendingBlock: { sid: number; endStream: boolean; parts: Buffer[]; bytes: number; frames: number } | undefined = undefined;

  private peerInitialWindow = DEFAULT_WINDOW_BYTES;
  private peerMaxFrame = RECV_FRAME_BYTES_MAX;
  private connSendWindow = DEFAULT_WINDOW_BYTES;
  private connRecvWindow = DEFAULT_WINDOW_BYTES;
  private connRecvUnacked = 0;
  private connRecvTarget = DEFAULT_WINDOW_BYTES;
  private memoryBytes = 0;

  private out: Buffer = Buffer.allocUnsafe(OUT_BUFFER_BYTES);
  private outStart = 0;
  private outPos = 0;
  private readonly outChunks: Buffer[] = [];
  private flushScheduled = false;
  private socketBlocked = false;
  /** DATA bytes staged since the last flush. */
  private dataStaged = 0;
  /** A send was cut short by the socket's share: pump again once a flush has handed it over. */
  private socketFull = false;
  private readonly closedStreams: H2Stream[] = [];
  /** Ids of the last streams that closed before the client ended its side (bounded, oldest out first). */
  private readonly openWhenClosed = new Set<number>();

  private readonly pings: PendingPing[] = [];
  private pingSeq = 0;
  private goawaySent = false;
  private goawayLastStreamId = 0;
  private finished = false;
  private started = false;
  private readonly listeners = new Map<string, SessionListener[]>();

  constructor(socket: Socket, opts: H2SessionOptions, onStream: H2StreamHandler) {
    this.socket = socket;
    this.opts = opts;
    this.onStream = onStream;
    // Our SETTINGS are the first frame, whatever is staged after (api/grpc opens the connection window).
    const settings: [number, number][] = [
      [S_MAX_CONCURRENT_STREAMS, Math.min(opts.maxConcurrentStreams, 0xffffffff)],
      [S_INITIAL_WINDOW_SIZE, Math.min(opts.streamWindowBytes, WINDOW_MAX)],
      [S_MAX_HEADER_LIST_SIZE, opts.headerListBytesMax],
    ];
    this.frameHeader(settings.length * 6, T_SETTINGS, 0, 0);
    for (const [id, v] of settings) {
      this.out.writeUInt16BE(id, this.outPos);
      this.out.writeUInt32BE(v >>> 0, this.outPos + 2);
      this.outPos += 6;
    }
    this.setLocalWindowSize(opts.connectionWindowBytes);
  }

  /** Starts reading and sends what is staged (our SETTINGS first). */
  start(): void {
    const socket = this.socket;
    socket.on('data', this.onData);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
    socket.on('end', this.onSocketEnd);
    socket.on('drain', this.onSocketDrain);
    this.started = true;
    this.flush();
    socket.resume(); // the listener may have paused it while sniffing the protocol
  }

  on(event: string, fn: SessionListener): this {
    let l = this.listeners.get(event);
    if (l === undefined) this.listeners.set(event, (l = []));
    l.push(fn);
    return this;
  }

  private emit(event: string, arg?: unknown): void {
    const l = this.listeners.get(event);
    if (l !== undefined) for (const fn of l.slice()) fn(arg);
  }

  /** Raises the connection's receive window to `size` bytes. */
  setLocalWindowSize(size: number): void {
    const target = Math.min(Math.max(size, DEFAULT_WINDOW_BYTES), WINDOW_MAX);
    const inc = target - this.connRecvTarget;
    this.connRecvTarget = target;
    if (inc > 0 && !this.destroyed) {
      this.connRecvWindow += inc;
      this.windowUpdate(0, inc);
      if (this.started) this.schedule();
    }
  }

  /** Graceful close: GOAWAY, no new streams; the connection ends when its streams have. */
  close(): void {
    if (this.destroyed || this.closed) return;
    this.closed = true;
    if (!this.goawaySent) this.goaway(H2Error.NO_ERROR, this.lastStreamId);
    this.maybeFinish();
  }

  /** Closes the connection now; open streams are reset. */
  destroy(): void {
    if (this.destroyed) return;
    this.flush();
    this.socket.destroy();
    this.finish();
  }

  /** Sends GOAWAY (code, last stream id we will process, optional debug data). */
  goaway(code: number = H2Error.NO_ERROR, lastStreamId: number = this.lastStreamId, opaqueData?: ArrayBufferView): void {
    if (this.destroyed) return;
    // A later GOAWAY may only lower the last stream id (RFC 9113 §6.8).
    if (this.goawaySent) lastStreamId = Math.min(lastStreamId, this.goawayLastStreamId);
    this.goawaySent = true;
    this.goawayLastStreamId = lastStreamId;
    const debug = opaqueData === undefined ? undefined : Buffer.from(opaqueData.buffer, opaqueData.byteOffset, opaqueData.byteLength);
    const len = 8 + (debug?.length ?? 0);
    this.frameHeader(len, T_GOAWAY, 0, 0);
    this.out.writeUInt32BE(lastStreamId & WINDOW_MAX, this.outPos);
    this.out.writeUInt32BE(code >>> 0, this.outPos + 4);
    this.outPos += 8;
    if (debug !== undefined) this.copyOut(debug);
    this.schedule();
  }

  /** Pings the client; the callback gets the round trip in ms. False if too many pings are unanswered. */
  ping(cb: PingCallback): boolean {
    if (this.destroyed || this.pings.length >= PINGS_OUTSTANDING_MAX) return false;
    const payload = Buffer.allocUnsafe(8);
    payload.writeUInt32BE(0x74657463, 0); // 'tetc'
    payload.writeUInt32BE(++this.pingSeq >>> 0, 4);
    this.pings.push({ payload, sentAt: process.hrtime.bigint(), cb });
    this.frameHeader(8, T_PING, 0, 0);
    this.copyOut(payload);
    this.schedule();
    return true;
  }

  // ---- reading ----

  private readonly onData = (chunk: Buffer): void => {
    if (this.destroyed) return;
    let buf = chunk;
    if (this.rest !== undefined) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = undefined;
    }
    let pos = 0;
    if (!this.prefaceSeen) {
      const n = Math.min(buf.length, PREFACE.length);
      if (buf.compare(PREFACE, 0, n, 0, n) !== 0) {
        this.connectionError(H2Error.PROTOCOL_ERROR, 'bad client preface');
        return;
      }
      if (n < PREFACE.length) {
        this.rest = buf;
        return;
      }
      this.prefaceSeen = true;
      pos = PREFACE.length;
    }
    const end = buf.length;
    while (end - pos >= FRAME_HEADER_BYTES) {
      const len = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2];
      if (len > RECV_FRAME_BYTES_MAX) {
        this.connectionError(H2Error.FRAME_SIZE_ERROR, `frame of ${len} bytes exceeds ${RECV_FRAME_BYTES_MAX}`);
        return;
      }
      if (end - pos < FRAME_HEADER_BYTES + len) break;
      const type = buf[pos + 3];
      const flags = buf[pos + 4];
      const sid = buf.readUInt32BE(pos + 5) & WINDOW_MAX;
      const from = pos + FRAME_HEADER_BYTES;
      pos = from + len;
      this.onFrame(type, flags, sid, buf, from, pos);
      if (this.destroyed) return;
    }
    if (pos < end) this.rest = buf.subarray(pos);
    if (this.outPos > this.outStart || this.outChunks.length > 0) this.schedule();
  };

  private onFrame(type: number, flags: number, sid: number, buf: Buffer, from: number, to: number): void {
    if (this.pendingBlock !== undefined && (type !== T_CONTINUATION || sid !== this.pendingBlock.sid)) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'expected a CONTINUATION frame');
      return;
    }
    if (!this.settingsSeen && type !== T_SETTINGS) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'the client preface must start with SETTINGS');
      return;
    }
    switch (type) {
      case T_DATA:
        this.onDataFrame(flags, sid, buf, from, to);
        break;
      case T_HEADERS:
        this.onHeadersFrame(flags, sid, buf, from, to);
        break;
      case T_CONTINUATION:
        this.onContinuation(flags, sid, buf, from, to);
        break;
      case T_PRIORITY:
        if (sid === 0) this.connectionError(H2Error.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        else if (to - from !== 5) this.streamError(sid, H2Error.FRAME_SIZE_ERROR);
        break;
      case T_RST_STREAM:
        this.onRstStream(sid, buf, from, to);
        break;
      case T_SETTINGS:
        this.onSettings(flags, sid, buf, from, to);
        break;
      case T_PUSH_PROMISE:
        this.connectionError(H2Error.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
        break;
      case T_PING:
        this.onPing(flags, sid, buf, from, to);
        break;
      case T_GOAWAY:
        if (sid !== 0) this.connectionError(H2Error.PROTOCOL_ERROR, 'GOAWAY on a stream');
        else if (to - from < 8) this.connectionError(H2Error.FRAME_SIZE_ERROR, 'short GOAWAY');
        else {
          this.emit('goaway', buf.readUInt32BE(from + 4));
          this.closed = true;
          this.maybeFinish();
        }
        break;
      case T_WINDOW_UPDATE:
        this.onWindowUpdate(sid, buf, from, to);
        break;
      default:
        break; // unknown frame types are ignored (RFC 9113 §4.1)
    }
  }

  private onDataFrame(flags: number, sid: number, buf: Buffer, from: number, to: number): void {
    if (sid === 0) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'DATA on stream 0');
      return;
    }
    const flowBytes = to - from;
    let end = to;
    let start = from;
    if (flags & F_PADDED) {
      if (flowBytes < 1 || buf[from] >= flowBytes) {
        this.connectionError(H2Error.PROTOCOL_ERROR, 'DATA padding exceeds the payload');
        return;
      }
      end -= buf[from];
      start += 1;
    }
    this.connRecvWindow -= flowBytes;
    if (this.connRecvWindow < 0) {
      this.connectionError(H2Error.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
      return;
    }
    this.consumeConnection(flowBytes);
    const stream = this.streams.get(sid);
    if (stream === undefined) {
      if (sid > this.lastStreamId) this.connectionError(H2Error.PROTOCOL_ERROR, 'DATA on an idle stream');
      else if (!this.recentlyClosed(sid)) this.connectionError(H2Error.STREAM_CLOSED, 'DATA on a closed stream');
      return;
    }
    if (stream.remoteClosed) {
      this.streamError(sid, H2Error.STREAM_CLOSED);
      return;
    }
    stream.recvWindow -= flowBytes;
    if (stream.recvWindow < 0) {
      this.streamError(sid, H2Error.FLOW_CONTROL_ERROR);
      return;
    }
    const dataBytes = end - start;
    // Padding is consumed at once; the data when it is delivered.
    if (flowBytes > dataBytes) this.creditStream(stream, flowBytes - dataBytes);
    const endStream = (flags & F_END_STREAM) !== 0;
    if (endStream) stream.remoteClosed = true;
    if (dataBytes > 0) {
      // A copy: request messages decode to views of this buffer, and the socket's chunk is 64 KiB.
      const payload = Buffer.allocUnsafe(dataBytes);
      buf.copy(payload, 0, start, end);
      if (stream.paused || stream.inbox !== undefined) {
        (stream.inbox ??= []).push(payload);
        stream.inboxBytes += dataBytes;
        this.memoryBytes += dataBytes;
      } else {
        this.creditStream(stream, dataBytes);
        stream._emitData(payload);
        if (stream.closed) return;
      }
    }
    if (endStream) {
      if (stream.paused || stream.inbox !== undefined) stream.endPending = true;
      else this.remoteEnded(stream);
    }
  }

  /** @internal Delivers what arrived while the stream was paused. */
  _deliverInbox(stream: H2Stream): void {
    while (!stream.paused && !stream.closed && stream.inbox !== undefined) {
      const chunk = stream.inbox.shift()!;
      if (stream.inbox.length === 0) stream.inbox = undefined;
      stream.inboxBytes -= chunk.length;
      this.memoryBytes -= chunk.length;
      this.creditStream(stream, chunk.length);
      stream._emitData(chunk);
    }
    if (!stream.paused && !stream.closed && stream.inbox === undefined && stream.endPending) {
      stream.endPending = false;
      this.remoteEnded(stream);
    }
    this.schedule();
  }

  private remoteEnded(stream: H2Stream): void {
    stream._emitEnd();
    if (stream.localClosed && !stream.closed) this.closeStream(stream, H2Error.NO_ERROR);
  }

  private onHeadersFrame(flags: number, sid: number, buf: Buffer, from: number, to: number): void {
    if (sid === 0) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'HEADERS on stream 0');
      return;
    }
    let start = from;
    let end = to;
    if (flags & F_PADDED) {
      if (to - from < 1) {
        this.connectionError(H2Error.FRAME_SIZE_ERROR, 'short padded HEADERS');
        return;
      }
      end -= buf[from];
      start += 1;
    }
    if (flags & F_PRIORITY) {
      if (end - start < 5) {
        this.connectionError(H2Error.FRAME_SIZE_ERROR, 'short HEADERS priority');
        return;
      }
      start += 5;
    }
    if (end < start) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'HEADERS padding exceeds the payload');
      return;
    }
    const endStream = (flags & F_END_STREAM) !== 0;
    if (flags & F_END_HEADERS) {
      this.onHeaderBlock(sid, buf.subarray(start, end), endStream);
      return;
    }
    const part = Buffer.allocUnsafe(end - start);
    buf.copy(part, 0, start, end);
    this.pendingBlock = { sid, endStream, parts: [part], bytes: part.length, frames: 0 };
  }

  private onContinuation(flags: number, sid: number, buf: Buffer, from: number, to: number): void {
    const pending = this.pendingBlock;
    if (pending === undefined) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
      return;
    }
    pending.bytes += to - from;
    if (++pending.frames > CONTINUATIONS_MAX) {
      this.connectionError(H2Error.ENHANCE_YOUR_CALM, `more than ${CONTINUATIONS_MAX} CONTINUATION frames in one header block`);
      return;
    }
    if (pending.bytes > HEADER_BLOCK_BYTES_MAX) {
      this.connectionError(H2Error.ENHANCE_YOUR_CALM, `header block larger than ${HEADER_BLOCK_BYTES_MAX} bytes`);
      return;
    }
    const part = Buffer.allocUnsafe(to - from);
    buf.copy(part, 0, from, to);
    pending.parts.push(part);
    if (flags & F_END_HEADERS) {
      this.pendingBlock = undefined;
      this.onHeaderBlock(sid, Buffer.concat(pending.parts, pending.bytes), pending.endStream);
    }
  }

  private onHeaderBlock(sid: number, block: Buffer, endStream: boolean): void {
    // Decoded first, whatever becomes of the stream: the HPACK table must stay in step with the client.
    const fields = this.fields;
    fields.length = 0;
    try {
      this.decoder.decode(block, 0, block.length, fields);
    } catch (err) {
      if (!(err instanceof HpackError)) throw err;
      this.connectionError(H2Error.COMPRESSION_ERROR, err.message);
      return;
    }
    const existing = this.streams.get(sid);
    if (existing !== undefined) {
      // Trailers: they must end the stream; their fields mean nothing to gRPC.
      if (existing.remoteClosed) this.streamError(sid, H2Error.STREAM_CLOSED);
      else if (!endStream) this.streamError(sid, H2Error.PROTOCOL_ERROR);
      else {
        existing.remoteClosed = true;
        if (existing.paused || existing.inbox !== undefined) existing.endPending = true;
        else this.remoteEnded(existing);
      }
      return;
    }
    if ((sid & 1) === 0) {
      this.connectionError(H2Error.PROTOCOL_ERROR, `client stream id ${sid} is even`);
      return;
    }
    if (sid <= this.lastStreamId) {
      // A stream that closed (we may have reset it); a lower id than one seen is a protocol error.
      if (this.recentlyClosed(sid)) return;
      this.connectionError(H2Error.PROTOCOL_ERROR, `stream id ${sid} is not above ${this.lastStreamId}`);
      return;
    }
    this.lastStreamId = sid;
    if (this.closed || this.goawaySent) {
      this.refuse(sid, H2Error.REFUSED_STREAM, endStream);
      return;
    }
    if (this.streams.size >= this.opts.maxConcurrentStreams) {
      this.refuse(sid, H2Error.REFUSED_STREAM, endStream);
      return;
    }
    if (this.memoryBytes + STREAM_OVERHEAD_BYTES > this.opts.sessionMemoryBytesMax) {
      this.refuse(sid, H2Error.ENHANCE_YOUR_CALM, endStream);
      return;
    }
    const headers = this.toHeaders(fields);
    if (headers === undefined) {
      this.refuse(sid, H2Error.PROTOCOL_ERROR, endStream);
      return;
    }
    if (headers === TOO_LARGE) {
      this.refuse(sid, H2Error.ENHANCE_YOUR_CALM, endStream);
      return;
    }
    const stream = new H2Stream(this, sid, this.peerInitialWindow, Math.min(this.opts.streamWindowBytes, WINDOW_MAX));
    stream.remoteClosed = endStream;
    this.streams.set(sid, stream);
    this.memoryBytes += STREAM_OVERHEAD_BYTES;
    try {
      this.onStream(stream, headers, endStream ? F_END_STREAM : 0);
    } catch (err) {
      // A bug above us must not take the process down with it: this stream ends, the connection goes on.
      this.emit('error', err);
      if (!stream.closed) this._reset(stream, H2Error.INTERNAL_ERROR, true);
      return;
    }
    if (endStream && !stream.closed) this.remoteEnded(stream);
  }

  /** Resets a stream that never opened; if the client is still sending on it, its late frames are ignored. */
  private refuse(sid: number, code: number, endStream: boolean): void {
    this.sendRst(sid, code);
    if (!endStream) this.rememberClosed(sid);
  }

  private rememberClosed(sid: number): void {
    this.openWhenClosed.add(sid);
    if (this.openWhenClosed.size > RECENTLY_CLOSED_MAX) this.openWhenClosed.delete(this.openWhenClosed.values().next().value!);
  }

  /**
   * A stream below the highest id seen that we no longer track: frames may still be on their way on one
   * that closed while the client was sending (we reset it, or answered early), and are ignored; any other
   * id is a new stream that is not above the last one, a protocol error (RFC 9113 §5.1.1).
   */
  private recentlyClosed(sid: number): boolean {
    return this.openWhenClosed.has(sid);
  }

  /** The request headers as node:http2 gives them, or undefined if they are not a valid request. */
  private toHeaders(fields: string[]): IncomingHttpHeaders | undefined | typeof TOO_LARGE {
    const headers = Object.create(null) as Record<string, string | string[]>;
    let regular = false;
    let listBytes = 0;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i];
      const value = fields[i + 1];
      listBytes += name.length + value.length + HEADER_ENTRY_OVERHEAD;
      if (name.length === 0) return undefined;
      if (name.charCodeAt(0) === 58 /* : */) {
        if (regular) return undefined;
        if (name !== ':method' && name !== ':scheme' && name !== ':path' && name !== ':authority') return undefined;
        if (headers[name] !== undefined) return undefined;
        headers[name] = value;
        continue;
      }
      regular = true;
      if (name !== name.toLowerCase()) return undefined;
      if (CONNECTION_SPECIFIC.has(name)) return undefined;
      if (name === 'te' && value !== 'trailers') return undefined;
      const prev = headers[name];
      if (prev === undefined) headers[name] = value;
      else if (SINGLE_VALUE.has(name))
        continue; // node:http2 keeps the first
      else if (name === 'set-cookie') headers[name] = typeof prev === 'string' ? [prev, value] : [...prev, value];
      else headers[name] = `${prev as string}${name === 'cookie' ? '; ' : ', '}${value}`;
    }
    if (listBytes > this.opts.headerListBytesMax) return TOO_LARGE;
    if (headers[':method'] === undefined || headers[':path'] === undefined || headers[':scheme'] === undefined) return undefined;
    if (headers[':path'] === '') return undefined;
    return headers as IncomingHttpHeaders;
  }

  private onRstStream(sid: number, buf: Buffer, from: number, to: number): void {
    if (sid === 0) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
      return;
    }
    if (to - from !== 4) {
      this.connectionError(H2Error.FRAME_SIZE_ERROR, 'RST_STREAM must be 4 bytes');
      return;
    }
    if (sid > this.lastStreamId) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
      return;
    }
    const stream = this.streams.get(sid);
    if (stream !== undefined) this.closeStream(stream, buf.readUInt32BE(from));
  }

  private onSettings(flags: number, sid: number, buf: Buffer, from: number, to: number): void {
    if (sid !== 0) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'SETTINGS on a stream');
      return;
    }
    if (flags & F_ACK) {
      if (to !== from) this.connectionError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS ack with a payload');
      return;
    }
    if ((to - from) % 6 !== 0) {
      this.connectionError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS length not a multiple of 6');
      return;
    }
    this.settingsSeen = true;
    for (let p = from; p < to; p += 6) {
      const id = buf.readUInt16BE(p);
      const value = buf.readUInt32BE(p + 2);
      switch (id) {
        case S_ENABLE_PUSH:
          if (value > 1) {
            this.connectionError(H2Error.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH must be 0 or 1');
            return;
          }
          break;
        case S_INITIAL_WINDOW_SIZE: {
          if (value > WINDOW_MAX) {
            this.connectionError(H2Error.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1');
            return;
          }
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > WINDOW_MAX) {
              this.connectionError(H2Error.FLOW_CONTROL_ERROR, 'a stream window passed 2^31-1');
              return;
            }
          }
          break;
        }
        case S_MAX_FRAME_SIZE:
          if (value < RECV_FRAME_BYTES_MAX || value > 16_777_215) {
            this.connectionError(H2Error.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
            return;
          }
          this.peerMaxFrame = value;
          break;
        case S_HEADER_TABLE_SIZE: // our encoder keeps no dynamic table
        case S_MAX_CONCURRENT_STREAMS: // we open no streams
        case S_MAX_HEADER_LIST_SIZE:
        default:
          break;
      }
    }
    this.frameHeader(0, T_SETTINGS, F_ACK, 0);
    this.pump();
  }

  private onPing(flags: number, sid: number, buf: Buffer, from: number, to: number): void {
    if (sid !== 0) {
      this.connectionError(H2Error.PROTOCOL_ERROR, 'PING on a stream');
      return;
    }
    if (to - from !== 8) {
      this.connectionError(H2Error.FRAME_SIZE_ERROR, 'PING must be 8 bytes');
      return;
    }
    if (flags & F_ACK) {
      const i = this.pings.findIndex((p) => buf.compare(p.payload, 0, 8, from, to) === 0);
      if (i < 0) return;
      const [p] = this.pings.splice(i, 1);
      const ms = Number(process.hrtime.bigint() - p.sentAt) / 1e6;
      p.cb(null, ms, p.payload);
      return;
    }
    this.frameHeader(8, T_PING, F_ACK, 0);
    buf.copy(this.out, this.outPos, from, to);
    this.outPos += 8;
    this.emit('ping', buf.subarray(from, to));
  }

  private onWindowUpdate(sid: number, buf: Buffer, from: number, to: number): void {
    if (to - from !== 4) {
      this.connectionError(H2Error.FRAME_SIZE_ERROR, 'WINDOW_UPDATE must be 4 bytes');
      return;
    }
    const inc = buf.readUInt32BE(from) & WINDOW_MAX;
    if (sid === 0) {
      if (inc === 0) {
        this.connectionError(H2Error.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
        return;
      }
      this.connSendWindow += inc;
      if (this.connSendWindow > WINDOW_MAX) {
        this.connectionError(H2Error.FLOW_CONTROL_ERROR, 'connection window passed 2^31-1');
        return;
      }
      this.pump();
      return;
    }
    const stream = this.streams.get(sid);
    if (stream === undefined) {
      if (sid > this.lastStreamId) this.connectionError(H2Error.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
      return;
    }
    if (inc === 0) {
      this.streamError(sid, H2Error.PROTOCOL_ERROR);
      return;
    }
    stream.sendWindow += inc;
    if (stream.sendWindow > WINDOW_MAX) {
      this.streamError(sid, H2Error.FLOW_CONTROL_ERROR);
      return;
    }
    if (stream.queue !== undefined) this.pump();
  }

  // ---- flow control, receive side ----

  private consumeConnection(n: number): void {
    this.connRecvUnacked += n;
    if (this.connRecvUnacked >= this.connRecvTarget / 2) {
      this.connRecvWindow += this.connRecvUnacked;
      this.windowUpdate(0, this.connRecvUnacked);
      this.connRecvUnacked = 0;
    }
  }

  private creditStream(stream: H2Stream, n: number): void {
    stream.recvUnacked += n;
    if (!stream.remoteClosed && stream.recvUnacked >= this.opts.streamWindowBytes / 2) {
      stream.recvWindow += stream.recvUnacked;
      this.windowUpdate(stream.id, stream.recvUnacked);
      stream.recvUnacked = 0;
    }
  }

  // ---- writing ----

  /** @internal */
  _sendHeaders(stream: H2Stream, block: Buffer, endStream: boolean): void {
    const max = this.peerMaxFrame;
    if (block.length <= max) {
      this.frameHeader(block.length, T_HEADERS, F_END_HEADERS | (endStream ? F_END_STREAM : 0), stream.id);
      this.copyOut(block);
    } else {
      for (let at = 0; at < block.length; at += max) {
        const n = Math.min(max, block.length - at);
        const last = at + n >= block.length;
        const type = at === 0 ? T_HEADERS : T_CONTINUATION;
        const flags = (last ? F_END_HEADERS : 0) | (at === 0 && endStream ? F_END_STREAM : 0);
        this.frameHeader(n, type, flags, stream.id);
        this.copyOut(block.subarray(at, at + n));
      }
    }
    this.schedule();
  }

  /** @internal */
  _sendData(stream: H2Stream, chunk: Buffer): void {
    if (stream.queue !== undefined || this.socketBlocked) {
      this.enqueue(stream, chunk);
      return;
    }
    const sent = this.sendWithinWindow(stream, chunk);
    if (sent < chunk.length) this.enqueue(stream, chunk.subarray(sent));
    this.schedule();
  }

  /** @internal end() on a stream: END_STREAM or trailers once its queue is empty. */
  _endData(stream: H2Stream): void {
    if (stream.queue === undefined) this.finishData(stream);
  }

  private finishData(stream: H2Stream): void {
    if (stream.localClosed || stream.closed) return;
    if (stream.waitForTrailers) {
      if (stream.trailersAsked) return;
      stream.trailersAsked = true;
      stream._emitWantTrailers();
      return;
    }
    this.frameHeader(0, T_DATA, F_END_STREAM, stream.id);
    this.schedule();
    this._localEnded(stream);
  }

  /** @internal END_STREAM went out. */
  _localEnded(stream: H2Stream): void {
    stream.localClosed = true;
    if (stream.remoteClosed && stream.inbox === undefined && !stream.endPending) this.closeStream(stream, H2Error.NO_ERROR);
    else this.schedule();
  }

  private enqueue(stream: H2Stream, chunk: Buffer): void {
    if (stream.queue === undefined) {
      stream.queue = [];
      this.blocked.add(stream);
    }
    stream.queue.push(chunk);
    stream.queuedBytes += chunk.length;
    this.memoryBytes += chunk.length;
  }

  /** The last DATA frame staged in `out` (its header offset, end and stream), for coalescing the next. */
  private lastDataOut: Buffer | undefined = undefined;
  private lastDataAt = -1;
  private lastDataEnd = -1;
  private lastDataSid = 0;

  /**
   * Frames as much of chunk as the windows and the socket allow; returns the bytes framed. The socket
   * takes at most SOCKET_HIGH_WATER_BYTES of DATA beyond what it already holds, whatever windows a client
   * grants: the rest waits in the stream's queue, which the gRPC layer bounds, until flush() sees room.
   */
  private sendWithinWindow(stream: H2Stream, chunk: Buffer): number {
    const socketRoom = SOCKET_HIGH_WATER_BYTES - this.socket.writableLength - this.dataStaged;
    if (socketRoom < chunk.length) this.socketFull = true;
    const allowed = Math.min(chunk.length, stream.sendWindow, this.connSendWindow, socketRoom);
    if (allowed <= 0) return 0;
    this.dataStaged += allowed;
    const max = this.peerMaxFrame;
    let at = 0;
    while (at < allowed) {
      const n = Math.min(max, allowed - at);
      // Small messages of one stream in one turn share a DATA frame (a watcher's responses, many per
      // turn): fewer frames for the client to parse. Only into the part of the buffer not yet flushed.
      if (
        n <= OUT_COPY_BYTES_MAX &&
        this.lastDataOut === this.out &&
        this.lastDataEnd === this.outPos &&
        this.lastDataSid === stream.id &&
        this.lastDataAt >= this.outStart
      ) {
        const b = this.out;
        const len = (b[this.lastDataAt] << 16) | (b[this.lastDataAt + 1] << 8) | b[this.lastDataAt + 2];
        const take = Math.min(n, max - len, b.length - this.outPos);
        if (take > 0) {
          b.set(chunk.subarray(at, at + take), this.outPos);
          this.outPos += take;
          const total = len + take;
          b[this.lastDataAt] = (total >>> 16) & 0xff;
          b[this.lastDataAt + 1] = (total >>> 8) & 0xff;
          b[this.lastDataAt + 2] = total & 0xff;
          this.lastDataEnd = this.outPos;
          at += take;
          continue;
        }
      }
      this.frameHeader(n, T_DATA, 0, stream.id);
      const headerAt = this.outPos - FRAME_HEADER_BYTES;
      const out = this.out;
      if (n <= OUT_COPY_BYTES_MAX) this.copyOut(chunk.subarray(at, at + n));
      else this.passOut(chunk.subarray(at, at + n));
      if (this.out === out && this.outPos === headerAt + FRAME_HEADER_BYTES + n) {
        this.lastDataOut = out;
        this.lastDataAt = headerAt;
        this.lastDataEnd = this.outPos;
        this.lastDataSid = stream.id;
      } else {
        this.lastDataOut = undefined;
      }
      at += n;
    }
    stream.sendWindow -= allowed;
    this.connSendWindow -= allowed;
    return allowed;
  }

  /** Moves queued DATA of blocked streams out as window and socket allow, in stream order. */
  private pump(): void {
    if (this.socketBlocked || this.blocked.size === 0) {
      this.schedule();
      return;
    }
    for (const stream of this.blocked) {
      if (this.connSendWindow <= 0 || this.socketBlocked || this.dataStaged >= SOCKET_HIGH_WATER_BYTES) break;
      const q = stream.queue!;
      while (q.length > 0 && stream.sendWindow > 0 && this.connSendWindow > 0) {
        const chunk = q[0];
        const sent = this.sendWithinWindow(stream, chunk);
        if (sent === 0) break; // the socket's share is used up
        stream.queuedBytes -= sent;
        this.memoryBytes -= sent;
        if (sent === chunk.length) q.shift();
        else q[0] = chunk.subarray(sent);
      }
      if (q.length === 0) {
        stream.queue = undefined;
        this.blocked.delete(stream);
        stream._emitDrain();
        if (stream.ending) this.finishData(stream);
      } else if (stream.queuedBytes < STREAM_HIGH_WATER_BYTES) {
        stream._emitDrain();
      }
    }
    this.schedule();
  }

  /** @internal Resets a stream: RST_STREAM (if `send`), then 'close'. */
  _reset(stream: H2Stream, code: number, send: boolean): void {
    if (send) this.sendRst(stream.id, code);
    this.closeStream(stream, code);
  }

  private streamError(sid: number, code: number): void {
    this.sendRst(sid, code);
    const stream = this.streams.get(sid);
    if (stream !== undefined) this.closeStream(stream, code);
  }

  private sendRst(sid: number, code: number): void {
    this.frameHeader(4, T_RST_STREAM, 0, sid);
    this.out.writeUInt32BE(code >>> 0, this.outPos);
    this.outPos += 4;
    this.schedule();
  }

  private closeStream(stream: H2Stream, code: number): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.destroyed = true;
    stream.rstCode = code;
    this.streams.delete(stream.id);
    if (!stream.remoteClosed) this.rememberClosed(stream.id);
    this.memoryBytes -= STREAM_OVERHEAD_BYTES + stream.queuedBytes + stream.inboxBytes;
    if (stream.queue !== undefined) {
      this.blocked.delete(stream);
      stream.queue = undefined;
      stream.queuedBytes = 0;
    }
    stream.inbox = undefined;
    stream.inboxBytes = 0;
    // Unread request bytes still count against the connection window, which was credited on arrival.
    this.closedStreams.push(stream);
    this.schedule();
    this.maybeFinish();
  }

  private windowUpdate(sid: number, inc: number): void {
    this.frameHeader(4, T_WINDOW_UPDATE, 0, sid);
    this.out.writeUInt32BE(inc, this.outPos);
    this.outPos += 4;
  }

  /** Writes a frame header into the staging buffer, making room for `payloadRoom` more bytes after it. */
  private frameHeader(len: number, type: number, flags: number, sid: number): void {
    const room = FRAME_HEADER_BYTES + (len <= OUT_COPY_BYTES_MAX ? len : 0) + 8;
    if (this.out.length - this.outPos < room) this.newOutBuffer(room);
    const b = this.out;
    const p = this.outPos;
    b[p] = (len >>> 16) & 0xff;
    b[p + 1] = (len >>> 8) & 0xff;
    b[p + 2] = len & 0xff;
    b[p + 3] = type;
    b[p + 4] = flags;
    b.writeUInt32BE(sid, p + 5);
    this.outPos = p + FRAME_HEADER_BYTES;
  }

  private copyOut(payload: Uint8Array): void {
    if (this.out.length - this.outPos < payload.length) {
      this.passOut(Buffer.from(payload));
      return;
    }
    this.out.set(payload, this.outPos);
    this.outPos += payload.length;
  }

  /** Hands a payload to the socket as it is, after what is staged. */
  private passOut(payload: Buffer): void {
    if (this.outPos > this.outStart) {
      this.outChunks.push(this.out.subarray(this.outStart, this.outPos));
      this.outStart = this.outPos;
    }
    this.outChunks.push(payload);
  }

  private newOutBuffer(room: number): void {
    if (this.outPos > this.outStart) this.outChunks.push(this.out.subarray(this.outStart, this.outPos));
    this.out = Buffer.allocUnsafe(Math.max(OUT_BUFFER_BYTES, room));
    this.outStart = 0;
    this.outPos = 0;
  }

  private schedule(): void {
    if (this.flushScheduled || this.finished || !this.started) return;
    this.flushScheduled = true;
    process.nextTick(flushSession, this);
  }

  /** @internal Writes what is staged; then tells closed streams. */
  flush(): void {
    this.flushScheduled = false;
    if (this.outPos > this.outStart) {
      this.outChunks.push(this.out.subarray(this.outStart, this.outPos));
      this.outStart = this.outPos;
      // Start the next buffer fresh when little room is left.
      if (this.out.length - this.outPos < 1024) this.newOutBuffer(0);
    }
    const chunks = this.outChunks;
    const socket = this.socket;
    if (chunks.length > 0 && !socket.destroyed && socket.writable) {
      if (chunks.length === 1) {
        socket.write(chunks[0]);
      } else {
        socket.cork();
        for (const c of chunks) socket.write(c);
        socket.uncork();
      }
      // Above the mark the last write returned false, so 'drain' will come and pump again.
      if (!this.socketBlocked && socket.writableLength > SOCKET_HIGH_WATER_BYTES) this.socketBlocked = true;
      if (socket.writableLength > this.opts.sessionMemoryBytesMax) {
        // The client does not read what it asks for (acks, resets); do not buffer without bound.
        socket.destroy();
        this.finish();
        return;
      }
    }
    chunks.length = 0;
    this.dataStaged = 0;
    if (this.socketFull && !this.socketBlocked && !this.finished) {
      // The kernel took what was staged: there is room for more of the queued DATA now.
      this.socketFull = false;
      this.pump();
    }
    this.emitClosedStreams();
  }

  private readonly onSocketDrain = (): void => {
    if (!this.socketBlocked) return;
    this.socketBlocked = false;
    this.pump();
  };

  private connectionError(code: number, message: string): void {
    if (this.destroyed) return;
    this.goaway(code, this.lastStreamId, Buffer.from(message));
    this.endSocket();
  }

  private maybeFinish(): void {
    if (this.closed && !this.destroyed && this.streams.size === 0) this.endSocket();
  }

  /** Sends what is staged, ends our side of the socket and the session. */
  private endSocket(): void {
    this.flush();
    this.socket.end();
    this.finish();
    // A client that does not close its side is cut after a while.
    setTimeout(destroySocket, 1000, this.socket).unref();
  }

  private emitClosedStreams(): void {
    const closed = this.closedStreams;
    while (closed.length > 0) closed.shift()!._emitClose();
  }

  /** Ends every stream and pending ping, and emits 'close' once. */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.destroyed = true;
    this.closed = true;
    for (const stream of [...this.streams.values()]) this.closeStream(stream, H2Error.CANCEL);
    this.emitClosedStreams();
    const err = new Error('h2: the session is closed');
    for (const p of this.pings.splice(0)) p.cb(err, 0, p.payload);
    this.emit('close');
  }

  private readonly onSocketError = (err: Error): void => {
    this.emit('error', err);
  };

  private readonly onSocketEnd = (): void => {
    // The client closed its side: nothing more can arrive.
    this.endSocket();
  };

  private readonly onSocketClose = (): void => {
    this.finish();
  };
}

const TOO_LARGE: unique symbol = Symbol('tetcd.h2.headerListTooLarge');

function flushSession(session: H2Session): void {
  session.flush();
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}
