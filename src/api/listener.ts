// One listener per client URL: gRPC (HTTP/2) and HTTP/1.1 (JSON gateway, /health, /version, /metrics)
// share the port, as etcd's cmux does. Cleartext connections are told apart by their first bytes (the
// HTTP/2 client preface); TLS connections by ALPN ('h2' or 'http/1.1').
import http, { type RequestListener } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { GrpcServer } from './grpc/server.js';

/** The 24 bytes every HTTP/2 client sends first (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Options of one client listener. */
export interface ClientListenerOptions {
  /** `http://host:port` (or `https://host:port` with `tls`); port 0 picks a free one; `localhost` binds 127.0.0.1. */
  url: string;
  /** Receives every HTTP/2 connection. */
  grpc: GrpcServer;
  /** Handles HTTP/1.1 requests; default answers 404. */
  http1?: RequestListener;
  /** HTTP/1.1 requests with an Upgrade header (the gateway's WebSockets); default: served as `http1` serves them. */
  upgrade?: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** TLS material; required for https:// (ALPN offers h2 and http/1.1). */
  tls?: tls.TlsOptions;
  /** Checks an accepted TLS connection OpenSSL's verification does not cover; a reason closes it. */
  verifyClient?: (socket: tls.TLSSocket) => string | null;
  /** A connection that has not shown which protocol it speaks after this long is closed. Default 10 s. */
  sniffTimeoutMs?: number;
  /** Accepted connections beyond this are refused (net.Server maxConnections). Default unlimited. */
  connectionsMax?: number;
  /**
   * Bind the port alone (default true). False in node:cluster workers: they then share the port the
   * primary binds, which hands each accepted connection to one of them (round robin).
   */
  exclusive?: boolean;
}

/** The open connections of one listener, and whether it is closing (then new ones are dropped). */
class Connections {
  readonly sockets = new Set<net.Socket>();
  /** Connections whose protocol is not known yet. */
  readonly sniffing = new Set<net.Socket>();
  closing = false;
}

/**
 * A bound client port.
 *
 *   const l = await ClientListener.listen({ url: 'http://127.0.0.1:2379', grpc, http1: gateway });
 *   console.log(l.url);      // http://127.0.0.1:2379
 *   await grpc.shutdown();   // gRPC connections are the GrpcServer's to end
 *   await l.close();
 */
export class ClientListener {
  /** The URL with the port actually bound. */
  readonly url: string;
  readonly host: string;
  readonly port: number;

  private readonly server: net.Server;
  private readonly http1Server: http.Server;
  private readonly conns: Connections;

  private constructor(server: net.Server, http1Server: http.Server, conns: Connections, scheme: string, host: string, port: number) {
    this.server = server;
    this.http1Server = http1Server;
    this.conns = conns;
    this.host = host;
    this.port = port;
    this.url = `${scheme}//${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** Binds the URL and starts serving. Rejects if the address is in use or the URL is unsupported. */
  static async listen(options: ClientListenerOptions): Promise<ClientListener> {
    const u = new URL(options.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`listener: unsupported URL scheme in ${options.url}`);
    if (u.protocol === 'https:' && options.tls === undefined) throw new Error(`listener: ${options.url} needs TLS material`);
    if (u.pathname !== '/' && u.pathname !== '') throw new Error(`listener: URL ${options.url} must not have a path`);
    let host = u.hostname.replace(/^\[|\]$/g, '');
    if (host === 'localhost') host = '127.0.0.1';
    const port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
    const sniffTimeoutMs = options.sniffTimeoutMs ?? 10_000;
    if (!(sniffTimeoutMs > 0)) throw new RangeError('listener: sniffTimeoutMs must be positive');

    const http1Server = http.createServer(guardHandler(options.http1 ?? notFound));
    http1Server.on('clientError', onHttp1ClientError);
    if (options.upgrade !== undefined) http1Server.on('upgrade', options.upgrade);
    // This server never listens itself (sockets are handed in), but its connection tracking, which
    // enforces headersTimeout/requestTimeout and lets close() drop idle keep-alive connections,
    // starts on 'listening'.
    http1Server.emit('listening');
    const grpc = options.grpc;

    // Exists before the port is bound: a node:cluster worker can be handed a connection in the same turn
    // as the answer to its listen(), before listen() below has returned.
    const conns = new Connections();
    const track = (socket: net.Socket): boolean => {
      if (conns.closing) {
        socket.destroy();
        return false;
      }
      conns.sockets.add(socket);
      socket.once('close', () => {
        conns.sockets.delete(socket);
        conns.sniffing.delete(socket);
      });
      return true;
    };
    const sniff = (socket: net.Socket): void => {
      conns.sniffing.add(socket);
      sniffProtocol(socket, sniffTimeoutMs, (isH2) => {
        conns.sniffing.delete(socket);
        if (isH2) {
          grpc.handleConnection(socket);
        } else {
          http1Server.emit('connection', socket);
          socket.resume(); // http's listener does not resume a paused socket; the unshifted bytes flow first
        }
      });
    };

    let server: net.Server;
    if (u.protocol === 'https:') {
      server = tls.createServer(
        {
          ...options.tls,
          // The server's order decides: HTTP/1.1 first, so clients offering both (curl, browsers, JSON clients) get
          // the HTTP/1.1 endpoints; gRPC clients offer only h2 and get it.
          ALPNProtocols: ['http/1.1', 'h2'],
          handshakeTimeout: sniffTimeoutMs,
          noDelay: true,
        },
        (socket: tls.TLSSocket) => {
          if (!track(socket)) return;
          if (options.verifyClient !== undefined && options.verifyClient(socket) !== null) {
            socket.destroy();
            return;
          }
          socket.setNoDelay(true);
          if (socket.alpnProtocol === 'h2') grpc.handleConnection(socket);
          else if (socket.alpnProtocol === 'http/1.1') http1Server.emit('connection', socket);
          else sniff(socket); // no ALPN: look at the bytes, as on cleartext
        },
      );
      server.on('tlsClientError', noop);
    } else {
      server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
        if (!track(socket)) return;
        sniff(socket);
      });
    }
    if (options.connectionsMax !== undefined) server.maxConnections = options.connectionsMax;

    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen({ host, port, exclusive: options.exclusive ?? true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', noop);
    const bound = server.address() as net.AddressInfo;
    return new ClientListener(server, http1Server, conns, u.protocol, host, bound.port);
  }

  /** New TLS material (a rotated certificate): connections accepted from now on use it, open ones keep theirs. */
  setSecureContext(options: tls.SecureContextOptions): void {
    if (this.server instanceof tls.Server) this.server.setSecureContext(options);
  }

  /** Open connections (both protocols, including ones still being sniffed). */
  get connections(): number {
    return this.conns.sockets.size;
  }

  /**
   * Stops accepting, drops connections still being sniffed and idle HTTP/1.1 connections, lets
   * in-flight HTTP/1.1 requests finish for up to timeoutMs and then destroys every remaining socket
   * (shut the GrpcServer down first to end gRPC connections gracefully).
   */
  async close(timeoutMs = 5_000): Promise<void> {
    this.conns.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.conns.sniffing) s.destroy();
    this.http1Server.close(noop); // closes idle connections, stops connection tracking
    if (this.conns.sockets.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const forced = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          for (const s of this.conns.sockets) s.destroy();
          resolve();
        }, timeoutMs);
      });
      await Promise.race([closed, forced]);
      clearTimeout(timer);
    }
    await closed;
  }

  /** Stops accepting and destroys every connection now. */
  async destroy(): Promise<void> {
    this.conns.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.http1Server.close(noop);
    for (const s of this.conns.sockets) s.destroy();
    await closed;
  }
}

/**
 * Reads a connection's first bytes to decide between HTTP/2 (the client preface) and HTTP/1.1, puts the
 * bytes back and reports. A connection that neither completes nor contradicts the preface within
 * timeoutMs is destroyed.
 */
function sniffProtocol(socket: net.Socket, timeoutMs: number, decide: (isH2: boolean) => void): void {
  let seen: Buffer | undefined;
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const finish = (isH2: boolean): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.off('error', noop);
    socket.pause();
    if (seen !== undefined) socket.unshift(seen);
    decide(isH2);
  };
  const onData = (chunk: Buffer): void => {
    seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, H2_PREFACE.length);
    if (seen.compare(H2_PREFACE, 0, n, 0, n) !== 0) finish(false);
    else if (n === H2_PREFACE.length) finish(true);
    // else: a prefix of the preface so far; wait for more (bounded by the timer and 24 bytes)
  };
  const onClose = (): void => clearTimeout(timer);
  socket.on('error', noop);
  socket.on('close', onClose);
  socket.on('data', onData);
}

// A handler that throws synchronously must cost its request, not the process.
function guardHandler(handler: RequestListener): RequestListener {
  return (req, res) => {
    try {
      handler(req, res);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${err instanceof Error ? err.message : String(err)}\n`);
    }
  };
}

function notFound(_req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
  res.end('404 page not found\n');
}

function onHttp1ClientError(err: Error & { code?: string }, socket: net.Socket): void {
  if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  else socket.destroy();
}

function noop(): void {}
