// The frames of lease forwarding between members (etcd's /leases and /leases/internal peer endpoints):
// a follower asks the leader to renew a lease or to say its remaining TTL, on the peer streams Raft already
// uses (FrameType.Lease), and the leader answers on its own stream back. Our own format, as all peer
// traffic is:
//   request:  [u8 kind 1 = renew, 2 = time-to-live][u32 request ID][u8 flags: 1 = with keys][i64 lease ID]
//   answer:   [u8 kind 3][u32 request ID][u8 status][i64 TTL][i64 granted TTL][u32 key count]([u32 length][key])*

export const LeaseFrameKind = { Renew: 1, TimeToLive: 2, Answer: 3 } as const;

/** How the leader answered. */
export const LeaseAnswerStatus = {
  Ok: 0,
  NotFound: 1,
  /** The receiver is not the leader (any more): ask the leader again. */
  NotLeader: 2,
} as const;

export interface LeaseRequestFrame {
  kind: typeof LeaseFrameKind.Renew | typeof LeaseFrameKind.TimeToLive;
  requestId: number;
  leaseId: bigint;
  withKeys: boolean;
}

export interface LeaseAnswerFrame {
  kind: typeof LeaseFrameKind.Answer;
  requestId: number;
  status: number;
  ttlSec: number;
  grantedTtlSec: number;
  keys: Buffer[];
}

const REQUEST_BYTES = 14;
const ANSWER_HEAD_BYTES = 26;

export function encodeLeaseRequest(r: LeaseRequestFrame): Buffer {
  const b = Buffer.allocUnsafe(REQUEST_BYTES);
  b[0] = r.kind;
  b.writeUInt32BE(r.requestId, 1);
  b[5] = r.withKeys ? 1 : 0;
  b.writeBigInt64BE(r.leaseId, 6);
  return b;
}

export function encodeLeaseAnswer(a: Omit<LeaseAnswerFrame, 'kind'>): Buffer {
  let n = ANSWER_HEAD_BYTES;
  for (const k of a.keys) n += 4 + k.length;
  const b = Buffer.allocUnsafe(n);
  b[0] = LeaseFrameKind.Answer;
  b.writeUInt32BE(a.requestId, 1);
  b[5] = a.status;
  b.writeBigInt64BE(BigInt(a.ttlSec), 6);
  b.writeBigInt64BE(BigInt(a.grantedTtlSec), 14);
  b.writeUInt32BE(a.keys.length, 22);
  let p = ANSWER_HEAD_BYTES;
  for (const k of a.keys) {
    b.writeUInt32BE(k.length, p);
    k.copy(b, p + 4);
    p += 4 + k.length;
  }
  return b;
}

/** Decodes a lease frame; throws on a malformed one (the caller drops it). */
export function decodeLeaseFrame(v: Uint8Array): LeaseRequestFrame | LeaseAnswerFrame {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const kind = b[0];
  if (kind === LeaseFrameKind.Renew || kind === LeaseFrameKind.TimeToLive) {
    if (b.length !== REQUEST_BYTES) throw new Error(`lease request frame of ${b.length} bytes`);
    return { kind, requestId: b.readUInt32BE(1), withKeys: (b[5] & 1) !== 0, leaseId: b.readBigInt64BE(6) };
  }
  if (kind !== LeaseFrameKind.Answer || b.length < ANSWER_HEAD_BYTES) throw new Error(`bad lease frame (kind ${kind}, ${b.length} bytes)`);
  const count = b.readUInt32BE(22);
  const keys: Buffer[] = [];
  let p = ANSWER_HEAD_BYTES;
  for (let i = 0; i < count; i++) {
    if (p + 4 > b.length) throw new Error('lease answer frame cut short');
    const len = b.readUInt32BE(p);
    if (p + 4 + len > b.length) throw new Error('lease answer frame cut short');
    keys.push(Buffer.from(b.subarray(p + 4, p + 4 + len)));
    p += 4 + len;
  }
  return {
    kind,
    requestId: b.readUInt32BE(1),
    status: b[5],
    ttlSec: Number(b.readBigInt64BE(6)),
    grantedTtlSec: Number(b.readBigInt64BE(14)),
    keys,
  };
}
