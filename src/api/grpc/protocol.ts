// The gRPC-over-HTTP/2 wire conventions the server needs, as pure functions and constants:
// message framing, `grpc-timeout`, `grpc-message` percent-encoding, content-type rules, code names.
import type { GrpcCode } from '../../errors.js';

/** Bytes of the length prefix in front of every gRPC message: 1 flag byte + 4 length bytes (big-endian). */
export const FRAME_HEADER_BYTES = 5;

/** The names grpc-go's `codes.Code.String()` gives, which go-grpc-prometheus uses as the `grpc_code` label. */
export const grpcCodeNames: readonly string[] = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
];
/** Number of gRPC status codes (0..16). */
export const GRPC_CODE_COUNT = 17;

/**
 * Prefixes an encoded message with its 5-byte gRPC frame header (uncompressed) in one buffer.
 *
 *   stream.write(frameMessage(encodePutResponse(res)));
 */
export function frameMessage(body: Uint8Array): Buffer {
  const len = body.length;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + len);
  frame[0] = 0;
  frame[1] = len >>> 24;
  frame[2] = (len >>> 16) & 255;
  frame[3] = (len >>> 8) & 255;
  frame[4] = len & 255;
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

const timeoutUnitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/**
 * Parses a `grpc-timeout` header value ("1S", "4999m", at most 8 digits then a unit) into milliseconds.
 * Throws an Error whose message is grpc-go's for the same defect.
 */
export function parseGrpcTimeoutMs(value: string): number {
  const size = value.length;
  if (size < 2) throw new Error(`transport: timeout string is too short: "${value}"`);
  if (size > 9) throw new Error(`transport: timeout string is too long: "${value}"`);
  const unitMs = timeoutUnitMs[value[size - 1]];
  if (unitMs === undefined) throw new Error(`transport: timeout unit is not recognized: "${value}"`);
  let n = 0;
  for (let i = 0; i < size - 1; i++) {
    const c = value.charCodeAt(i) - 48;
    if (c < 0 || c > 9) throw new Error(`strconv.ParseInt: parsing "${value.slice(0, size - 1)}": invalid syntax`);
    n = n * 10 + c;
  }
  return n * unitMs;
}

/** Formats a timeout the way clients send it (for tests and the load generator): whole milliseconds. */
export function formatGrpcTimeout(timeoutMs: number): string {
  const ms = Math.max(0, Math.ceil(timeoutMs));
  return ms < 1e8 ? `${ms}m` : `${Math.min(99_999_999, Math.ceil(ms / 1000))}S`;
}

/**
 * True for `application/grpc` and its subtypes (`application/grpc+proto`, `application/grpc;charset=...`),
 * case-sensitive: the rule grpc-go applies (grpcutil.ContentSubtype).
 */
export function isGrpcContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  if (contentType === 'application/grpc') return true;
  if (contentType.length <= 16 || !contentType.startsWith('application/grpc')) return false;
  const next = contentType[16];
  return next === '+' || next === ';';
}

/**
 * Percent-encodes a status message for `grpc-message` as the gRPC spec (and grpc-go) does: printable ASCII
 * except '%' passes through, everything else is %XX per UTF-8 byte.
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += '%' + (b < 16 ? '0' : '') + b.toString(16).toUpperCase();
  }
  return out;
}

/** Reverses encodeGrpcMessage; malformed escapes are kept verbatim (as grpc-go does). */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length && /^[0-9a-fA-F]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      for (const b of Buffer.from(value[i], 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The `grpc_type` label of go-grpc-prometheus for a method's streaming shape. */
export type GrpcMethodType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

/** go-grpc-prometheus's classification of a method. */
export function methodType(requestStream: boolean, responseStream: boolean): GrpcMethodType {
  if (requestStream) return responseStream ? 'bidi_stream' : 'client_stream';
  return responseStream ? 'server_stream' : 'unary';
}

/** Every status code is a small integer in [0, 16]. */
export function isGrpcCode(code: number): code is GrpcCode {
  return Number.isInteger(code) && code >= 0 && code < GRPC_CODE_COUNT;
}
