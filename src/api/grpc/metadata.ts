// Request metadata of a gRPC call: a read-only view over the HTTP/2 request headers, built lazily so
// a call that never looks at its metadata pays nothing. etcd's auth token arrives as the `token` key.
import type { IncomingHttpHeaders } from 'node:http2';

// Headers that carry the protocol, not application metadata (grpc-go's isReservedHeader), minus the
// ones grpc-go still exposes (`user-agent`; `:authority` is exposed under its pseudo name).
const reserved = new Set([
  'content-type',
  'grpc-message-type',
  'grpc-encoding',
  'grpc-message',
  'grpc-status',
  'grpc-timeout',
  'grpc-status-details-bin',
  'te',
  'grpc-accept-encoding',
]);

/**
 * Lower-cased keys; text values as strings, `-bin` values as decoded bytes.
 *
 *   const token = call.metadata.get('token');           // etcd auth token or undefined
 *   const trace = call.metadata.getBinary('trace-bin');
 */
export class Metadata {
  constructor(private readonly headers: IncomingHttpHeaders) {}

  /** The value of a text key (several values arrive joined by ", "), or undefined. */
  get(key: string): string | undefined {
    if (isHidden(key)) return undefined;
    const v = this.headers[key];
    if (v === undefined) return undefined;
    return typeof v === 'string' ? v : v.join(', ');
  }

  /** The decoded bytes of a `-bin` key (the first value if several were sent), or undefined. */
  getBinary(key: string): Buffer | undefined {
    if (!key.endsWith('-bin') || isHidden(key)) return undefined;
    const v = this.get(key);
    if (v === undefined) return undefined;
    const comma = v.indexOf(',');
    return decodeBase64(comma < 0 ? v : v.slice(0, comma));
  }

  /** Every decoded value of a `-bin` key (values are comma-separated on the wire). */
  getAllBinary(key: string): Buffer[] {
    const v = key.endsWith('-bin') ? this.get(key) : undefined;
    if (v === undefined) return [];
    return v.split(',').map((s) => decodeBase64(s.trim()));
  }

  /** The metadata keys present (protocol headers excluded). */
  keys(): string[] {
    const out: string[] = [];
    for (const k of Object.keys(this.headers)) if (!isHidden(k)) out.push(k);
    return out;
  }
}

function isHidden(key: string): boolean {
  return (key.charCodeAt(0) === 58 /* ':' */ && key !== ':authority') || reserved.has(key);
}

// Senders may or may not pad; Buffer.from(..., 'base64') accepts both and the URL-safe alphabet.
function decodeBase64(s: string): Buffer {
  return Buffer.from(s, 'base64');
}
