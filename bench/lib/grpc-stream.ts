// What a bench generator needs to speak gRPC on a bare node:http2 stream (no client library in the measured
// path): a request framed with gRPC's 5-byte prefix, the stream opened with gRPC's headers, response messages
// split out of DATA chunks, and protobuf varints read in place.
import type http2 from 'node:http2';

/** `body` with gRPC's length prefix (uncompressed). */
export function grpcFrame(body: Uint8Array): Buffer {
  const f = Buffer.alloc(5 + body.length);
  f.writeUInt32BE(body.length, 1);
  f.set(body, 5);
  return f;
}

/** A gRPC call on `session` for `path` (e.g. '/etcdserverpb.Watch/Watch'); errors are ignored (the bench counts answers). */
export function openGrpcStream(session: http2.ClientHttp2Session, path: string): http2.ClientHttp2Stream {
  const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => {});
  return req;
}

/**
 * Splits a response stream's DATA chunks into gRPC messages.
 *
 *   req.on('data', (d) => splitter.push(d, (b, start, end) => parse(b, start, end)));
 */
export class GrpcMessageSplitter {
  private buf: Buffer = Buffer.alloc(0);

  /** Calls `onMessage` with each whole message in `d` (and what was left of the previous chunk), bytes [start, end). */
  push(d: Buffer, onMessage: (b: Buffer, start: number, end: number) => void): void {
    let b = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    let p = 0;
    while (b.length - p >= 5) {
      const len = b.readUInt32BE(p + 1);
      if (b.length - p - 5 < len) break;
      onMessage(b, p + 5, p + 5 + len);
      p += 5 + len;
    }
    b = b.subarray(p);
    this.buf = b.length === 0 ? Buffer.alloc(0) : Buffer.from(b);
  }
}

/** Reads a varint at p; returns [value, next position]. */
export function readVarint(b: Buffer, p: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const x = b[p++];
    v += (x & 0x7f) * mul;
    if (x < 0x80) return [v, p];
    mul *= 128;
  }
}
