// A tiny hand-written gRPC service for tests and the bench: message Echo, its codec, and descriptors of the
// Echo methods (unary, slow, failing, server-streaming, bidi) as src/proto's generated ones look.
import { ProtoReader, ProtoWriter, EMPTY_BYTES, sizeDelimited, sizeString, sizeVarint32 } from '../../src/proto/wire.js';
import type { MethodDescriptor } from '../../src/api/grpc/server.js';

/** message Echo { bytes payload = 1; uint32 n = 2; string text = 3; } */
export interface Echo {
  payload: Uint8Array;
  n: number;
  text: string;
}

export function sizeEcho(m: Partial<Echo>): number {
  const p = m.payload ?? EMPTY_BYTES;
  const n = m.n ?? 0;
  const textBytes = sizeString(m.text ?? '');
  let size = 0;
  if (p.length > 0) size += 1 + sizeDelimited(p.length);
  if (n !== 0) size += 1 + sizeVarint32(n);
  if (textBytes > 0) size += 1 + sizeDelimited(textBytes);
  return size;
}

export function writeEcho(m: Partial<Echo>, w: ProtoWriter): void {
  const p = m.payload ?? EMPTY_BYTES;
  const n = m.n ?? 0;
  const text = m.text ?? '';
  if (p.length > 0) {
    w.uint32(10);
    w.bytes(p);
  }
  if (n !== 0) {
    w.uint32(16);
    w.uint32(n);
  }
  if (text !== '') {
    w.uint32(26);
    w.string(text, sizeString(text));
  }
}

export function encodeEcho(m: Partial<Echo>): Uint8Array {
  const w = new ProtoWriter(sizeEcho(m));
  writeEcho(m, w);
  return w.finish();
}

export function decodeEcho(buf: Uint8Array): Echo {
  const r = new ProtoReader(buf);
  const m: Echo = { payload: EMPTY_BYTES, n: 0, text: '' };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t) {
      case 10:
        m.payload = r.bytes();
        break;
      case 16:
        m.n = r.uint32();
        break;
      case 26:
        m.text = r.string();
        break;
      default:
        r.skip(t & 7);
    }
  }
  return m;
}

function desc(path: string, requestStream: boolean, responseStream: boolean): MethodDescriptor<Echo, Partial<Echo>> {
  return { path, requestStream, responseStream, decodeRequest: decodeEcho, encodeResponse: encodeEcho };
}

/** The test service's methods. Unary writes responses in place (sizeResponse/writeResponse); the rest encode. */
export const EchoService = {
  Unary: { ...desc('/test.Echo/Unary', false, false), sizeResponse: sizeEcho, writeResponse: writeEcho },
  Slow: desc('/test.Echo/Slow', false, false),
  Fail: desc('/test.Echo/Fail', false, false),
  Stream: desc('/test.Echo/Stream', false, true),
  Bidi: desc('/test.Echo/Bidi', true, true),
} as const;
