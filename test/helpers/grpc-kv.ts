// A deliberately tiny gRPC client for etcd's KV Put and Range over node:http2, written from the wire format
// so that fault tests know exactly which requests were sent and which were answered: no retries, no
// reconnection, no client-side queueing — one HTTP/2 stream per call, an error is an unknown outcome.
import http2 from 'node:http2';

/** Put's answer: the revision the write got. */
export interface PutResult {
  revision: bigint;
}

/** One key-value as Range returns it. */
export interface KvRecord {
  key: Buffer;
  value: Buffer;
  createRevision: bigint;
  modRevision: bigint;
  version: bigint;
}

/** Range's answer. */
export interface RangeResult {
  revision: bigint;
  kvs: KvRecord[];
  count: bigint;
  /** More keys matched than were returned (the limit or the member's --max-range-response-bytes). */
  more: boolean;
}

/** A gRPC call that completed with a non-OK status (a definite answer from the server). */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'GrpcStatusError';
  }
}

const RESPONSE_MAX_BYTES = 64 * 1024 * 1024;

function varint(n: bigint): Buffer {
  const out: number[] = [];
  let v = n;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

function bytesField(field: number, b: Uint8Array): Buffer {
  return Buffer.concat([varint(BigInt((field << 3) | 2)), varint(BigInt(b.length)), b]);
}

/** Walks a protobuf message, calling `on` with each field's number and its varint or bytes value. */
function fields(buf: Buffer, on: (field: number, v: bigint | Buffer) => void): void {
  let i = 0;
  const readVarint = (): bigint => {
    let shift = 0n;
    let v = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const tag = Number(readVarint());
    const field = tag >> 3;
    const wire = tag & 7;
    if (wire === 0) on(field, readVarint());
    else if (wire === 2) {
      const len = Number(readVarint());
      if (i + len > buf.length) throw new Error('truncated field');
      on(field, buf.subarray(i, i + len));
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

function headerRevision(b: Buffer): bigint {
  let rev = 0n;
  fields(b, (f, v) => {
    if (f === 3 && typeof v === 'bigint') rev = v;
  });
  return rev;
}

/**
 * One unary gRPC call on an HTTP/2 session, with no retries: resolves with the response message, rejects with
 * GrpcStatusError for a non-OK status, or an Error when the stream ended without a status (outcome unknown).
 */
export function unaryCall(session: http2.ClientHttp2Session, path: string, body: Uint8Array, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    } catch (e) {
      reject(e as Error);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let status: string | undefined;
    let message = '';
    const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), timeoutMs);
    const takeStatus = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) {
        status = String(h['grpc-status']);
        message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      }
    };
    req.on('response', takeStatus);
    req.on('trailers', takeStatus);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > RESPONSE_MAX_BYTES) req.close(http2.constants.NGHTTP2_CANCEL);
      else chunks.push(c);
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on('close', () => {
      clearTimeout(timer);
      if (status === undefined) {
        reject(new Error(`${path}: stream closed without a status (rst ${req.rstCode})`));
        return;
      }
      if (status !== '0') {
        reject(new GrpcStatusError(Number(status), message));
        return;
      }
      const all = Buffer.concat(chunks);
      if (all.length < 5) {
        reject(new Error(`${path}: empty response`));
        return;
      }
      const len = all.readUInt32BE(1);
      resolve(all.subarray(5, 5 + len));
    });
    const frame = Buffer.alloc(5);
    frame.writeUInt32BE(body.length, 1);
    req.end(Buffer.concat([frame, body]));
  });
}

/**
 * A connection to one member. Calls fail (never retry) when the member dies mid-call.
 *
 *   const kv = new KvClient('127.0.0.1:2379'); const { revision } = await kv.put(k, v, 5000); kv.close();
 */
export class KvClient {
  private readonly session: http2.ClientHttp2Session;

  constructor(endpoint: string) {
    this.session = http2.connect(`http://${endpoint}`);
    this.session.on('error', () => {
      /* surfaced through the calls' own errors */
    });
  }

  private call(path: string, body: Uint8Array, timeoutMs: number): Promise<Buffer> {
    return unaryCall(this.session, path, body, timeoutMs);
  }

  /** KV.Put. */
  async put(key: Uint8Array, value: Uint8Array, timeoutMs: number): Promise<PutResult> {
    const resp = await this.call('/etcdserverpb.KV/Put', Buffer.concat([bytesField(1, key), bytesField(2, value)]), timeoutMs);
    let revision = 0n;
    fields(resp, (f, v) => {
      if (f === 1 && Buffer.isBuffer(v)) revision = headerRevision(v);
    });
    return { revision };
  }

  /** KV.Range over [key, rangeEnd) (rangeEnd omitted = one key). */
  async range(key: Uint8Array, rangeEnd: Uint8Array | null, timeoutMs: number): Promise<RangeResult> {
    const body = rangeEnd === null ? bytesField(1, key) : Buffer.concat([bytesField(1, key), bytesField(2, rangeEnd)]);
    const resp = await this.call('/etcdserverpb.KV/Range', body, timeoutMs);
    const out: RangeResult = { revision: 0n, kvs: [], count: 0n, more: false };
    fields(resp, (f, v) => {
      if (f === 1 && Buffer.isBuffer(v)) out.revision = headerRevision(v);
      else if (f === 3 && typeof v === 'bigint') out.more = v !== 0n;
      else if (f === 4 && typeof v === 'bigint') out.count = v;
      else if (f === 2 && Buffer.isBuffer(v)) {
        const kv: KvRecord = { key: Buffer.alloc(0), value: Buffer.alloc(0), createRevision: 0n, modRevision: 0n, version: 0n };
        fields(v, (kf, kvv) => {
          if (kf === 1 && Buffer.isBuffer(kvv)) kv.key = Buffer.from(kvv);
          else if (kf === 5 && Buffer.isBuffer(kvv)) kv.value = Buffer.from(kvv);
          else if (kf === 2 && typeof kvv === 'bigint') kv.createRevision = kvv;
          else if (kf === 3 && typeof kvv === 'bigint') kv.modRevision = kvv;
          else if (kf === 4 && typeof kvv === 'bigint') kv.version = kvv;
        });
        out.kvs.push(kv);
      }
    });
    return out;
  }

  close(): void {
    this.session.destroy();
  }
}

/** The range_end that selects every key starting with `prefix` (etcd's GetPrefixRangeEnd). */
export function prefixEnd(prefix: Uint8Array): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
