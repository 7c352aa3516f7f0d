// One gateway request as the gRPC server sees it: a GrpcStream (what an HTTP/2 stream is to a ServerCall)
// whose request side is fed with the gRPC-framed messages the gateway decoded from JSON, and whose response
// side turns gRPC-framed responses and the status into grpc-gateway v1's HTTP answer: one JSON body, or for a
// streaming method newline-separated `{"result":…}` objects, errors as etcd 3.4's gateway words them.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { GrpcSession, GrpcStream } from '../grpc/call.js';
import { decodeGrpcMessage, FRAME_HEADER_BYTES } from '../grpc/protocol.js';
import type { AnyMethodDescriptor } from '../../proto/service.js';
import { GrpcCode } from '../../errors.js';
import { CORS_HEADERS, errorBody, httpStatusOf, streamErrorChunk } from './errors.js';

/** What a call needs from the gateway that made it. */
export interface CallOwner {
  readonly session: GrpcSession;
  /** A streaming response may hold this many bytes not yet taken by the client; past it the call is cut. */
  readonly streamBufferedBytesMax: number;
}

const UNARY_OK_HEADERS: OutgoingHttpHeaders = {
  ...CORS_HEADERS,
  'Content-Type': 'application/json',
  'Grpc-Metadata-Content-Type': 'application/grpc',
};
const STREAM_OK_HEADERS = UNARY_OK_HEADERS;
const STATUS_ERROR_HEADERS: OutgoingHttpHeaders = {
  ...CORS_HEADERS,
  'Content-Type': 'application/json',
  Trailer: 'Grpc-Trailer-Content-Type',
};
const STATUS_ERROR_TRAILERS = { 'Grpc-Trailer-Content-Type': 'application/grpc' };
const STREAM_ERROR_HEADERS: OutgoingHttpHeaders = { ...CORS_HEADERS, 'Content-Type': 'application/json' };

type Listener = (this: GatewayCall, arg?: unknown) => void;

/**
 * A gRPC call made from one HTTP/1.1 request.
 *
 *   const call = new GatewayCall(owner, desc, req, res);
 *   grpc.handleLocalStream(call, headers, true);
 *   call.pushMessage(framedRequest);
 *   call.pushEnd();
 */
export class GatewayCall implements GrpcStream {
  readonly id = undefined;
  private readonly listeners = new Map<string, Listener[]>();
  private statusSeen = false;
  private waitForTrailers = false;
  private grpcHeadersSent = false;
  private httpHeadersSent = false;
  private over = false;
  private unaryJson: string | undefined = undefined;

  constructor(
    private readonly owner: CallOwner,
    private readonly desc: AnyMethodDescriptor,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    res.on('close', this.onResponseClose);
    res.on('drain', this.onResponseDrain);
    // A client already gone: the call ends as soon as it starts (its 'close' listeners are on by then).
    if (res.destroyed) queueMicrotask(this.onResponseClose);
  }

  // ---- GrpcStream: what the ServerCall sees ----

  get destroyed(): boolean {
    return this.over;
  }
  get closed(): boolean {
    return this.over;
  }
  get headersSent(): boolean {
    return this.grpcHeadersSent;
  }
  /** Bytes of the HTTP response not yet taken by the client (the ServerCall's send queue). */
  get writableLength(): number {
    return this.over ? 0 : this.res.writableLength;
  }
  get session(): GrpcSession {
    return this.owner.session;
  }

  respond(headers: OutgoingHttpHeaders, options?: { endStream?: boolean; waitForTrailers?: boolean }): void {
    this.grpcHeadersSent = true;
    const status = headers['grpc-status'];
    if (status !== undefined) {
      this.onStatus(Number(status), decodeGrpcMessage(String(headers['grpc-message'] ?? '')));
      this.finish();
      return;
    }
    this.waitForTrailers = options?.waitForTrailers === true;
    if (options?.endStream === true) this.finish();
  }

  write(chunk: Uint8Array): boolean {
    if (!this.over) this.onFramed(chunk);
    return true;
  }

  end(chunk?: Uint8Array): void {
    if (this.over) return;
    if (chunk !== undefined && chunk.length > 0) this.onFramed(chunk);
    if (this.over) return;
    if (this.waitForTrailers) queueMicrotask(() => this.emit('wantTrailers'));
    else this.finish();
  }

  sendTrailers(headers: OutgoingHttpHeaders): void {
    if (this.over) return;
    this.onStatus(Number(headers['grpc-status'] ?? 0), decodeGrpcMessage(String(headers['grpc-message'] ?? '')));
    this.finish();
  }

  /** The server resets the stream: after its status nothing is lost; before it, the HTTP exchange is cut. */
  close(): void {
    if (this.over) return;
    if (!this.statusSeen) this.res.destroy();
    this.finish();
  }

  destroy(): void {
    this.close();
  }

  pause(): void {
    this.req.pause();
  }

  resume(): void {
    this.req.resume();
  }

  on(event: string, listener: Listener): this {
    let l = this.listeners.get(event);
    if (l === undefined) this.listeners.set(event, (l = []));
    l.push(listener);
    return this;
  }

  off(event: string, listener: Listener): this {
    const l = this.listeners.get(event);
    if (l !== undefined) {
      const i = l.indexOf(listener);
      if (i >= 0) l.splice(i, 1);
    }
    return this;
  }

  // ---- the gateway's side ----

  /** One gRPC-framed request message from the client. */
  pushMessage(framed: Buffer): void {
    if (!this.over) this.emit('data', framed);
  }

  /** The client sent its last request message. */
  pushEnd(): void {
    if (!this.over) this.emit('end');
  }

  private emit(event: string, arg?: unknown): void {
    const l = this.listeners.get(event);
    if (l === undefined) return;
    for (const fn of l.length === 1 ? l : [...l]) fn.call(this, arg);
  }

  private finish(): void {
    if (this.over) return;
    this.over = true;
    this.res.off('drain', this.onResponseDrain);
    // The ServerCall learns of the end after the call that ended it returns, as with node:http2.
    queueMicrotask(() => this.emit('close'));
  }

  /** The client went away (or the response ended): a call still running is cancelled. */
  private readonly onResponseClose = (): void => {
    this.finish();
  };

  private readonly onResponseDrain = (): void => {
    this.emit('drain');
  };

  /** Response messages, each with its 5-byte gRPC prefix (one or several back to back). */
  private onFramed(chunk: Uint8Array): void {
    const desc = this.desc;
    let pos = 0;
    while (pos + FRAME_HEADER_BYTES <= chunk.length) {
      const len = ((chunk[pos + 1] << 24) >>> 0) + (chunk[pos + 2] << 16) + (chunk[pos + 3] << 8) + chunk[pos + 4];
      const body = chunk.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + len);
      pos += FRAME_HEADER_BYTES + len;
      const json = JSON.stringify(desc.responseToJson(desc.decodeResponse(body) as never));
      if (!desc.responseStream) {
        this.unaryJson = json;
        continue;
      }
      this.writeResult(json);
      if (this.over) return;
    }
  }

  private writeResult(json: string): void {
    const res = this.res;
    if (!this.httpHeadersSent) {
      this.httpHeadersSent = true;
      res.writeHead(200, STREAM_OK_HEADERS);
    }
    res.write(`{"result":${json}}\n`);
    if (res.writableLength > this.owner.streamBufferedBytesMax) {
      // The client does not read: cut it off rather than hold its responses without bound.
      res.destroy();
      this.finish();
    }
  }

  private onStatus(code: number, message: string): void {
    if (this.statusSeen) return;
    this.statusSeen = true;
    const res = this.res;
    if (res.destroyed) return;
    if (!this.desc.responseStream) {
      if (code === GrpcCode.OK && this.unaryJson !== undefined) {
        res.writeHead(200, { ...UNARY_OK_HEADERS, 'Content-Length': Buffer.byteLength(this.unaryJson) });
        res.end(this.unaryJson);
        return;
      }
      if (code === GrpcCode.OK) {
        code = GrpcCode.Internal;
        message = 'grpc: the server answered without a response message';
      }
      res.writeHead(httpStatusOf(code), STATUS_ERROR_HEADERS);
      res.addTrailers(STATUS_ERROR_TRAILERS);
      res.end(errorBody(code, message));
      return;
    }
    if (code === GrpcCode.OK) {
      if (!this.httpHeadersSent) {
        this.httpHeadersSent = true;
        res.writeHead(200, STREAM_ERROR_HEADERS);
      }
      res.end();
      return;
    }
    if (!this.httpHeadersSent) {
      this.httpHeadersSent = true;
      res.writeHead(httpStatusOf(code), STREAM_ERROR_HEADERS);
    }
    res.end(streamErrorChunk(code, message));
  }
}
