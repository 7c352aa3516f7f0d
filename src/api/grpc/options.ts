// The gRPC server's options (etcd 3.4's defaults are in server.ts), apart from the server so that the calls
// (call.ts) can read them without importing the server.

/** Options; defaults are etcd 3.4's. */
export interface GrpcServerOptions {
  /** Largest request message; etcd: --max-request-bytes + 512 KiB. Default 2 MiB. */
  maxRecvMessageBytes?: number;
  /** Largest response message; etcd: MaxInt32. */
  maxSendMessageBytes?: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; etcd --max-concurrent-streams, default 2^32-1. */
  maxConcurrentStreams?: number;
  /** Ping a connection idle this long (etcd --grpc-keepalive-interval, 2 h); 0 = never. */
  keepaliveIntervalMs?: number;
  /** Close a connection whose keepalive ping is not answered within this (etcd --grpc-keepalive-timeout, 20 s). */
  keepaliveTimeoutMs?: number;
  /** Clients may ping at most this often (etcd --grpc-keepalive-min-time, 5 s); 0 = no policing. */
  keepaliveMinTimeMs?: number;
  /** Streaming write() returns false above this many queued bytes. Default 1 MiB. */
  sendQueueBytesHigh?: number;
  /** A streaming call whose queue passes this is cancelled (RESOURCE_EXHAUSTED). Default 64 MiB. */
  sendQueueBytesMax?: number;
  /** Bidi messages queued before the handler set onMessage; beyond it the stream is paused. Default 64. */
  inboundQueueMessagesMax?: number;
  /** Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). Default 1 MiB. */
  streamWindowBytes?: number;
  /** Per-connection receive window. Default 16 MiB. */
  connectionWindowBytes?: number;
  /** Node's cap on one session's buffered memory (maxSessionMemory). Default 128 MiB. */
  sessionMemoryMaxMb?: number;
  /**
   * Who speaks HTTP/2: 'node' (node:http2, nghttp2) or 'raw' (api/h2: frames parsed and written on the
   * socket by tetcd itself, one object per stream). Default 'raw': it measured 2× node:http2's put rate
   * (bench/RESULTS.md, "The raw HTTP/2 engine").
   */
  engine?: GrpcEngine;
}

/** HTTP/2 implementations the server can run on. */
export type GrpcEngine = 'node' | 'raw';
export const GRPC_ENGINES: readonly GrpcEngine[] = ['node', 'raw'];

/** Options after defaults. */
export type ResolvedServerOptions = Readonly<Required<GrpcServerOptions>>;
