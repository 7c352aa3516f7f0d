// The bytes of a proposal: a request wrapped in the InternalRequest envelope that goes into a Raft entry.
import {
  sizePutRequest,
  writePutRequest,
  sizeTxnRequest,
  writeTxnRequest,
  sizeDeleteRangeRequest,
  writeDeleteRangeRequest,
} from '../proto/rpc.js';
import {
  encodeInternalRequest,
  sizeRequestHeader,
  writeRequestHeader,
  type InternalRequestInit,
  type RequestHeaderInit,
} from '../proto/internal.js';
import { ProtoWriter, sizeVarintBig, sizeDelimited } from '../proto/wire.js';

/**
 * Encodes the Raft entry for a request. The hot requests (put, delete, txn) are written directly:
 * the generic encoder probes every one of the envelope's ~30 optional fields twice per request.
 */
export function encodeProposal(id: bigint, init: Omit<InternalRequestInit, 'ID'>): Uint8Array {
  // The caller (auth on) rides along as the header: still the direct path.
  const h = init.header;
  if (init.put !== undefined) return encodeEnvelope(id, 34, init.put, sizePutRequest, writePutRequest, h);
  if (init.txn !== undefined) return encodeEnvelope(id, 50, init.txn, sizeTxnRequest, writeTxnRequest, h);
  if (init.delete_range !== undefined) return encodeEnvelope(id, 42, init.delete_range, sizeDeleteRangeRequest, writeDeleteRangeRequest, h);
  return encodeInternalRequest({ ...init, ID: id });
}

/** InternalRequest{ID: id, <field with tag byte `tag`>: m, header}, byte for byte what encodeInternalRequest writes. */
function encodeEnvelope<T>(
  id: bigint,
  tag: number,
  m: T,
  size: (m: T) => number,
  write: (m: T, w: ProtoWriter) => void,
  header: RequestHeaderInit | undefined,
): Uint8Array {
  const body = size(m);
  const hb = header === undefined ? 0 : sizeRequestHeader(header);
  const w = new ProtoWriter(1 + sizeVarintBig(id) + 1 + sizeDelimited(body) + (header === undefined ? 0 : 2 + sizeDelimited(hb)));
  w.uint32(8);
  w.int64Big(id);
  w.uint32(tag);
  w.uint32(body);
  write(m, w);
  if (header !== undefined) {
    w.uint32(802);
    w.uint32(hb);
    writeRequestHeader(header, w);
  }
  return w.finish();
}
