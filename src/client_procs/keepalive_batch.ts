// Keep-alive renewals on the client-process channel, gathered: a client process serves LeaseKeepAlive
// streams itself (keepalive_streams.ts) and sends the renewals of all its streams of one event-loop turn to
// the member as one call of the internal method LeaseKeepAlives; the member renews each lease (a follower
// forwards to the leader) and answers with one TTL or error per lease and the response header it would
// have put on each keep-alive response. This file is the body format of that call and the member's side.
//
// Request body:  u32 count, then count × i64 lease ID
// Answer body:   u64 cluster ID, u64 member ID, i64 revision, u64 Raft term (the member's header() when
//                the last renewal settled), u32 count, then per lease in request order:
//                u8 gRPC code; 0: i64 TTL (-1 when the lease does not exist); else u16 length + UTF-8 message
import type { ResponseHeaderInit } from '../proto/rpc.js';
import type { MemberApi } from '../server/member_api.js';
import { EtcdError, GrpcCode, toEtcdError } from '../errors.js';

/** The most leases one batch carries (32 KiB of IDs); a client process starts another batch past it. */
export const KEEPALIVE_BATCH_IDS_MAX = 4096;
const REQUEST_HEAD_BYTES = 4;
const ANSWER_HEAD_BYTES = 8 + 8 + 8 + 8 + 4;
/** Longest error message an answer carries (u16 length). */
const MESSAGE_BYTES_MAX = 0xffff;

/** One lease's outcome: its TTL (-1 = not found), or the error its renewal failed with. */
export type RenewOutcome = number | EtcdError;

/** A decoded answer. */
export interface KeepAliveAnswer {
  header: ResponseHeaderInit;
  outcomes: RenewOutcome[];
}

/** The request body for `ids`. */
export function encodeKeepAliveBatch(ids: readonly bigint[]): Buffer {
  if (ids.length === 0 || ids.length > KEEPALIVE_BATCH_IDS_MAX) throw new RangeError(`a keep-alive batch of ${ids.length} leases`);
  const b = Buffer.allocUnsafe(REQUEST_HEAD_BYTES + 8 * ids.length);
  b.writeUInt32BE(ids.length, 0);
  for (let i = 0; i < ids.length; i++) b.writeBigInt64BE(ids[i], REQUEST_HEAD_BYTES + 8 * i);
  return b;
}

/** The lease IDs of a request body; throws EtcdError (INVALID_ARGUMENT) on a malformed one. */
export function decodeKeepAliveBatch(body: Uint8Array): bigint[] {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const n = b.length >= REQUEST_HEAD_BYTES ? b.readUInt32BE(0) : -1;
  if (n < 1 || n > KEEPALIVE_BATCH_IDS_MAX || b.length !== REQUEST_HEAD_BYTES + 8 * n)
    throw new EtcdError(GrpcCode.InvalidArgument, `etcdserver: malformed keep-alive batch of ${b.length} bytes`);
  const ids = new Array<bigint>(n);
  for (let i = 0; i < n; i++) ids[i] = b.readBigInt64BE(REQUEST_HEAD_BYTES + 8 * i);
  return ids;
}

/** The answer body. */
export function encodeKeepAliveAnswer(header: ResponseHeaderInit, outcomes: readonly RenewOutcome[]): Buffer {
  let n = ANSWER_HEAD_BYTES;
  const messages: (Buffer | undefined)[] = new Array(outcomes.length);
  for (let i = 0; i < outcomes.length; i++) {
    const o = outcomes[i];
    if (typeof o === 'number') {
      n += 1 + 8;
    } else {
      const m = Buffer.from(o.message, 'utf8');
      messages[i] = m.length > MESSAGE_BYTES_MAX ? m.subarray(0, MESSAGE_BYTES_MAX) : m;
      n += 1 + 2 + messages[i]!.length;
    }
  }
  const b = Buffer.allocUnsafe(n);
  b.writeBigUInt64BE(header.cluster_id ?? 0n, 0);
  b.writeBigUInt64BE(header.member_id ?? 0n, 8);
  b.writeBigInt64BE(BigInt(header.revision ?? 0), 16);
  b.writeBigUInt64BE(BigInt(header.raft_term ?? 0), 24);
  b.writeUInt32BE(outcomes.length, 32);
  let p = ANSWER_HEAD_BYTES;
  for (let i = 0; i < outcomes.length; i++) {
    const o = outcomes[i];
    if (typeof o === 'number') {
      b[p] = 0;
      b.writeBigInt64BE(BigInt(o), p + 1);
      p += 9;
    } else {
      const m = messages[i]!;
      b[p] = o.code === GrpcCode.OK ? GrpcCode.Unknown : o.code;
      b.writeUInt16BE(m.length, p + 1);
      m.copy(b, p + 3);
      p += 3 + m.length;
    }
  }
  return b;
}

/** Decodes an answer of `count` outcomes; returns what is malformed instead if it is. */
export function decodeKeepAliveAnswer(b: Buffer, count: number): KeepAliveAnswer | string {
  if (b.length < ANSWER_HEAD_BYTES) return `keep-alive answer of ${b.length} bytes`;
  if (b.readUInt32BE(32) !== count) return `keep-alive answer of ${b.readUInt32BE(32)} leases for a batch of ${count}`;
  // Fields as the member's header() fills them: IDs as bigint, revision and term as numbers.
  const header: ResponseHeaderInit = {
    cluster_id: b.readBigUInt64BE(0),
    member_id: b.readBigUInt64BE(8),
    revision: Number(b.readBigInt64BE(16)),
    raft_term: Number(b.readBigUInt64BE(24)),
  };
  const outcomes = new Array<RenewOutcome>(count);
  let p = ANSWER_HEAD_BYTES;
  for (let i = 0; i < count; i++) {
    if (p + 1 > b.length) return 'keep-alive answer cut short';
    const code = b[p];
    if (code === 0) {
      if (p + 9 > b.length) return 'keep-alive answer cut short';
      outcomes[i] = Number(b.readBigInt64BE(p + 1));
      p += 9;
    } else {
      if (p + 3 > b.length) return 'keep-alive answer cut short';
      const len = b.readUInt16BE(p + 1);
      if (p + 3 + len > b.length) return 'keep-alive answer cut short';
      outcomes[i] = new EtcdError(
        code <= GrpcCode.Unauthenticated ? (code as GrpcCode) : GrpcCode.Unknown,
        b.toString('utf8', p + 3, p + 3 + len),
      );
      p += 3 + len;
    }
  }
  if (p !== b.length) return 'keep-alive answer has trailing bytes';
  return { header, outcomes };
}

/**
 * The member's answer to a batch: renews every lease (synchronously on the leader in the common case, so
 * the answer is ready in the same turn) and encodes the outcomes with the header. Throws EtcdError on a
 * malformed body; a failed renewal is that lease's outcome, not the batch's.
 *
 *   const answer = renewKeepAliveBatch(member, body);   // Buffer, or a Promise of one on a follower
 */
export function renewKeepAliveBatch(s: MemberApi, body: Uint8Array): Buffer | Promise<Buffer> {
  const ids = decodeKeepAliveBatch(body);
  const outcomes = new Array<RenewOutcome>(ids.length);
  let waits: Promise<void>[] | undefined;
  for (let i = 0; i < ids.length; i++) {
    let r: number | Promise<number>;
    try {
      r = s.leaseRenew(ids[i]);
    } catch (err) {
      outcomes[i] = toEtcdError(err);
      continue;
    }
    if (typeof r === 'number') outcomes[i] = r;
    else (waits ??= []).push(settleInto(outcomes, i, r));
  }
  if (waits === undefined) return encodeKeepAliveAnswer(s.header(), outcomes);
  return Promise.all(waits).then(() => encodeKeepAliveAnswer(s.header(), outcomes));
}

async function settleInto(outcomes: RenewOutcome[], i: number, r: Promise<number>): Promise<void> {
  try {
    outcomes[i] = await r;
  } catch (err) {
    outcomes[i] = toEtcdError(err ?? new EtcdError(GrpcCode.Unknown, 'etcdserver: unknown error'));
  }
}
