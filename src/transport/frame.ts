// Framing of the peer protocol: [u32 big-endian length of type+payload][u8 type][payload].
// A connection opens with the 8-byte magic, then a HELLO frame; everything after is frames.

export const PEER_MAGIC = Buffer.from('TETCDP1\n', 'latin1');

export const FrameType = {
  /** JSON {cluster_id, from, to} (hex IDs): who is calling whom, sent first by the dialer. */
  Hello: 1,
  /** One Raft message, encoded by src/raft/codec. */
  Raft: 2,
  /** UTF-8 reason the listener refuses the connection; it closes right after. */
  Error: 3,
  /** 8-byte sender timestamp (ms, double), echoed back in a Pong. */
  Ping: 4,
  Pong: 5,
  /** Starts a snapshot: [u32 length][Raft MsgSnap][u64 size of the state file that follows]. */
  SnapBegin: 6,
  /** A piece of the state file. */
  SnapChunk: 7,
  /** The SHA-256 of the state file; the receiver checks it. */
  SnapEnd: 8,
  /** The receiver's verdict: [u8 ok][UTF-8 reason]. */
  SnapAck: 9,
  /** A lease request forwarded to the leader, or its answer (src/server/lease_forward.ts; etcd's /leases). */
  Lease: 10,
  /** A HashKV request of a corruption check, or its answer (src/server/corrupt.ts; etcd's /members/hashkv). */
  Hash: 11,
  /** A membership question for the leader, or its answer (src/server/member_forward.ts; etcd's /members/promote). */
  Member: 12,
  /** Sent instead of a Hello by a member that joins: asks for the cluster's ID and members (etcd's GET /members). */
  MembersQuery: 13,
  /** JSON {cluster_id, members: [{id, name, peerURLs, clientURLs, isLearner}]}; the listener closes right after. */
  MembersAnswer: 14,
} as const;

export const FRAME_HEADER_BYTES = 5;
const EMPTY = Buffer.alloc(0);

/** Encodes one frame. */
export function encodeFrame(type: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length + 1, 0);
  out[4] = type;
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Writes a frame header for a payload of `payloadBytes` into buf at offset. */
export function writeFrameHeader(buf: Buffer, offset: number, type: number, payloadBytes: number): void {
  buf.writeUInt32BE(payloadBytes + 1, offset);
  buf[offset + 4] = type;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/**
 * Reassembles frames from a byte stream without quadratic copying: chunks are kept as a list and
 * joined only when a frame spans several of them.
 *
 *   const r = new FrameReader(maxFrameBytes);
 *   socket.on('data', (c) => { r.push(c); for (let f; (f = r.next()); ) handle(f.type, f.payload); });
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;

  constructor(private readonly maxFrameBytes: number) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  /** Bytes received but not yet returned as frames. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /** Takes exactly n bytes off the front (n ≤ bufferedBytes). */
  take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0];
        const want = n - filled;
        if (c.length <= want) {
          out.set(c, filled);
          filled += c.length;
          this.chunks.shift();
        } else {
          out.set(c.subarray(0, want), filled);
          this.chunks[0] = c.subarray(want);
          filled = n;
        }
      }
    }
    this.bufferedBytes -= n;
    return out;
  }

  private peekHeader(): { length: number; type: number } | undefined {
    if (this.bufferedBytes < FRAME_HEADER_BYTES) return undefined;
    const head = this.chunks[0].length >= FRAME_HEADER_BYTES ? this.chunks[0] : this.joinFront(FRAME_HEADER_BYTES);
    return { length: head.readUInt32BE(0), type: head[4] };
  }

  private joinFront(n: number): Buffer {
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  /** The next whole frame, or undefined if more bytes are needed. Throws FrameError on a bad header. */
  next(): { type: number; payload: Buffer } | undefined {
    const head = this.peekHeader();
    if (head === undefined) return undefined;
    if (head.length < 1) throw new FrameError('frame with zero length');
    if (head.length - 1 > this.maxFrameBytes) {
      throw new FrameError(`frame of ${head.length - 1} bytes exceeds the limit of ${this.maxFrameBytes}`);
    }
    if (this.bufferedBytes < 4 + head.length) return undefined;
    this.take(FRAME_HEADER_BYTES);
    const payload = this.take(head.length - 1);
    return { type: head.type, payload };
  }
}
