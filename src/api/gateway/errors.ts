// grpc-gateway v1's error answers as etcd 3.4's gateway gives them: the gRPC code mapped to an HTTP status
// (runtime.HTTPStatusFromCode), a unary error body `{"error","message","code"}` and a stream's error chunk
// `{"error":{"grpc_code","http_code","message","http_status"}}`, strings escaped as Go's encoding/json does.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { GrpcCode } from '../../errors.js';

/** etcd's CORS headers, on every answer of the client port (embed/serve.go addCORSHeader). */
export const CORS_HEADERS: OutgoingHttpHeaders = {
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Headers': 'accept, content-type, authorization',
};

const HTTP_STATUS_OF_CODE: readonly number[] = [
  200, // OK
  408, // Canceled
  500, // Unknown
  400, // InvalidArgument
  504, // DeadlineExceeded
  404, // NotFound
  409, // AlreadyExists
  403, // PermissionDenied
  429, // ResourceExhausted
  412, // FailedPrecondition
  409, // Aborted
  400, // OutOfRange
  501, // Unimplemented
  500, // Internal
  503, // Unavailable
  500, // DataLoss
  401, // Unauthenticated
];

/** Go's http.StatusText for the statuses above. */
const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  412: 'Precondition Failed',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** grpc-gateway's HTTPStatusFromCode. */
export function httpStatusOf(code: number): number {
  return HTTP_STATUS_OF_CODE[code] ?? 500;
}

/** A string as Go's encoding/json writes it: JSON, with <, > and & (and U+2028/9) as \u escapes. */
export function goJsonString(s: string): string {
  const j = JSON.stringify(s);
  if (!/[<>&\u2028\u2029]/.test(j)) return j;
  return j.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The body of a unary error: `{"error":"…","message":"…","code":N}` (empty strings omitted, as jsonpb does). */
export function errorBody(code: number, message: string): string {
  const m = goJsonString(message);
  return message === '' ? `{"code":${code}}` : `{"error":${m},"message":${m},"code":${code}}`;
}

/** The chunk that ends a streaming response with an error. */
export function streamErrorChunk(code: number, message: string): string {
  const http = httpStatusOf(code);
  const m = message === '' ? '' : `"message":${goJsonString(message)},`;
  return `{"error":{"grpc_code":${code},"http_code":${http},${m}"http_status":${JSON.stringify(STATUS_TEXT[http] ?? '')}}}`;
}

/**
 * Answers a request the gateway refuses before any call (undecodable body, too large, too many streams):
 * the unary error body with the status of `code`.
 */
export function replyError(res: ServerResponse, code: GrpcCode, message: string, extraHeaders?: OutgoingHttpHeaders): void {
  const body = errorBody(code, message);
  res.writeHead(httpStatusOf(code), {
    ...CORS_HEADERS,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    ...extraHeaders,
  });
  res.end(body);
}

/** Go's http.Error: a plain-text answer (404 Not Found, 405 Method Not Allowed). */
export function replyPlain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    ...CORS_HEADERS,
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}
