// mvccpb (kv.proto): KeyValue and Event.
// Written by hand as the template that tools/protogen reproduces; see src/proto/README.md.
import { ProtoReader, ProtoWriter, ProtoDecodeError, EMPTY_BYTES, sizeVarint64, sizeVarintBig, sizeDelimited } from './wire.js';

export interface KeyValue {
  key: Uint8Array;
  create_revision: number;
  mod_revision: number;
  version: number;
  value: Uint8Array;
  /** Lease ID; 64-bit, so a bigint. */
  lease: bigint;
}
export type KeyValueInit = Partial<KeyValue>;

export function sizeKeyValue(m: KeyValueInit): number {
  let n = 0;
  if (m.key !== undefined && m.key.length > 0) n += 1 + sizeDelimited(m.key.length);
  if (m.create_revision) n += 1 + sizeVarint64(m.create_revision);
  if (m.mod_revision) n += 1 + sizeVarint64(m.mod_revision);
  if (m.version) n += 1 + sizeVarint64(m.version);
  if (m.value !== undefined && m.value.length > 0) n += 1 + sizeDelimited(m.value.length);
  if (m.lease) n += 1 + sizeVarintBig(m.lease);
  return n;
}

export function writeKeyValue(m: KeyValueInit, w: ProtoWriter): void {
  if (m.key !== undefined && m.key.length > 0) { w.uint32(10); w.bytes(m.key); }
  if (m.create_revision) { w.uint32(16); w.int64(m.create_revision); }
  if (m.mod_revision) { w.uint32(24); w.int64(m.mod_revision); }
  if (m.version) { w.uint32(32); w.int64(m.version); }
  if (m.value !== undefined && m.value.length > 0) { w.uint32(42); w.bytes(m.value); }
  if (m.lease) { w.uint32(48); w.int64Big(m.lease); }
}

export function encodeKeyValue(m: KeyValueInit): Uint8Array {
  const w = new ProtoWriter(sizeKeyValue(m));
  writeKeyValue(m, w);
  return w.finish();
}

export function readKeyValue(r: ProtoReader, end: number): KeyValue {
  const m: KeyValue = { key: EMPTY_BYTES, create_revision: 0, mod_revision: 0, version: 0, value: EMPTY_BYTES, lease: 0n };
  while (r.pos < end) {
    const t = r.tag();
    switch (t) {
      case 10: m.key = r.bytes(); break;
      case 16: m.create_revision = r.int64(); break;
      case 24: m.mod_revision = r.int64(); break;
      case 32: m.version = r.int64(); break;
      case 42: m.value = r.bytes(); break;
      case 48: m.lease = r.int64Big(); break;
      default: r.skip(t & 7);
    }
  }
  if (r.pos !== end) throw new ProtoDecodeError('KeyValue: field runs past the end of the message');
  return m;
}

/** Decodes a KeyValue; bytes fields are views into `buf`. Throws ProtoDecodeError. */
export function decodeKeyValue(buf: Uint8Array): KeyValue {
  const r = new ProtoReader(buf);
  return readKeyValue(r, buf.length);
}

export const Event_EventType = { PUT: 0, DELETE: 1 } as const;
export const Event_EventType_names: Record<number, string> = { 0: 'PUT', 1: 'DELETE' };

export interface Event {
  type: number;
  kv: KeyValue | undefined;
  prev_kv: KeyValue | undefined;
}
export interface EventInit {
  type?: number;
  kv?: KeyValueInit;
  prev_kv?: KeyValueInit;
}

export function sizeEvent(m: EventInit): number {
  let n = 0;
  if (m.type) n += 1 + sizeVarint64(m.type);
  if (m.kv !== undefined) n += 1 + sizeDelimited(sizeKeyValue(m.kv));
  if (m.prev_kv !== undefined) n += 1 + sizeDelimited(sizeKeyValue(m.prev_kv));
  return n;
}

export function writeEvent(m: EventInit, w: ProtoWriter): void {
  if (m.type) { w.uint32(8); w.int32(m.type); }
  if (m.kv !== undefined) { w.uint32(18); w.uint32(sizeKeyValue(m.kv)); writeKeyValue(m.kv, w); }
  if (m.prev_kv !== undefined) { w.uint32(26); w.uint32(sizeKeyValue(m.prev_kv)); writeKeyValue(m.prev_kv, w); }
}

export function encodeEvent(m: EventInit): Uint8Array {
  const w = new ProtoWriter(sizeEvent(m));
  writeEvent(m, w);
  return w.finish();
}

export function readEvent(r: ProtoReader, end: number): Event {
  const m: Event = { type: 0, kv: undefined, prev_kv: undefined };
  while (r.pos < end) {
    const t = r.tag();
    switch (t) {
      case 8: m.type = r.int32(); break;
      case 18: { const e = r.delimitedEnd(); m.kv = readKeyValue(r, e); break; }
      case 26: { const e = r.delimitedEnd(); m.prev_kv = readKeyValue(r, e); break; }
      default: r.skip(t & 7);
    }
  }
  if (r.pos !== end) throw new ProtoDecodeError('Event: field runs past the end of the message');
  return m;
}

export function decodeEvent(buf: Uint8Array): Event {
  return readEvent(new ProtoReader(buf), buf.length);
}
