// Compact, versioned binary encoding of Raft's data for peer traffic and WAL metadata: Message, Entry,
// HardState, ConfState, ConfChange(V2), Snapshot(Metadata). Not raftpb-compatible (peer traffic is our own
// protocol). Decoding untrusted bytes throws RaftDecodeError and nothing else; every length is bounded.
//
// Layout (version 1): numbers are unsigned LEB128 varints (safe integers only), IDs fixed 8-byte
// big-endian uint64, byte strings a varint length then the bytes. Every top-level encoding starts with
// the version byte.

import { RaftDecodeError } from './errors.js';
import {
  type ConfChange,
  ConfChangeTransition,
  ConfChangeType,
  type ConfChangeV2,
  type ConfState,
  EMPTY_BYTES,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type NodeId,
  type Snapshot,
  type SnapshotMetadata,
} from './types.js';

/** The format version written by this code. */
export const CODEC_VERSION = 1;

/** Default limit on an encoding's size accepted by the decoders (64 MiB). */
export const DEFAULT_MAX_DECODE_BYTES = 64 * 1024 * 1024;

/** Upper bound on members in one ConfState list or ConfChangeV2 (far above any real cluster). */
const MAX_MEMBERS = 1 << 16;

/** Options of the decoders. */
export interface DecodeOptions {
  /** Reject inputs longer than this many bytes. Default DEFAULT_MAX_DECODE_BYTES. */
  maxBytes?: number;
  /**
   * Copy byte fields (entry data, context, snapshot data) out of the input. Default true, so decoded
   * values do not keep a large network buffer alive or change if it is reused. false = views into input.
   */
  copy?: boolean;
}

const FLAG_REJECT = 1;
const FLAG_SNAPSHOT = 2;
const MAX_MESSAGE_TYPE = MessageType.MsgPreVoteResp;
const U64_MAX = (1n << 64n) - 1n;

/** Encodings up to this size are built in a reused scratch buffer and copied out at their exact size. */
const SCRATCH_BYTES_MAX = 1 << 20;

class Writer {
  buf: Uint8Array;
  view: DataView;
  pos = 0;

  constructor(sizeHint: number) {
    if (sizeHint <= SCRATCH_BYTES_MAX) {
      // Encoding is synchronous and never nested, so one scratch buffer serves every call.
      this.buf = scratch;
      this.view = scratchView;
    } else {
      this.buf = new Uint8Array(Math.max(64, sizeHint));
      this.view = new DataView(this.buf.buffer);
    }
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const nb = new Uint8Array(size);
    nb.set(this.buf.subarray(0, this.pos));
    if (this.buf === scratch && size <= SCRATCH_BYTES_MAX) {
      // Keep the grown buffer as the new scratch.
      scratch = nb;
      scratchView = new DataView(nb.buffer);
    }
    this.buf = nb;
    this.view = new DataView(nb.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  uvarint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`codec: ${v} is not a non-negative safe integer`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  id(v: NodeId): void {
    if (v < 0n || v > U64_MAX) throw new RangeError(`codec: id ${v} is not a uint64`);
    this.ensure(8);
    this.view.setBigUint64(this.pos, v);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.uvarint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  ids(list: NodeId[]): void {
    this.uvarint(list.length);
    for (const id of list) this.id(id);
  }

  /** The encoding, in a buffer of its own. */
  finish(): Uint8Array {
    if (this.buf === scratch) return this.buf.slice(0, this.pos);
    return this.buf.subarray(0, this.pos);
  }
}

let scratch = new Uint8Array(64 * 1024);
let scratchView = new DataView(scratch.buffer);

class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(
    readonly buf: Uint8Array,
    private readonly copy: boolean,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  remaining(): number {
    return this.buf.length - this.pos;
  }

  fail(what: string): never {
    throw new RaftDecodeError(`raft codec: ${what} at offset ${this.pos}`);
  }

  u8(): number {
    if (this.pos >= this.buf.length) this.fail('unexpected end of input');
    return this.buf[this.pos++];
  }

  uvarint(): number {
    let v = 0;
    let mult = 1;
    for (let i = 0; ; i++) {
      if (i >= 8) this.fail('varint too long');
      const b = this.u8();
      v += (b & 0x7f) * mult;
      if ((b & 0x80) === 0) break;
      mult *= 0x80;
    }
    if (!Number.isSafeInteger(v)) this.fail('number exceeds 2^53-1');
    return v;
  }

  id(): NodeId {
    if (this.remaining() < 8) this.fail('unexpected end of input in id');
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }

  bytes(): Uint8Array {
    const n = this.uvarint();
    if (n > this.remaining()) this.fail(`byte string of ${n} bytes exceeds the input`);
    if (n === 0) return EMPTY_BYTES;
    const view = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return this.copy ? view.slice() : view;
  }

  /** A count of items each at least minItemBytes long: bounded by what is left of the input. */
  count(minItemBytes: number, max: number): number {
    const n = this.uvarint();
    if (n > max || n * minItemBytes > this.remaining()) this.fail(`count ${n} exceeds the input or the limit`);
    return n;
  }

  ids(): NodeId[] {
    const n = this.count(8, MAX_MEMBERS);
    const out = new Array<NodeId>(n);
    for (let i = 0; i < n; i++) out[i] = this.id();
    return out;
  }

  version(): void {
    const v = this.u8();
    if (v !== CODEC_VERSION) this.fail(`unsupported version ${v}`);
  }

  end(): void {
    if (this.pos !== this.buf.length) this.fail(`${this.remaining()} trailing bytes`);
  }
}

function decodeWith<T>(what: string, bytes: Uint8Array, opts: DecodeOptions | undefined, f: (r: Reader) => T): T {
  try {
    if (!(bytes instanceof Uint8Array)) throw new RaftDecodeError(`raft codec: ${what}: input is not a Uint8Array`);
    const maxBytes = opts?.maxBytes ?? DEFAULT_MAX_DECODE_BYTES;
    if (bytes.length > maxBytes) throw new RaftDecodeError(`raft codec: ${what} of ${bytes.length} bytes exceeds the limit of ${maxBytes}`);
    const r = new Reader(bytes, opts?.copy ?? true);
    r.version();
    const v = f(r);
    r.end();
    return v;
  } catch (e) {
    if (e instanceof RaftDecodeError) throw e;
    // Belt and braces: whatever else went wrong, the caller only ever sees a decode error.
    throw new RaftDecodeError(`raft codec: malformed ${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

// --- Entry

function writeEntry(w: Writer, e: Entry): void {
  w.uvarint(e.term);
  w.uvarint(e.index);
  w.u8(e.type);
  w.bytes(e.data);
}

function readEntry(r: Reader): Entry {
  const term = r.uvarint();
  const index = r.uvarint();
  const type = r.u8();
  if (type > EntryType.ConfChangeV2) r.fail(`unknown entry type ${type}`);
  const data = r.bytes();
  return { term, index, type: type as EntryType, data };
}

/** Smallest encoded entry: term, index, type, empty data. */
const MIN_ENTRY_BYTES = 4;

/** Encodes one entry (e.g. a WAL record). */
export function encodeEntry(e: Entry): Uint8Array {
  const w = new Writer(e.data.length + 24);
  w.u8(CODEC_VERSION);
  writeEntry(w, e);
  return w.finish();
}

/** Decodes encodeEntry's output. */
export function decodeEntry(bytes: Uint8Array, opts?: DecodeOptions): Entry {
  return decodeWith('entry', bytes, opts, readEntry);
}

// --- HardState

/** Encodes a HardState. */
export function encodeHardState(hs: HardState): Uint8Array {
  const w = new Writer(32);
  w.u8(CODEC_VERSION);
  w.uvarint(hs.term);
  w.id(hs.vote);
  w.uvarint(hs.commit);
  return w.finish();
}

/** Decodes encodeHardState's output. */
export function decodeHardState(bytes: Uint8Array, opts?: DecodeOptions): HardState {
  return decodeWith('hard state', bytes, opts, (r) => {
    const term = r.uvarint();
    const vote = r.id();
    const commit = r.uvarint();
    return { term, vote, commit };
  });
}

// --- ConfState, SnapshotMetadata, Snapshot

function writeConfState(w: Writer, cs: ConfState): void {
  w.ids(cs.voters);
  w.ids(cs.learners);
  w.ids(cs.voters_outgoing);
  w.ids(cs.learners_next);
  w.u8(cs.auto_leave ? 1 : 0);
}

function readConfState(r: Reader): ConfState {
  const voters = r.ids();
  const learners = r.ids();
  const voters_outgoing = r.ids();
  const learners_next = r.ids();
  const al = r.u8();
  if (al > 1) r.fail(`bad auto_leave flag ${al}`);
  return { voters, learners, voters_outgoing, learners_next, auto_leave: al === 1 };
}

function confStateSize(cs: ConfState): number {
  return 8 + 8 * (cs.voters.length + cs.learners.length + cs.voters_outgoing.length + cs.learners_next.length);
}

/** Encodes a ConfState. */
export function encodeConfState(cs: ConfState): Uint8Array {
  const w = new Writer(confStateSize(cs) + 1);
  w.u8(CODEC_VERSION);
  writeConfState(w, cs);
  return w.finish();
}

/** Decodes encodeConfState's output. */
export function decodeConfState(bytes: Uint8Array, opts?: DecodeOptions): ConfState {
  return decodeWith('conf state', bytes, opts, readConfState);
}

function writeSnapshotMetadata(w: Writer, md: SnapshotMetadata): void {
  w.uvarint(md.index);
  w.uvarint(md.term);
  writeConfState(w, md.conf_state);
}

function readSnapshotMetadata(r: Reader): SnapshotMetadata {
  const index = r.uvarint();
  const term = r.uvarint();
  const conf_state = readConfState(r);
  return { index, term, conf_state };
}

/** Encodes snapshot metadata (index, term, membership). */
export function encodeSnapshotMetadata(md: SnapshotMetadata): Uint8Array {
  const w = new Writer(confStateSize(md.conf_state) + 24);
  w.u8(CODEC_VERSION);
  writeSnapshotMetadata(w, md);
  return w.finish();
}

/** Decodes encodeSnapshotMetadata's output. */
export function decodeSnapshotMetadata(bytes: Uint8Array, opts?: DecodeOptions): SnapshotMetadata {
  return decodeWith('snapshot metadata', bytes, opts, readSnapshotMetadata);
}

/** Encodes a whole snapshot (metadata and data). */
export function encodeSnapshot(s: Snapshot): Uint8Array {
  const w = new Writer(confStateSize(s.metadata.conf_state) + s.data.length + 32);
  w.u8(CODEC_VERSION);
  writeSnapshotMetadata(w, s.metadata);
  w.bytes(s.data);
  return w.finish();
}

/** Decodes encodeSnapshot's output. */
export function decodeSnapshot(bytes: Uint8Array, opts?: DecodeOptions): Snapshot {
  return decodeWith('snapshot', bytes, opts, (r) => {
    const metadata = readSnapshotMetadata(r);
    const data = r.bytes();
    return { metadata, data };
  });
}

// --- ConfChange, ConfChangeV2

/** Encodes a v1 ConfChange (the data of an EntryConfChange). */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const w = new Writer(cc.context.length + 24);
  w.u8(CODEC_VERSION);
  w.u8(cc.type);
  w.id(cc.node_id);
  w.id(cc.id ?? 0n);
  w.bytes(cc.context);
  return w.finish();
}

/** Decodes encodeConfChange's output. */
export function decodeConfChange(bytes: Uint8Array, opts?: DecodeOptions): ConfChange {
  return decodeWith('conf change', bytes, opts, (r) => {
    const type = r.u8();
    if (type > ConfChangeType.AddLearnerNode) r.fail(`unknown conf change type ${type}`);
    const node_id = r.id();
    const id = r.id();
    const context = r.bytes();
    return { type: type as ConfChangeType, node_id, context, id };
  });
}

/** Encodes a ConfChangeV2 (the data of an EntryConfChangeV2). */
export function encodeConfChangeV2(cc: ConfChangeV2): Uint8Array {
  const w = new Writer(cc.context.length + 9 * cc.changes.length + 16);
  w.u8(CODEC_VERSION);
  w.u8(cc.transition);
  w.uvarint(cc.changes.length);
  for (const ch of cc.changes) {
    w.u8(ch.type);
    w.id(ch.node_id);
  }
  w.bytes(cc.context);
  return w.finish();
}

/**
 * Decodes encodeConfChangeV2's output. Zero bytes decode as the empty change ("leave the joint
 * configuration"), so an entry with no data is a valid leave-joint marker.
 */
export function decodeConfChangeV2(bytes: Uint8Array, opts?: DecodeOptions): ConfChangeV2 {
  if (bytes instanceof Uint8Array && bytes.length === 0) {
    return { transition: ConfChangeTransition.Auto, changes: [], context: EMPTY_BYTES };
  }
  return decodeWith('conf change v2', bytes, opts, (r) => {
    const transition = r.u8();
    if (transition > ConfChangeTransition.JointExplicit) r.fail(`unknown transition ${transition}`);
    const n = r.count(9, MAX_MEMBERS);
    const changes = new Array<{ type: ConfChangeType; node_id: NodeId }>(n);
    for (let i = 0; i < n; i++) {
      const type = r.u8();
      if (type > ConfChangeType.AddLearnerNode) r.fail(`unknown conf change type ${type}`);
      changes[i] = { type: type as ConfChangeType, node_id: r.id() };
    }
    const context = r.bytes();
    return { transition: transition as ConfChangeTransition, changes, context };
  });
}

// --- Message

/** Encodes a message for the peer transport. */
export function encodeMessage(m: Message): Uint8Array {
  let size = 64 + m.context.length;
  for (const e of m.entries) size += e.data.length + 24;
  if (m.snapshot !== undefined) size += m.snapshot.data.length + confStateSize(m.snapshot.metadata.conf_state) + 32;
  const w = new Writer(size);
  w.u8(CODEC_VERSION);
  w.u8(m.type);
  w.u8((m.reject ? FLAG_REJECT : 0) | (m.snapshot !== undefined ? FLAG_SNAPSHOT : 0));
  w.id(m.to);
  w.id(m.from);
  w.uvarint(m.term);
  w.uvarint(m.logTerm);
  w.uvarint(m.index);
  w.uvarint(m.commit);
  w.uvarint(m.rejectHint);
  w.bytes(m.context);
  w.uvarint(m.entries.length);
  for (const e of m.entries) writeEntry(w, e);
  if (m.snapshot !== undefined) {
    writeSnapshotMetadata(w, m.snapshot.metadata);
    w.bytes(m.snapshot.data);
  }
  return w.finish();
}

/** Decodes encodeMessage's output. Throws RaftDecodeError (only) on bad input. */
export function decodeMessage(bytes: Uint8Array, opts?: DecodeOptions): Message {
  return decodeWith('message', bytes, opts, (r) => {
    const type = r.u8();
    if (type > MAX_MESSAGE_TYPE) r.fail(`unknown message type ${type}`);
    const flags = r.u8();
    if ((flags & ~(FLAG_REJECT | FLAG_SNAPSHOT)) !== 0) r.fail(`unknown flags ${flags}`);
    const to = r.id();
    const from = r.id();
    const term = r.uvarint();
    const logTerm = r.uvarint();
    const index = r.uvarint();
    const commit = r.uvarint();
    const rejectHint = r.uvarint();
    const context = r.bytes();
    const n = r.count(MIN_ENTRY_BYTES, Number.MAX_SAFE_INTEGER);
    const entries = new Array<Entry>(n);
    for (let i = 0; i < n; i++) entries[i] = readEntry(r);
    let snapshot: Snapshot | undefined;
    if ((flags & FLAG_SNAPSHOT) !== 0) {
      const metadata = readSnapshotMetadata(r);
      const data = r.bytes();
      snapshot = { metadata, data };
    }
    return {
      type: type as MessageType,
      to,
      from,
      term,
      logTerm,
      index,
      entries,
      commit,
      snapshot,
      reject: (flags & FLAG_REJECT) !== 0,
      rejectHint,
      context,
    };
  });
}
