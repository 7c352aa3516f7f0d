// LeaseKeepAlive streams served in the client process (--client-workers): each stream answers its client
// as the member's stream does (api/rpc.ts serveLeaseKeepAlive: one response per request, in order, TTL 0
// for an unknown lease, the member's header, paused past KEEPALIVES_QUEUED_PER_STREAM_MAX waiting), while
// the renewals of all streams of one event-loop turn go to the member as one batch (keepalive_batch.ts).
// A stream has at most one batch in flight, so its answers stay in order; the batches in flight are
// bounded, so a member that does not answer holds streams paused, not memory growing. What a paused
// stream still receives (the client's HTTP/2 window) is bounded in bytes, as a forwarded stream's is.
import type { CallContext } from '../api/context.js';
import { KEEPALIVES_QUEUED_PER_STREAM_MAX, type RpcBidiStream } from '../api/rpc.js';
import { EtcdError, Errors, GrpcCode, toEtcdError } from '../errors.js';
import { ProtoWriter, sizeVarint32, sizeVarint64, sizeVarintBig } from '../proto/wire.js';
import { encodeResponseHeader } from '../proto/rpc.js';
import type { LeaseKeepAliveRequest, LeaseKeepAliveResponseInit, ResponseHeaderInit } from '../proto/rpc.js';
import { assert } from '../assert.js';
import { KEEPALIVE_BATCH_IDS_MAX, decodeKeepAliveAnswer, encodeKeepAliveBatch, type RenewOutcome } from './keepalive_batch.js';

/** Batches waiting for the member's answer; past it renewals wait for one to come back. */
export const KEEPALIVE_BATCHES_IN_FLIGHT_MAX = 16;
/** gRPC's prefix in front of a message: flag byte + u32 length. */
const GRPC_PREFIX_BYTES = 5;

/** Bytes of a keep-alive request for lease `id` as the client sent it (its canonical encoding, prefix included). */
export function keepAliveRequestBytes(id: bigint): number {
  return GRPC_PREFIX_BYTES + (id === 0n ? 0 : 1 + (id < 0n ? 10 : sizeVarintBig(id)));
}

/** What a keep-alive stream needs of its gRPC call (ServerCall has it all). */
export type KeepAliveCall = RpcBidiStream<LeaseKeepAliveRequest, LeaseKeepAliveResponseInit> &
  Pick<CallContext, 'onCancel' | 'requireLeader'> & {
    /** Sends a response already framed for gRPC (5-byte prefix + protobuf). */
    writeFramed(framed: Uint8Array): boolean;
  };

/** What the streams need of the member's end of the channel (Forwarder implements it). */
export interface KeepAliveMember {
  /** Sends a batch (keepalive_batch.ts request body); resolves with the answer body. */
  renewBatch(body: Buffer): Promise<Buffer>;
  /**
   * Writes the batches sent so far now. They are built at the end of the turn that gathered them; left to
   * the channel's own end-of-turn write they would wait for the next turn (a loop iteration of latency).
   */
  flush(): void;
  /**
   * Asks the member to watch its leader for a stream that requires one (`hasleader`): `lost` is called
   * with the member's error if it has none now or loses it later. Returns the function that stops watching.
   * Throws when the channel is over its limits (the stream is then refused).
   */
  guardLeader(call: KeepAliveCall, lost: (err: EtcdError) => void): () => void;
}

/**
 * Every keep-alive stream of one client process and the batches that carry their renewals.
 *
 *   const ka = new KeepAliveStreams(member);
 *   ka.open(call);          // the LeaseKeepAlive handler; the stream then lives on its own
 *   ka.close(err);          // the channel is gone: every stream ends with err
 */
export class KeepAliveStreams {
  private readonly streams = new Set<KeepAliveStream>();
  /** Streams with renewals waiting and none in flight, in the order they became ready; from `readyHead`. */
  private ready: KeepAliveStream[] = [];
  private readyHead = 0;
  private scheduled = false;
  private inFlight = 0;
  private closedWith: EtcdError | undefined = undefined;
  private readonly flushBound = (): void => this.flush();

  /**
   * `heldBytesMax`: request bytes one stream may hold (waiting and in flight); past it the stream ends with
   * RESOURCE_EXHAUSTED (the forwarder's streamPendingBytesMax, so above what a paused client can still send).
   */
  constructor(
    private readonly member: KeepAliveMember,
    readonly heldBytesMax: number,
  ) {}

  /** Streams open. */
  get size(): number {
    return this.streams.size;
  }

  /** Batches waiting for the member. */
  get batchesInFlight(): number {
    return this.inFlight;
  }

  /** The most request bytes one stream holds now. */
  get streamHeldBytesMax(): number {
    let n = 0;
    for (const s of this.streams) n = Math.max(n, s.heldBytes);
    return n;
  }

  /** Serves `call` as a LeaseKeepAlive stream. Throws (the call fails) if the channel is gone or over its limits. */
  open(call: KeepAliveCall): void {
    if (this.closedWith !== undefined) throw this.closedWith;
    const s = new KeepAliveStream(this, call);
    // clientv3's WithRequireLeader: the member decides, as it does for its own streams.
    if (call.requireLeader) s.unguard = this.member.guardLeader(call, s.leaderLost);
    this.streams.add(s);
    call.onMessage = s.onMessage;
    call.onHalfClose = s.onHalfClose;
    call.onCancel(s.onCancel);
  }

  /** Ends every stream with `err`; nothing more is sent. */
  close(err: EtcdError): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = err;
    for (const s of [...this.streams]) s.finish(err);
    this.ready = [];
    this.readyHead = 0;
  }

  /** @internal A stream has renewals to send and none in flight. */
  _ready(s: KeepAliveStream): void {
    if (this.closedWith !== undefined || s.inReady) return;
    s.inReady = true;
    this.ready.push(s);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** @internal */
  _forget(s: KeepAliveStream): void {
    this.streams.delete(s);
  }

  /** Sends what the streams gathered this turn: one batch, or more if one fills up, while in flight allows. */
  private flush(): void {
    this.scheduled = false;
    let sent = false;
    while (this.readyHead < this.ready.length && this.inFlight < KEEPALIVE_BATCHES_IN_FLIGHT_MAX && this.closedWith === undefined) {
      const ids: bigint[] = [];
      const routes: KeepAliveStream[] = [];
      while (this.readyHead < this.ready.length && ids.length < KEEPALIVE_BATCH_IDS_MAX) {
        const s = this.ready[this.readyHead++];
        s.inReady = false;
        if (s.take(ids, KEEPALIVE_BATCH_IDS_MAX - ids.length) > 0) routes.push(s);
      }
      if (ids.length === 0) break;
      this.send(ids, routes);
      sent = true;
    }
    if (sent) this.member.flush();
    if (this.readyHead === this.ready.length) {
      this.ready.length = 0;
      this.readyHead = 0;
    }
  }

  private send(ids: bigint[], routes: KeepAliveStream[]): void {
    this.inFlight++;
    let pending: Promise<Buffer>;
    try {
      pending = this.member.renewBatch(encodeKeepAliveBatch(ids));
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (body) => this.answered(ids.length, routes, body),
      (err: unknown) => this.failed(routes, toEtcdError(err)),
    );
  }

  private answered(count: number, routes: KeepAliveStream[], body: Buffer): void {
    this.inFlight--;
    const a = decodeKeepAliveAnswer(body, count);
    if (typeof a === 'string') {
      this.failed(routes, Errors.Unknown(`etcdserver: malformed reply from the member: ${a}`), false);
      return;
    }
    const framer = new ResponseFramer(a.header);
    let at = 0;
    for (const s of routes) at = s.answered(framer, a.outcomes, at);
    this.flush();
  }

  private failed(routes: KeepAliveStream[], err: EtcdError, counted = true): void {
    if (counted) this.inFlight--;
    for (const s of routes) s.finish(err);
    this.flush();
  }
}

/** Responses of one batch are carved from slabs of this size. */
const SLAB_BYTES = 64 * 1024;

/**
 * Builds the gRPC messages of one batch's answers: the header encoded once, each response written into a
 * shared slab with the field order and encodings of writeLeaseKeepAliveResponse (proto/rpc.ts), so the
 * bytes are the member's (test/client_procs/keepalive-modes.test.ts compares them).
 */
class ResponseFramer {
  private readonly header: Uint8Array;
  private slab = Buffer.allocUnsafe(0);
  private pos = 0;
  private readonly w = new ProtoWriter(0) as unknown as { buf: Uint8Array; pos: number } & ProtoWriter;

  constructor(header: ResponseHeaderInit) {
    this.header = encodeResponseHeader(header);
  }

  /** A LeaseKeepAliveResponse{header, ID, TTL}, framed for gRPC (5-byte prefix). */
  frame(id: bigint, ttlSec: number): Uint8Array {
    const h = this.header;
    const size =
      1 + sizeVarint32(h.length) + h.length + (id !== 0n ? 1 + sizeVarintBig(id) : 0) + (ttlSec !== 0 ? 1 + sizeVarint64(ttlSec) : 0);
    const n = GRPC_PREFIX_BYTES + size;
    if (this.slab.length - this.pos < n) {
      this.slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, n));
      this.pos = 0;
    }
    const at = this.pos;
    const b = this.slab;
    b[at] = 0;
    b.writeUInt32BE(size, at + 1);
    const w = this.w;
    w.buf = b;
    w.pos = at + GRPC_PREFIX_BYTES;
    w.uint32(10);
    w.bytes(h);
    if (id !== 0n) {
      w.uint32(16);
      w.int64Big(id);
    }
    if (ttlSec !== 0) {
      w.uint32(24);
      w.int64(ttlSec);
    }
    assert(w.pos === at + n, 'a keep-alive response is exactly as long as counted');
    this.pos = at + n;
    return b.subarray(at, at + n);
  }
}

/** One keep-alive stream in the client process. */
class KeepAliveStream {
  /** Lease IDs received and not yet sent, from `head`. */
  private queue: bigint[] = [];
  private head = 0;
  /** Lease IDs in the batch in flight (empty: none), in order. */
  private sent: bigint[] = [];
  /** Request bytes of `queue` (waiting) and `sent`. */
  heldBytes = 0;
  private sentBytes = 0;
  private paused = false;
  private halfClosed = false;
  private waitingDrain = false;
  private over = false;
  /** In the ready list of KeepAliveStreams. */
  inReady = false;
  /** Stops the member's leader watch of a stream that requires a leader. */
  unguard: (() => void) | undefined = undefined;

  constructor(
    private readonly streams: KeepAliveStreams,
    private readonly call: KeepAliveCall,
  ) {}

  readonly onMessage = (req: LeaseKeepAliveRequest): void => {
    if (this.over) return;
    const waiting = this.queue.length - this.head;
    const bytes = keepAliveRequestBytes(req.ID);
    const max = this.streams.heldBytesMax;
    if (this.heldBytes + bytes > max) {
      this.finish(new EtcdError(GrpcCode.ResourceExhausted, `etcdserver: stream holds over ${max} request bytes`));
      return;
    }
    this.heldBytes += bytes;
    this.queue.push(req.ID);
    if (!this.paused && waiting + 1 >= KEEPALIVES_QUEUED_PER_STREAM_MAX) {
      this.paused = true;
      this.call.pause();
    }
    if (waiting === 0) this.pump();
  };

  readonly onHalfClose = (): void => {
    this.halfClosed = true;
    this.pump();
  };

  /** The call ended without us deciding (client gone, deadline, shutdown). */
  readonly onCancel = (): void => {
    this.over = true;
    this.forget();
  };

  readonly leaderLost = (err: EtcdError): void => {
    this.unguard = undefined;
    this.finish(err);
  };

  private readonly onDrained = (): void => {
    this.waitingDrain = false;
    this.pump();
  };

  /** Moves up to `room` waiting IDs into `into` (the batch being built); the count moved. */
  take(into: bigint[], room: number): number {
    if (this.over || this.sent.length > 0) return 0;
    const n = Math.min(room, this.queue.length - this.head);
    for (let i = 0; i < n; i++) {
      const id = this.queue[this.head++];
      into.push(id);
      this.sent.push(id);
      this.sentBytes += keepAliveRequestBytes(id);
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
    this.maybeResume();
    return n;
  }

  /** Writes this stream's answers from `outcomes[at..]`; returns where the next stream's start. */
  answered(framer: ResponseFramer, outcomes: readonly RenewOutcome[], at: number): number {
    const sent = this.sent;
    this.sent = [];
    this.heldBytes -= this.sentBytes;
    this.sentBytes = 0;
    for (let i = 0; i < sent.length; i++) {
      const o = outcomes[at + i];
      if (this.over) continue;
      if (typeof o !== 'number') {
        this.finish(o);
        continue;
      }
      this.call.writeFramed(framer.frame(sent[i], Math.max(o, 0)));
    }
    this.pump();
    return at + sent.length;
  }

  /** Ends the stream: OK, or with `err`. */
  finish(err: EtcdError | undefined): void {
    if (this.over) return;
    this.over = true;
    this.forget();
    if (err === undefined) this.call.end();
    else this.call.end(err);
  }

  /** Decides what comes next: join the next batch, wait for the client to read, or end after a half-close. */
  private pump(): void {
    if (this.over || this.sent.length > 0) return;
    if (this.queue.length > this.head) {
      if (!this.call.writable) {
        // The client reads slower than it asks: renew the next one once it drained (as the member's loop).
        if (!this.waitingDrain) {
          this.waitingDrain = true;
          this.call.drained().then(this.onDrained, this.onDrained);
        }
        return;
      }
      this.streams._ready(this);
      return;
    }
    this.maybeResume();
    if (this.halfClosed) this.finish(undefined);
  }

  private maybeResume(): void {
    if (this.paused && this.queue.length - this.head < KEEPALIVES_QUEUED_PER_STREAM_MAX / 2) {
      this.paused = false;
      this.call.resume();
    }
  }

  private forget(): void {
    this.streams._forget(this);
    const unguard = this.unguard;
    this.unguard = undefined;
    unguard?.();
  }
}
