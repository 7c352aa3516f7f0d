// A minimal HTTP/2 client for gRPC unary calls, on a bare TCP socket, for the load generator: requests
// are pre-framed (one stateless HEADERS block per connection, one DATA frame per body), every call of an
// event-loop turn goes out in one write, and responses are parsed frame by frame with only what a unary
// call needs (status from headers/trailers, flow control, SETTINGS/PING acks, GOAWAY, RST_STREAM).
// It costs a fraction of node:http2's CPU per call, so the generator leaves the cores to the server.
import net from 'node:net';
import tls from 'node:tls';
import { HpackDecoder, HpackError, encodeStatelessBlock } from '../../src/api/h2/hpack.js';
import {
  PREFACE,
  FRAME_HEADER_BYTES,
  T_DATA,
  T_HEADERS,
  T_RST_STREAM,
  T_SETTINGS,
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
} from '../../src/api/h2/frames.js';

/** RFC 7540 default and minimum SETTINGS_MAX_FRAME_SIZE; we never announce more, nor send more. */
const FRAME_BYTES_MAX = 16_384;
const DEFAULT_WINDOW_BYTES = 65_535;
/** Our receive window (stream and connection); replenished once half is used. */
const RECV_WINDOW_BYTES = 1 << 30;
/** Largest request body: it must fit the peer's initial stream window, which we do not track per stream. */
export const RAW_BODY_BYTES_MAX = DEFAULT_WINDOW_BYTES - 5;
const STREAM_ID_MAX = 0x7fffffff;
/** Largest header block (HEADERS + CONTINUATIONs) accepted from the server. */
const HEADER_BLOCK_BYTES_MAX = 256 * 1024;

/** One call slot. The connection fills streamId/status; the owner keeps its own fields alongside. */
export interface RawLane {
  conn: RawH2Connection;
  /** Index into the connection's pre-framed bodies. */
  bodyIndex: number;
  streamId: number;
  /** '' while running; then the grpc-status ('0' = OK), 'http-<status>', 'rst' or 'goaway'. */
  status: string;
  /** The grpc-message of a failed call ('' if none). */
  message: string;
}

/** Receives the end of every call. */
export interface RawCallSink<L extends RawLane> {
  callEnded(lane: L): void;
}

function frameHeader(buf: Buffer, at: number, len: number, type: number, flags: number, sid: number): void {
  buf[at] = (len >>> 16) & 0xff;
  buf[at + 1] = (len >>> 8) & 0xff;
  buf[at + 2] = len & 0xff;
  buf[at + 3] = type;
  buf[at + 4] = flags;
  buf.writeUInt32BE(sid, at + 5);
}

function frame(type: number, flags: number, sid: number, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES + payload.length);
  frameHeader(b, 0, payload.length, type, flags, sid);
  b.set(payload, FRAME_HEADER_BYTES);
  return b;
}

/**
 * A request body as DATA frames (gRPC 5-byte prefix included, END_STREAM on the last), stream id 0 to be
 * patched at send time at the offsets in `sidOffsets`.
 */
export interface FramedBody {
  bytes: Buffer;
  sidOffsets: number[];
  /** Flow-controlled bytes (DATA payloads). */
  flowBytes: number;
}

/** Frames one gRPC request message. Throws RangeError if it exceeds RAW_BODY_BYTES_MAX. */
export function frameBody(body: Uint8Array): FramedBody {
  if (body.length > RAW_BODY_BYTES_MAX) throw new RangeError(`raw h2: body of ${body.length} B exceeds ${RAW_BODY_BYTES_MAX} B`);
  const msg = Buffer.alloc(5 + body.length);
  msg.writeUInt32BE(body.length, 1);
  msg.set(body, 5);
  const frames = Math.max(1, Math.ceil(msg.length / FRAME_BYTES_MAX));
  const bytes = Buffer.alloc(frames * FRAME_HEADER_BYTES + msg.length);
  const sidOffsets: number[] = [];
  let at = 0;
  for (let f = 0; f < frames; f++) {
    const from = f * FRAME_BYTES_MAX;
    const to = Math.min(msg.length, from + FRAME_BYTES_MAX);
    frameHeader(bytes, at, to - from, T_DATA, f === frames - 1 ? F_END_STREAM : 0, 0);
    sidOffsets.push(at + 5);
    msg.copy(bytes, at + FRAME_HEADER_BYTES, from, to);
    at += FRAME_HEADER_BYTES + to - from;
  }
  return { bytes, sidOffsets, flowBytes: msg.length };
}

/** What a connection sends: method path, authority, extra metadata, and the bodies it rotates through. */
export interface RawConnOptions {
  target: string;
  path: string;
  metadata: Record<string, string>;
  bodies: readonly FramedBody[];
  connectTimeoutMs: number;
  /** TLS (ALPN h2) with this CA's PEM to verify the server; cleartext without. */
  tlsCa?: string;
}

/**
 * One HTTP/2 connection carrying unary gRPC calls.
 *
 *   const c = await RawH2Connection.connect(opts, sink);
 *   c.call(lane);           // lane.conn === c; sink.callEnded(lane) fires when it ends
 */
export class RawH2Connection<L extends RawLane = RawLane> {
  private readonly socket: net.Socket;
  private readonly headersFrame: Buffer;
  private readonly bodies: readonly FramedBody[];
  private readonly decoder = new HpackDecoder();
  private readonly streams = new Map<number, L>();
  /** Calls waiting for a stream slot or send window. Bounded by the owner's lanes on this connection. */
  private pending: L[] = [];
  private flushScheduled = false;
  private nextStreamId = 1;
  private sendWindowBytes = DEFAULT_WINDOW_BYTES;
  private peerMaxStreams = Number.MAX_SAFE_INTEGER;
  private recvUnacked = 0;
  private rest: Buffer | null = null;
  private readonly fields: string[] = [];
  /** A header block split over CONTINUATION frames. */
  private continuation: { sid: number; endStream: boolean; parts: Buffer[]; bytes: number } | null = null;
  private closedFlag = false;
  /** Why the connection was dropped by this side, if it was. */
  lastError = '';
  private goawayLastSid = STREAM_ID_MAX;
  private readonly flushBound = (): void => this.flush();

  private constructor(
    socket: net.Socket,
    o: RawConnOptions,
    private readonly sink: RawCallSink<L>,
  ) {
    this.socket = socket;
    this.bodies = o.bodies;
    const block = encodeStatelessBlock([
      [':method', 'POST'],
      [':scheme', o.tlsCa === undefined ? 'http' : 'https'],
      [':path', o.path],
      [':authority', o.target],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
      ...Object.entries(o.metadata),
    ]);
    if (block.length > FRAME_BYTES_MAX) throw new RangeError('raw h2: request headers exceed one frame');
    this.headersFrame = frame(T_HEADERS, F_END_HEADERS, 0, block);
  }

  /** Opens the socket, sends the preface and waits for the server's SETTINGS. */
  static connect<L extends RawLane>(o: RawConnOptions, sink: RawCallSink<L>): Promise<RawH2Connection<L>> {
    const colon = o.target.lastIndexOf(':');
    const host = o.target.slice(0, colon);
    const port = Number(o.target.slice(colon + 1));
    return new Promise((resolve, reject) => {
      const socket =
        o.tlsCa === undefined
          ? net.connect({ host, port, noDelay: true })
          : tls.connect({ host, port, ca: o.tlsCa, ALPNProtocols: ['h2'] }).setNoDelay(true);
      let conn: RawH2Connection<L>;
      try {
        conn = new RawH2Connection(socket, o, sink);
      } catch (err) {
        socket.destroy();
        reject(err);
        return;
      }
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect ${o.target}: no SETTINGS after ${o.connectTimeoutMs} ms`));
      }, o.connectTimeoutMs);
      conn.onSettings = () => {
        clearTimeout(timer);
        conn.onSettings = null;
        resolve(conn);
      };
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.on('error', () => conn.fail());
      socket.on('close', () => conn.fail());
      socket.on('data', (d: Buffer) => conn.onData(d));
      socket.once(o.tlsCa === undefined ? 'connect' : 'secureConnect', () => {
        const settings = Buffer.alloc(18);
        settings.writeUInt16BE(S_ENABLE_PUSH, 0);
        settings.writeUInt32BE(0, 2);
        settings.writeUInt16BE(S_INITIAL_WINDOW_SIZE, 6);
        settings.writeUInt32BE(RECV_WINDOW_BYTES, 8);
        settings.writeUInt16BE(S_MAX_FRAME_SIZE, 12);
        settings.writeUInt32BE(FRAME_BYTES_MAX, 14);
        const wu = Buffer.alloc(4);
        wu.writeUInt32BE(RECV_WINDOW_BYTES - DEFAULT_WINDOW_BYTES, 0);
        socket.write(Buffer.concat([PREFACE, frame(T_SETTINGS, 0, 0, settings), frame(T_WINDOW_UPDATE, 0, 0, wu)]));
      });
    });
  }

  private onSettings: (() => void) | null = null;

  /** False once the socket is gone, a GOAWAY arrived or stream ids ran out: issue no more calls here. */
  get usable(): boolean {
    return !this.closedFlag && this.goawayLastSid === STREAM_ID_MAX && this.nextStreamId < STREAM_ID_MAX - 2;
  }

  /** Starts a call with body lane.bodyIndex. If the connection is not usable the call ends at once with 'goaway' or 'rst'. */
  call(lane: L): void {
    if (!this.usable) {
      lane.status = this.closedFlag ? 'rst' : 'goaway';
      this.sink.callEnded(lane);
      return;
    }
    lane.status = '';
    lane.message = '';
    lane.streamId = 0;
    this.pending.push(lane);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushBound);
    }
  }

  /** Closes the socket; calls still running end with 'rst'. */
  destroy(): void {
    this.socket.destroy();
    this.fail();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.closedFlag) return;
    const h = this.headersFrame.length;
    let n = 0;
    let bytes = 0;
    let window = this.sendWindowBytes;
    let active = this.streams.size;
    while (n < this.pending.length && active < this.peerMaxStreams) {
      const b = this.bodies[this.pending[n].bodyIndex];
      if (b.flowBytes > window) break;
      window -= b.flowBytes;
      bytes += h + b.bytes.length;
      active++;
      n++;
    }
    if (n === 0) return;
    const out = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (let i = 0; i < n; i++) {
      const lane = this.pending[i];
      const sid = this.nextStreamId;
      this.nextStreamId += 2;
      lane.streamId = sid;
      this.streams.set(sid, lane);
      this.headersFrame.copy(out, at);
      out.writeUInt32BE(sid, at + 5);
      at += h;
      const b = this.bodies[lane.bodyIndex];
      b.bytes.copy(out, at);
      for (const off of b.sidOffsets) out.writeUInt32BE(sid, at + off);
      at += b.bytes.length;
    }
    this.sendWindowBytes = window;
    this.pending = n === this.pending.length ? [] : this.pending.slice(n);
    this.socket.write(out);
  }

  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let p = 0;
    try {
      while (buf.length - p >= FRAME_HEADER_BYTES) {
        const len = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2];
        if (len > FRAME_BYTES_MAX) throw new Error(`frame of ${len} B exceeds ${FRAME_BYTES_MAX}`);
        if (buf.length - p - FRAME_HEADER_BYTES < len) break;
        const type = buf[p + 3];
        const flags = buf[p + 4];
        const sid = buf.readUInt32BE(p + 5) & STREAM_ID_MAX;
        const start = p + FRAME_HEADER_BYTES;
        p = start + len;
        this.onFrame(type, flags, sid, buf, start, p);
      }
    } catch (err) {
      // A protocol error from the server: drop the connection; its calls end as 'rst'.
      this.lastError = err instanceof HpackError ? err.message : `protocol error: ${(err as Error).message}`;
      this.destroy();
      return;
    }
    if (p < buf.length) this.rest = Buffer.from(buf.subarray(p));
  }

  private onFrame(type: number, flags: number, sid: number, buf: Buffer, start: number, end: number): void {
    if (this.continuation !== null && type !== T_CONTINUATION) throw new Error('expected CONTINUATION');
    switch (type) {
      case T_DATA: {
        this.recvUnacked += end - start;
        if (this.recvUnacked >= RECV_WINDOW_BYTES / 2) this.replenish();
        if (flags & F_END_STREAM) this.end(sid, '');
        break;
      }
      case T_HEADERS: {
        let s = start;
        let e = end;
        if (flags & F_PADDED) {
          e -= buf[s];
          s++;
        }
        if (flags & F_PRIORITY) s += 5;
        if (s > e) throw new Error('bad HEADERS padding');
        if (flags & F_END_HEADERS) this.onHeaderBlock(sid, flags & F_END_STREAM, buf, s, e);
        else this.continuation = { sid, endStream: (flags & F_END_STREAM) !== 0, parts: [Buffer.from(buf.subarray(s, e))], bytes: e - s };
        break;
      }
      case T_CONTINUATION: {
        const c = this.continuation;
        if (c === null || c.sid !== sid) throw new Error('unexpected CONTINUATION');
        c.bytes += end - start;
        if (c.bytes > HEADER_BLOCK_BYTES_MAX) throw new Error(`header block over ${HEADER_BLOCK_BYTES_MAX} B`);
        c.parts.push(Buffer.from(buf.subarray(start, end)));
        if (flags & F_END_HEADERS) {
          this.continuation = null;
          const block = Buffer.concat(c.parts);
          this.onHeaderBlock(sid, c.endStream ? 1 : 0, block, 0, block.length);
        }
        break;
      }
      case T_RST_STREAM:
        this.end(sid, 'rst');
        break;
      case T_SETTINGS: {
        if (flags & F_ACK) break;
        for (let q = start; q + 6 <= end; q += 6) {
          const id = buf.readUInt16BE(q);
          const v = buf.readUInt32BE(q + 2);
          if (id === S_MAX_CONCURRENT_STREAMS) this.peerMaxStreams = v;
          else if (id === S_INITIAL_WINDOW_SIZE && v < RAW_BODY_BYTES_MAX + 5) {
            // Our bodies are sized for the default window; a smaller one would need per-stream accounting.
            for (const b of this.bodies) if (b.flowBytes > v) throw new Error(`peer stream window ${v} B is below a body`);
          }
          // S_HEADER_TABLE_SIZE limits the peer's decoder; our blocks never index, so it needs nothing.
          void S_HEADER_TABLE_SIZE;
        }
        this.socket.write(frame(T_SETTINGS, F_ACK, 0, new Uint8Array(0)));
        if (this.onSettings !== null) this.onSettings();
        if (this.pending.length > 0) this.flush();
        break;
      }
      case T_PING:
        if ((flags & F_ACK) === 0) this.socket.write(frame(T_PING, F_ACK, 0, buf.subarray(start, end)));
        break;
      case T_GOAWAY: {
        this.goawayLastSid = buf.readUInt32BE(start) & STREAM_ID_MAX;
        for (const [id] of this.streams) if (id > this.goawayLastSid) this.end(id, 'goaway');
        const waiting = this.pending;
        this.pending = [];
        for (const lane of waiting) {
          lane.status = 'goaway';
          this.sink.callEnded(lane);
        }
        break;
      }
      case T_WINDOW_UPDATE:
        if (sid === 0) {
          this.sendWindowBytes += buf.readUInt32BE(start) & STREAM_ID_MAX;
          if (this.pending.length > 0 && !this.flushScheduled) {
            this.flushScheduled = true;
            process.nextTick(this.flushBound);
          }
        }
        break;
      default:
        // PRIORITY, PUSH_PROMISE (disabled) and unknown types carry nothing a unary call needs.
        break;
    }
  }

  private onHeaderBlock(sid: number, endStream: number, buf: Buffer, start: number, end: number): void {
    const f = this.fields;
    f.length = 0;
    // Decode every block, even of unknown streams: the dynamic table must follow the server's.
    this.decoder.decode(buf, start, end, f);
    const lane = this.streams.get(sid);
    if (lane !== undefined) {
      for (let i = 0; i < f.length; i += 2) {
        const name = f[i];
        if (name === ':status') {
          if (f[i + 1] !== '200') lane.status = `http-${f[i + 1]}`;
        } else if (name === 'grpc-status' && lane.status === '') lane.status = f[i + 1];
        else if (name === 'grpc-message') lane.message = f[i + 1];
      }
    }
    if (endStream) this.end(sid, '');
  }

  private end(sid: number, status: string): void {
    const lane = this.streams.get(sid);
    if (lane === undefined) return;
    this.streams.delete(sid);
    // A reset or GOAWAY overrides; a stream that ended without any grpc-status counts as reset.
    if (status !== '') lane.status = status;
    else if (lane.status === '') lane.status = 'rst';
    this.sink.callEnded(lane);
  }

  private replenish(): void {
    const wu = Buffer.alloc(4);
    wu.writeUInt32BE(this.recvUnacked, 0);
    this.recvUnacked = 0;
    this.socket.write(frame(T_WINDOW_UPDATE, 0, 0, wu));
  }

  private fail(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    const running = [...this.streams.values(), ...this.pending];
    this.streams.clear();
    this.pending = [];
    for (const lane of running) {
      lane.status = 'rst';
      lane.message = this.lastError;
      this.sink.callEnded(lane);
    }
  }
}
