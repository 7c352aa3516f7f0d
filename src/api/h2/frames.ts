// HTTP/2's wire constants (RFC 9113 §3.4, §6, §7, §11.2), one copy for the server session, the bench's raw
// client and the tests that speak HTTP/2 frame by frame.

/** The client connection preface. */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_BYTES = 9;

// Frame types.
export const T_DATA = 0x0,
  T_HEADERS = 0x1,
  T_PRIORITY = 0x2,
  T_RST_STREAM = 0x3,
  T_SETTINGS = 0x4,
  T_PUSH_PROMISE = 0x5,
  T_PING = 0x6,
  T_GOAWAY = 0x7,
  T_WINDOW_UPDATE = 0x8,
  T_CONTINUATION = 0x9;

// Frame flags.
export const F_END_STREAM = 0x1,
  F_ACK = 0x1,
  F_END_HEADERS = 0x4,
  F_PADDED = 0x8,
  F_PRIORITY = 0x20;

// SETTINGS identifiers.
export const S_HEADER_TABLE_SIZE = 0x1,
  S_ENABLE_PUSH = 0x2,
  S_MAX_CONCURRENT_STREAMS = 0x3,
  S_INITIAL_WINDOW_SIZE = 0x4,
  S_MAX_FRAME_SIZE = 0x5,
  S_MAX_HEADER_LIST_SIZE = 0x6;

/** HTTP/2 error codes (RFC 9113 §7); node:http2 names them NGHTTP2_*. */
export const H2Error = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  SETTINGS_TIMEOUT: 4,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  CONNECT_ERROR: 10,
  ENHANCE_YOUR_CALM: 11,
  INADEQUATE_SECURITY: 12,
  HTTP_1_1_REQUIRED: 13,
} as const;
