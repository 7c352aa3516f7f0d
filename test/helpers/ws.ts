// A small WebSocket client (RFC 6455) for tests, on net/tls sockets (Node 20 has no WebSocket without a
// flag): the opening handshake, masked text frames out, text/binary/close frames in (control frames
// answered: ping gets pong). What a test sees: the HTTP answer when the upgrade is refused, else the text
// messages in order and how the connection ended.
//
//   const ws = await wsConnect(`${m.clientUrl}/v3/watch`);
//   ws.send('{"create_request":{"key":"YQ=="}}');
//   const first = await ws.next(3000);   // a message, or null when the connection ended first
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';

/** What an opening handshake got: 101 and a socket, or the refusal's status and body. */
export interface WsOpen {
  status: number;
  headers: Record<string, string>;
  /** The refusal's body (empty after a 101). */
  body: string;
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** A test reads no more than this of one message. */
const MESSAGE_BYTES_MAX = 64 * 1024 * 1024;

export class WsClient {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private readonly messages: string[] = [];
  private waiter: (() => void) | undefined;
  /** 'open', or how it ended: 'closed by the server (code)' / 'connection ended without a close frame'. */
  state = 'open';

  constructor(
    readonly open: WsOpen,
    private readonly socket: net.Socket,
    rest: Buffer,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      if (this.state === 'open') this.state = 'connection ended without a close frame';
      this.wake();
    });
    socket.on('error', () => {});
    if (rest.length > 0) this.onData(rest);
  }

  /** Sends one text message (or a frame of another opcode). */
  send(text: string | Buffer, opcode = 1, fin = true): void {
    const payload = typeof text === 'string' ? Buffer.from(text) : text;
    const n = payload.length;
    const head = n < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | n]) : Buffer.alloc(n < 65536 ? 4 : 10);
    if (n >= 126) {
      head[0] = (fin ? 0x80 : 0) | opcode;
      if (n < 65536) {
        head[1] = 0x80 | 126;
        head.writeUInt16BE(n, 2);
      } else {
        head[1] = 0x80 | 127;
        head.writeBigUInt64BE(BigInt(n), 2);
      }
    }
    const mask = randomBytes(4);
    const masked = Buffer.alloc(n);
    for (let i = 0; i < n; i++) masked[i] = payload[i] ^ mask[i & 3];
    this.socket.write(Buffer.concat([head, mask, masked]));
  }

  /** The next text message, or null when the connection ends (or `timeoutMs` passes) first. */
  async next(timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length === 0 && this.state === 'open' && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.messages.shift() ?? null;
  }

  /** Waits until the connection ends (or the timeout passes); returns the state. */
  async ended(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.state === 'open' && Date.now() < deadline) {
      this.messages.length = 0;
      await this.next(deadline - Date.now());
    }
    return this.state;
  }

  /** Sends a close frame and ends the connection. */
  close(): void {
    if (!this.socket.destroyed) {
      this.send(Buffer.from([0x03, 0xe8]), 8);
      this.socket.end();
    }
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const fin = (this.buf[0] & 0x80) !== 0;
      const opcode = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (len > MESSAGE_BYTES_MAX) throw new Error(`ws test client: a ${len}-byte frame`);
      if ((this.buf[1] & 0x80) !== 0) throw new Error('ws test client: the server masked a frame');
      if (this.buf.length < at + len) return;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (opcode === 8) {
        this.state = `closed by the server (${payload.length >= 2 ? payload.readUInt16BE(0) : 'no code'})`;
        this.socket.end();
        this.wake();
        return;
      }
      if (opcode === 9) this.send(payload, 10);
      if (opcode >= 8) continue;
      this.fragments.push(Buffer.from(payload));
      if (fin) {
        this.messages.push(Buffer.concat(this.fragments).toString('utf8'));
        this.fragments = [];
        this.wake();
      }
    }
  }
}

/** Options of the opening handshake. */
export interface WsConnectOptions {
  /** Extra request headers (e.g. Sec-WebSocket-Protocol). */
  headers?: Record<string, string>;
  /** The request method (default GET). */
  method?: string;
  /** TLS options for wss (https:// URLs). */
  tls?: tls.ConnectionOptions;
  timeoutMs?: number;
}

/** Opens a WebSocket to an http(s):// URL: a WsClient after 101, else the refusal (status and body). */
export function wsConnect(url: string, o: WsConnectOptions = {}): Promise<WsClient | WsOpen> {
  const u = new URL(url);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const key = randomBytes(16).toString('base64');
  return new Promise((resolve, reject) => {
    const socket =
      u.protocol === 'https:'
        ? tls.connect({ host: u.hostname, port, ALPNProtocols: ['http/1.1'], ...o.tls })
        : net.connect({ host: u.hostname, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`ws ${url}: no answer to the handshake in time`));
    }, o.timeoutMs ?? 5000);
    socket.once(u.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      const headers: Record<string, string> = {
        Host: u.host,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
        ...o.headers,
      };
      const lines = [`${o.method ?? 'GET'} ${u.pathname}${u.search} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    let head = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...rest] = head.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(statusLine.split(' ')[1]);
      const hs: Record<string, string> = {};
      for (const l of rest) {
        const i = l.indexOf(':');
        hs[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      const after = head.subarray(end + 4);
      if (status === 101) {
        socket.off('data', onData);
        clearTimeout(timer);
        const accept = createHash('sha1')
          .update(key + GUID)
          .digest('base64');
        if (hs['sec-websocket-accept'] !== accept) {
          socket.destroy();
          reject(new Error(`ws ${url}: wrong Sec-WebSocket-Accept`));
          return;
        }
        resolve(new WsClient({ status, headers: hs, body: '' }, socket, after));
        return;
      }
      // A refusal: read its body to the end of the connection or its Content-Length.
      const want = Number(hs['content-length'] ?? NaN);
      if (Number.isFinite(want) && after.length < want) return;
      socket.off('data', onData);
      clearTimeout(timer);
      socket.destroy();
      resolve({ status, headers: hs, body: after.toString('utf8') });
    };
    socket.on('data', onData);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
