// Checking what watchers received against the store's history: a raw Watch stream that keeps every
// response as it arrived (fragment flags included), the history as each revision's changes, and etcd's
// watch guarantees per watcher — ordered, unique, no gap in its range, a revision's events in one
// (reassembled) response, each event right (key, value, revisions, type, prev_kv when asked) — and per
// stream: after a progress response at R, no event at or below R (etcd #15220).
import * as grpc from '../../tools/lib/grpcjs.js';
import { decodeWatchResponse, encodeWatchRequest, type WatchRequestInit, type WatchResponse } from '../../src/proto/rpc.js';
import { Event_EventType, type Event, type KeyValue } from '../../src/proto/kv.js';

/** One change of one key at one revision, as a watcher of that key should get it. */
export interface Change {
  /** Event_EventType. */
  type: number;
  /** The key after the change (DELETE: key and mod_revision only). */
  kv: KeyValue;
  /** The key before the change; undefined when it did not exist. */
  prev: KeyValue | undefined;
}

/** The store's changes by revision, each revision's in the order its entry made them. */
export type History = Map<number, Change[]>;

/** What a watcher watches and how. */
export interface WatchSpec {
  key: Buffer;
  /** undefined: the key alone; empty: every key >= key; else [key, end). */
  end: Buffer | undefined;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
  fragment: boolean;
}

/** Progress responses (for the whole stream) and failed creates carry this watch ID. */
export const STREAM_WATCH_ID = -1;

/** The create request of `spec` from `startRev` (0 = from the next revision). */
export function createRequest(spec: WatchSpec, startRev: number, watchId = 0): WatchRequestInit {
  return {
    create_request: {
      key: spec.key,
      range_end: spec.end === undefined ? Buffer.alloc(0) : spec.end.length === 0 ? Buffer.from([0]) : spec.end,
      start_revision: startRev,
      filters: [...(spec.noPut ? [0] : []), ...(spec.noDelete ? [1] : [])],
      prev_kv: spec.prevKv,
      fragment: spec.fragment,
      watch_id: watchId,
    },
  };
}

/** True if `key` is in the watched range of `spec`. */
export function inRange(spec: WatchSpec, key: Uint8Array): boolean {
  if (spec.end === undefined) return Buffer.compare(key, spec.key) === 0;
  return Buffer.compare(key, spec.key) >= 0 && (spec.end.length === 0 || Buffer.compare(key, spec.end) < 0);
}

/** True if the watcher of `spec` is to be sent `ch`. */
export function wants(spec: WatchSpec, ch: Change): boolean {
  if (ch.type === Event_EventType.PUT ? spec.noPut : spec.noDelete) return false;
  return inRange(spec, ch.kv.key);
}

/** A spec as text, for messages. */
export function showSpec(s: WatchSpec): string {
  const range = s.end === undefined ? 'key' : s.end.length === 0 ? 'from-key' : `..${s.end.toString('latin1')}`;
  const opts = [s.noPut && 'NOPUT', s.noDelete && 'NODELETE', s.prevKv && 'prev_kv', s.fragment && 'fragment'].filter(Boolean);
  return `${JSON.stringify(s.key.toString('latin1'))} ${range}${opts.length > 0 ? ` ${opts.join(',')}` : ''}`;
}

function showKv(kv: KeyValue): string {
  const value = Buffer.from(kv.value);
  const v = value.length > 24 ? `${value.subarray(0, 12).toString('latin1')}…(${value.length} bytes)` : value.toString('latin1');
  return `${Buffer.from(kv.key).toString('latin1')}=${v} c${kv.create_revision} m${kv.mod_revision} v${kv.version} l${kv.lease}`;
}

/** An event as text: everything a watcher is told about the change. */
export function showEvent(type: number, kv: KeyValue, prev: KeyValue | undefined, withPrev: boolean): string {
  const base = `${kv.mod_revision} ${type === Event_EventType.PUT ? 'PUT' : type === Event_EventType.DELETE ? 'DELETE' : `type${type}`} ${showKv(kv)}`;
  return withPrev && prev !== undefined ? `${base} prev ${showKv(prev)}` : base;
}

/** What one watcher received and what it should have. */
export interface WatcherCheck {
  label: string;
  spec: WatchSpec;
  /** The watcher's responses that carry events (or fragments), in arrival order, across reconnections. */
  responses: readonly WatchResponse[];
  history: History;
  /** Every wanted change of the revisions fromRev..toRev is expected. */
  fromRev: number;
  toRev: number;
  /** The watcher ended early (canceled): what it got must be a prefix of what was expected. */
  prefixOnly?: boolean;
  /** True when the event at `rev` may lack prev_kv (etcd reads it at rev - 1, which may be compacted). */
  prevMayLack?: (rev: number) => boolean;
}

/** The guarantees one watcher's events must meet; returns every problem found (none: it is right). */
export function checkWatcher(c: WatcherCheck): string[] {
  const problems: string[] = [];
  const note = (p: string) => problems.push(`${c.label} (${showSpec(c.spec)}): ${p}`);
  // Fragments reassemble into the batch they were cut from.
  const batches: Event[][] = [];
  let open: Event[] | undefined;
  for (const r of c.responses) {
    if (r.fragment && !c.spec.fragment) note(`a response with fragment set, but the watcher did not ask for fragments`);
    open ??= [];
    open.push(...r.events);
    if (!r.fragment) {
      batches.push(open);
      open = undefined;
    }
  }
  if (open !== undefined && !c.prefixOnly) note(`the last response says more fragments follow (${open.length} events so far)`);
  let last = 0;
  for (const [bi, batch] of batches.entries()) {
    if (batch.length === 0) {
      note(`response ${bi} carries no events`);
      continue;
    }
    const revs = batch.map((e) => e.kv?.mod_revision ?? 0);
    // Ordered and unique: a batch starts past the previous one's last revision and never goes back.
    if (revs[0]! <= last) note(`response ${bi} starts at revision ${revs[0]} after revision ${last} was sent`);
    for (let i = 1; i < revs.length; i++) if (revs[i]! < revs[i - 1]!) note(`response ${bi}: revision ${revs[i]} after ${revs[i - 1]}`);
    last = Math.max(last, revs.at(-1)!);
    // Atomic: all of a revision's wanted changes (one txn) in this one batch.
    for (const rev of new Set(revs)) {
      const want = (c.history.get(rev) ?? []).filter((ch) => wants(c.spec, ch)).length;
      const got = revs.filter((r) => r === rev).length;
      if (got !== want) note(`response ${bi} has ${got} of revision ${rev}'s ${want} events`);
    }
  }
  const got = batches.flat();
  const expected: Change[] = [];
  for (let rev = c.fromRev; rev <= c.toRev; rev++) for (const ch of c.history.get(rev) ?? []) if (wants(c.spec, ch)) expected.push(ch);
  if (got.length > expected.length || (!c.prefixOnly && got.length < expected.length)) {
    note(`${got.length} events, expected ${c.prefixOnly ? 'at most ' : ''}${expected.length} (revisions ${c.fromRev}..${c.toRev})`);
  }
  for (let i = 0; i < Math.min(got.length, expected.length); i++) {
    const e = got[i]!;
    const x = expected[i]!;
    const rev = x.kv.mod_revision;
    const lacksPrev = c.spec.prevKv && e.prev_kv === undefined && x.prev !== undefined && c.prevMayLack?.(rev) === true;
    const g = showEvent(e.type, e.kv!, e.prev_kv, true);
    const w = showEvent(x.type, x.kv, lacksPrev ? undefined : x.prev, c.spec.prevKv);
    if (g !== w) {
      const around = (xs: string[]) => xs.slice(Math.max(0, i - 2), i + 3).join('\n    ');
      note(
        `event ${i} is\n    ${g}\n  expected\n    ${w}\n  got around it:\n    ${around(got.map((y) => showEvent(y.type, y.kv!, y.prev_kv, true)))}\n  expected around it:\n    ${around(expected.map((y) => showEvent(y.type, y.kv, y.prev, c.spec.prevKv)))}`,
      );
      break;
    }
  }
  return problems;
}

/**
 * Bookmarkable (etcd #15220): after a progress response at R on a stream, no watcher of that stream
 * created before it is sent an event at or below R. `responses` are one stream's, in arrival order.
 */
export function checkBookmarks(label: string, responses: readonly WatchResponse[]): string[] {
  const problems: string[] = [];
  const bound = new Map<number, number>();
  for (const r of responses) {
    if (r.watch_id === STREAM_WATCH_ID && !r.created && !r.canceled) {
      const rev = r.header?.revision ?? 0;
      for (const id of bound.keys()) bound.set(id, Math.max(bound.get(id)!, rev));
      continue;
    }
    if (r.created && !r.canceled) bound.set(r.watch_id, 0);
    for (const e of r.events) {
      const b = bound.get(r.watch_id) ?? 0;
      const rev = e.kv?.mod_revision ?? 0;
      if (rev <= b && problems.length < 5)
        problems.push(`${label}: watch ${r.watch_id} sent revision ${rev} after a progress response at ${b}`);
    }
    if (r.canceled) bound.delete(r.watch_id);
  }
  return problems;
}

/**
 * A Watch stream to one member over @grpc/grpc-js that keeps every response as it arrived.
 *
 *   const s = new RawWatchStream(endpoint); s.send(createRequest(spec, 0)); ...; s.close();
 */
export class RawWatchStream {
  readonly responses: WatchResponse[] = [];
  /** Why the stream ended (undefined while it runs). */
  ended: string | undefined;
  /** Called with each response as it arrives. */
  onResponse: ((r: WatchResponse) => void) | undefined;
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Uint8Array, WatchResponse>;

  constructor(
    readonly endpoint: string,
    metadata?: grpc.Metadata,
  ) {
    // Catch-up responses of big values can pass grpc-js's 4 MiB default.
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
    this.call = this.client.makeBidiStreamRequest<Uint8Array, WatchResponse>(
      '/etcdserverpb.Watch/Watch',
      (b) => Buffer.from(b),
      (b) => decodeWatchResponse(b),
      metadata ?? new grpc.Metadata(),
    );
    this.call.on('data', (r: WatchResponse) => {
      this.responses.push(r);
      this.onResponse?.(r);
    });
    this.call.on('error', (e: Error) => {
      this.ended ??= e.message;
    });
    this.call.on('end', () => {
      this.ended ??= 'ended';
    });
  }

  send(req: WatchRequestInit): void {
    if (this.ended === undefined) this.call.write(encodeWatchRequest(req));
  }

  close(): void {
    this.ended ??= 'closed';
    this.call.cancel();
    this.client.close();
  }
}
