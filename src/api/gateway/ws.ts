// WebSocket on the gateway, as etcd 3.4 wraps its grpc-gateway in tmc/grpc-websocket-proxy: a GET to a /v3/
// path with `Upgrade: websocket` becomes that path's call (method POST), each text (or binary) message the
// client sends one line of the request body, each line of the response one text message to the client
// (`{"result":…}` for watch and keep-alive); the connection ends (TCP, no close frame) when the call does.
// The token comes from `Sec-WebSocket-Protocol: Bearer, <token>` (answered with `Bearer`) or a `token`
// cookie, as `Authorization: Bearer <token>`. Limits: one message's bytes (as a request body's), and the
// bytes queued for a client that does not read (the gateway's streaming limit; the call is cut past it).
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { CORS_HEADERS } from './errors.js';

const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_CONTINUATION = 0;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;
const OP_PONG = 10;

/** Whether a comma-separated header lists `token` (case-insensitive), as gorilla's tokenListContainsValue. */
function headerHasToken(v: string | string[] | undefined, token: string): boolean {
  const all = Array.isArray(v) ? v.join(',') : (v ?? '');
  return all.split(',').some((t) => t.trim().toLowerCase() === token);
}

/** websocket.IsWebSocketUpgrade: `Connection: upgrade` and `Upgrade: websocket`. */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return headerHasToken(req.headers.connection, 'upgrade') && headerHasToken(req.headers.upgrade, 'websocket');
}

/** Writes a plain HTTP answer on the raw socket and ends it (a refused handshake, as gorilla's http.Error). */
function refuse(socket: Duplex, status: number, text: string): void {
  const body = `${text}\n`;
  const headers: OutgoingHttpHeaders = {
    ...CORS_HEADERS,
    'Content-Type': 'text/plain; charset=utf-8',
    'Sec-Websocket-Version': '13',
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': Buffer.byteLength(body),
    Connection: 'close',
  };
  const lines = [`HTTP/1.1 ${status} ${text}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${String(v)}`)];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** The request the proxied call sees: grpc-websocket-proxy's Authorization, and the messages as body lines. */
export class WsRequest extends EventEmitter {
  readonly method = 'POST';
  readonly headers: IncomingMessage['headers'] = {};

  constructor(
    readonly url: string,
    upgrade: IncomingMessage,
    private readonly socket: Duplex,
  ) {
    super();
    const proto = upgrade.headers['sec-websocket-protocol'];
    if (proto !== undefined && proto !== '') {
      // transformSubProtocolHeader: "Bearer, <token>" -> "Bearer <token>", anything else -> "".
      const i = proto.indexOf('Bearer,');
      this.headers.authorization = i < 0 ? '' : `Bearer ${proto.slice(i + 'Bearer,'.length).trim()}`;
    }
    const cookie = /(?:^|;\s*)token=([^;]*)/.exec(upgrade.headers.cookie ?? '');
    if (cookie !== null) this.headers.authorization = `Bearer ${cookie[1]}`;
  }

  setEncoding(): this {
    return this;
  }

  pause(): this {
    this.socket.pause();
    return this;
  }

  resume(): this {
    this.socket.resume();
    return this;
  }
}

/**
 * The response the proxied call writes: each line a text message. Headers and status are dropped (as the
 * proxy's in-memory writer does); the end of the response ends the connection.
 */
export class WsResponse extends EventEmitter {
  private partial = '';
  private ended = false;

  constructor(private readonly socket: Duplex) {
    super();
    socket.on('drain', () => this.emit('drain'));
    socket.once('close', () => {
      this.ended = true;
      this.emit('close');
    });
  }

  get destroyed(): boolean {
    return this.ended || this.socket.destroyed;
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  writeHead(): this {
    return this;
  }

  addTrailers(): void {}

  write(chunk: string | Buffer): boolean {
    if (this.ended) return false;
    const text = this.partial + chunk.toString();
    let from = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
      if (nl > from) sendFrame(this.socket, OP_TEXT, Buffer.from(text.slice(from, nl)));
      from = nl + 1;
    }
    this.partial = text.slice(from);
    return this.socket.writableLength === 0;
  }

  end(chunk?: string | Buffer): this {
    if (this.ended) return this;
    if (chunk !== undefined) this.write(chunk);
    if (this.partial !== '') sendFrame(this.socket, OP_TEXT, Buffer.from(this.partial));
    this.partial = '';
    this.ended = true;
    this.socket.end();
    return this;
  }

  destroy(): this {
    this.ended = true;
    this.socket.destroy();
    return this;
  }
}

function sendFrame(socket: Duplex, opcode: number, payload: Buffer): void {
  const n = payload.length;
  let head: Buffer;
  if (n < 126) head = Buffer.from([0x80 | opcode, n]);
  else if (n < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  socket.write(head);
  if (n > 0) socket.write(payload);
}

/** What the server does with a client's frames: its messages, and the end of the connection. */
export interface WsSink {
  message(payload: Buffer): void;
  /** The client closed, broke the protocol or went away; `why` for logs and tests. */
  gone(why: string): void;
}

/**
 * Reads a client's frames (RFC 6455: masked, fragmented messages, control frames between fragments):
 * messages go to the sink, a ping gets its pong, a close frame is echoed and the connection ended. A
 * message larger than `messageBytesMax` or a protocol error ends the connection.
 */
export class WsFrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  /** Bytes the frame at the start of `buf` needs in all (0: not known yet). */
  private need = 0;
  private fragments: Buffer[] = [];
  private fragmentBytes = 0;
  private over = false;

  constructor(
    private readonly socket: Duplex,
    private readonly messageBytesMax: number,
    private readonly sink: WsSink,
  ) {
    socket.on('data', (d: Buffer) => this.push(d));
    socket.on('end', () => this.stop('the client ended the connection'));
    socket.on('close', () => this.stop('the connection closed'));
    socket.on('error', () => {});
  }

  push(d: Buffer): void {
    if (this.over) return;
    // A frame's bytes are gathered until it is whole, then copied once (not once per chunk).
    this.chunks.push(d);
    this.chunkBytes += d.length;
    if (this.buf.length + this.chunkBytes < this.need) return;
    this.buf = Buffer.concat([this.buf, ...this.chunks]);
    this.chunks = [];
    this.chunkBytes = 0;
    this.need = 0;
    while (!this.over && this.frame()) {}
  }

  private stop(why: string): void {
    if (this.over) return;
    this.over = true;
    this.buf = Buffer.alloc(0);
    this.chunks = [];
    this.fragments = [];
    this.sink.gone(why);
  }

  private fail(why: string): void {
    this.stop(why);
    this.socket.destroy();
  }

  /** Takes one whole frame off the buffer; false when more bytes are needed. */
  private frame(): boolean {
    const b = this.buf;
    if (b.length < 2) return false;
    const fin = (b[0] & 0x80) !== 0;
    const opcode = b[0] & 0x0f;
    if ((b[0] & 0x70) !== 0) return this.failed('websocket: RSV bits set');
    if ((b[1] & 0x80) === 0) return this.failed('websocket: bad MASK');
    let len = b[1] & 0x7f;
    let at = 2;
    if (len === 126) {
      if (b.length < 4) return false;
      len = b.readUInt16BE(2);
      at = 4;
    } else if (len === 127) {
      if (b.length < 10) return false;
      const big = b.readBigUInt64BE(2);
      if (big > BigInt(this.messageBytesMax)) return this.failed('websocket: message too big');
      len = Number(big);
      at = 10;
    }
    const control = opcode >= 8;
    if (control && (len > 125 || !fin)) return this.failed('websocket: bad control frame');
    if (!control && this.fragmentBytes + len > this.messageBytesMax) return this.failed('websocket: message too big');
    if (b.length < at + 4 + len) {
      this.need = at + 4 + len;
      return false;
    }
    const mask = b.subarray(at, at + 4);
    const payload = Buffer.from(b.subarray(at + 4, at + 4 + len));
    for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3];
    this.buf = b.subarray(at + 4 + len);
    switch (opcode) {
      case OP_PING:
        sendFrame(this.socket, OP_PONG, payload);
        return true;
      case OP_PONG:
        return true;
      case OP_CLOSE:
        sendFrame(this.socket, OP_CLOSE, payload.subarray(0, 2));
        this.stop('the client closed');
        this.socket.end();
        return false;
      case OP_TEXT:
      case OP_BINARY:
        if (this.fragments.length > 0) return this.failed('websocket: continuation frame expected');
        break;
      case OP_CONTINUATION:
        if (this.fragments.length === 0) return this.failed('websocket: continuation after final message frame');
        break;
      default:
        return this.failed(`websocket: unknown opcode ${opcode}`);
    }
    this.fragments.push(payload);
    this.fragmentBytes += len;
    if (fin) {
      const message = this.fragments.length === 1 ? this.fragments[0] : Buffer.concat(this.fragments);
      this.fragments = [];
      this.fragmentBytes = 0;
      this.sink.message(message);
    }
    return true;
  }

  private failed(why: string): false {
    this.fail(why);
    return false;
  }
}

/**
 * The opening handshake as gorilla's Upgrader answers it: refused with its status (400, 405) or accepted
 * with 101 (echoing `Sec-WebSocket-Protocol: Bearer` when the client offered a bearer token). True when
 * the connection is now a WebSocket.
 */
export function acceptHandshake(req: IncomingMessage, socket: Duplex): boolean {
  if (req.method !== 'GET') {
    refuse(socket, 405, 'Method Not Allowed');
    return false;
  }
  const key = req.headers['sec-websocket-key'];
  if (!headerHasToken(req.headers['sec-websocket-version'], '13') || key === undefined || key === '') {
    refuse(socket, 400, 'Bad Request');
    return false;
  }
  const accept = createHash('sha1')
    .update(key + ACCEPT_GUID)
    .digest('base64');
  const proto = (req.headers['sec-websocket-protocol'] ?? '').startsWith('Bearer') ? 'Sec-WebSocket-Protocol: Bearer\r\n' : '';
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${proto}\r\n`,
  );
  return true;
}

/** The proxied request/response pair of one WebSocket, cast for the gateway's handlers. */
export function wsExchange(
  url: string,
  req: IncomingMessage,
  socket: Duplex,
): { req: IncomingMessage; res: ServerResponse; wsReq: WsRequest } {
  const wsReq = new WsRequest(url, req, socket);
  const res = new WsResponse(socket);
  return { req: wsReq as unknown as IncomingMessage, res: res as unknown as ServerResponse, wsReq };
}
