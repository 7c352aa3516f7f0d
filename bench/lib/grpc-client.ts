// A small unary gRPC client on node:http2 for the bench's setup work (readiness probes, preloading
// keys, the memory workload's bulk load). Not the load generator: it allocates per call and is simple.
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';

/** The outcome of one call; grpcStatus -1 means the transport failed (reset, timeout, refused). */
export interface UnaryResult {
  grpcStatus: number;
  grpcMessage: string;
  body: Buffer;
}

/** Largest response the setup client accepts; setup calls return small messages. */
const RESPONSE_BYTES_MAX = 16 * 1024 * 1024;

/**
 * One HTTP/2 connection to a member.
 *
 *   const c = await GrpcConn.connect('127.0.0.1:2379', 2000);
 *   const r = await c.unary('/etcdserverpb.KV/Put', encodePutRequest({ key, value }), 5000);
 *   c.close();
 */
export class GrpcConn {
  private constructor(private readonly session: ClientHttp2Session) {}

  /** Connects (over TLS verified with tlsCa when given) or rejects within timeoutMs. */
  static connect(target: string, timeoutMs: number, tlsCa?: string): Promise<GrpcConn> {
    return new Promise((resolve, reject) => {
      const session = tlsCa === undefined ? http2.connect(`http://${target}`) : http2.connect(`https://${target}`, { ca: tlsCa });
      const timer = setTimeout(() => {
        session.destroy();
        reject(new Error(`connect ${target}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      session.once('connect', () => {
        clearTimeout(timer);
        session.on('error', () => {});
        resolve(new GrpcConn(session));
      });
      session.once('error', (err) => {
        clearTimeout(timer);
        session.destroy();
        reject(err);
      });
    });
  }

  get closed(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  /** Sends one request message (with `metadata`, e.g. etcd's auth `token`) and collects the response message and status. Never rejects. */
  unary(path: string, body: Uint8Array, timeoutMs: number, metadata?: Readonly<Record<string, string>>): Promise<UnaryResult> {
    return new Promise((resolve) => {
      if (this.closed) {
        resolve({ grpcStatus: -1, grpcMessage: 'connection closed', body: Buffer.alloc(0) });
        return;
      }
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      const req = this.session.request({
        ...metadata,
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const chunks: Buffer[] = [];
      let bytes = 0;
      let status = -1;
      let message = '';
      const take = (h: IncomingHttpHeaders): void => {
        if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
        if (typeof h['grpc-message'] === 'string') message = decodeURIComponent(h['grpc-message']);
      };
      const timer = setTimeout(() => {
        message = `timed out after ${timeoutMs} ms`;
        req.close(http2.constants.NGHTTP2_CANCEL);
      }, timeoutMs);
      req.on('response', take);
      req.on('trailers', take);
      req.on('data', (d: Buffer) => {
        bytes += d.length;
        if (bytes > RESPONSE_BYTES_MAX) {
          message = 'response too large';
          req.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        chunks.push(d);
      });
      req.on('error', (err: Error) => {
        if (message === '') message = err.message;
      });
      req.on('close', () => {
        clearTimeout(timer);
        const all = Buffer.concat(chunks);
        // Strip the 5-byte message prefix; a unary response carries one message.
        const payload = all.length >= 5 ? all.subarray(5, 5 + all.readUInt32BE(1)) : Buffer.alloc(0);
        resolve({ grpcStatus: status, grpcMessage: message, body: payload });
      });
      req.end(frame);
    });
  }

  close(): void {
    this.session.destroy();
  }
}
