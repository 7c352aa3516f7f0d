// The history a linearizability check reads: get/put/cas operations on byte keys with invocation and
// response times, recorded by concurrent clients; a JSON form so a failing run can be saved and replayed.
import { performance } from 'node:perf_hooks';

/** What an operation does. `cas` is etcd's Txn: compare (value or mod_revision) then put. */
export type OpKind = 'get' | 'put' | 'cas';

/**
 * How an operation ended:
 * - ok: the server answered; the outputs are known.
 * - unknown: no answer (timeout, connection lost, a server error after proposing): a write may or may not
 *   have taken effect, at any moment after its invocation; it stays open until the end of the history.
 * - fail: definitely had no effect (rejected before it could be proposed); the checker ignores it.
 */
export type OpStatus = 'ok' | 'unknown' | 'fail';

/** One operation of a history. Times are milliseconds on one monotonic clock shared by all clients. */
export interface Op {
  /** Unique within the history. */
  id: number;
  /** Which client issued it (a client runs one operation at a time). */
  client: number;
  kind: OpKind;
  key: Uint8Array;
  /** When the request was about to be sent. */
  callMs: number;
  /** When the answer arrived; Infinity when the outcome is unknown. */
  returnMs: number;
  status: OpStatus;
  /** put, cas: the value written. */
  value?: Uint8Array;
  /** cas: the value the key must hold for the write to happen (null: the key must be absent). */
  expect?: Uint8Array | null;
  /**
   * cas by mod_revision: the revision compared (0: absent). `expect` then holds the value that was read
   * together with that revision; the checker relies on written values being unique per key to turn the
   * revision compare into a value compare (it checks that they are).
   */
  expectModRevision?: number;
  /** get (ok): the value read, null when the key was absent. cas that did not succeed: the value it saw, if it asked. */
  found?: Uint8Array | null;
  /** get, failed cas: the mod_revision of `found` (0 when absent). */
  modRevision?: number;
  /** cas (ok): whether the compare held and the put happened. */
  succeeded?: boolean;
  /** The response header's revision (ok only). */
  revision?: number;
  /**
   * One request over several keys (a range, a txn putting several keys) is one op per key, all with the
   * same group (the first op's id), client, times, status and revision: the per-key check sees each key's
   * part, checkRevisions the whole.
   */
  group?: number;
}

/** Inputs given when an operation is invoked. */
export interface OpInput {
  value?: Uint8Array;
  expect?: Uint8Array | null;
  expectModRevision?: number;
}

/** Outputs given when an operation completes. */
export interface OpOutput {
  found?: Uint8Array | null;
  modRevision?: number;
  succeeded?: boolean;
  revision?: number;
}

/**
 * Collects a history while clients run. Bounded: more than `opsMax` invocations throw.
 *
 *   const h = new HistoryRecorder();
 *   const op = h.invoke(1, 'put', key, { value });
 *   try { const r = await kv.put(key, value); h.ok(op, { revision: r.revision }); } catch { h.unknown(op); }
 */
export class HistoryRecorder {
  readonly ops: Op[] = [];
  private readonly originMs = performance.now();

  constructor(private readonly opsMax = 2_000_000) {}

  /** Milliseconds since the recorder was created. */
  nowMs(): number {
    return performance.now() - this.originMs;
  }

  /** Records an invocation (call time = now) and returns the op to complete later. */
  invoke(client: number, kind: OpKind, key: Uint8Array, input: OpInput = {}): Op {
    if (this.ops.length >= this.opsMax) throw new Error(`HistoryRecorder: more than ${this.opsMax} operations`);
    if ((kind === 'put' || kind === 'cas') && input.value === undefined) throw new Error(`${kind} needs a value`);
    if (kind === 'cas' && input.expect === undefined) throw new Error('cas needs an expected value (or null)');
    const op: Op = {
      id: this.ops.length,
      client,
      kind,
      key: Buffer.from(key),
      callMs: this.nowMs(),
      returnMs: Infinity,
      status: 'unknown',
    };
    if (input.value !== undefined) op.value = Buffer.from(input.value);
    if (input.expect !== undefined) op.expect = input.expect === null ? null : Buffer.from(input.expect);
    if (input.expectModRevision !== undefined) op.expectModRevision = input.expectModRevision;
    this.ops.push(op);
    return op;
  }

  /**
   * Records one request over several keys: a range (`get` of every key of `keys`) or a txn putting
   * `values[i]` on `keys[i]` (distinct keys). Complete it with okGroup, or leave it unknown.
   */
  invokeGroup(client: number, kind: 'get' | 'put', keys: readonly Uint8Array[], values?: readonly Uint8Array[]): Op[] {
    if (kind === 'put' && values?.length !== keys.length) throw new Error('a txn group needs one value per key');
    const ops = keys.map((k, i) => this.invoke(client, kind, k, kind === 'put' ? { value: values![i] } : {}));
    for (const o of ops) {
      o.group = ops[0]!.id;
      o.callMs = ops[0]!.callMs;
    }
    return ops;
  }

  /** The server answered a group: `outs[i]` for `ops[i]`, one return time for all. */
  okGroup(ops: readonly Op[], outs: readonly OpOutput[]): void {
    ops.forEach((o, i) => this.ok(o, outs[i]!));
    for (const o of ops) o.returnMs = ops[0]!.returnMs;
  }

  /** The server answered. */
  ok(op: Op, out: OpOutput): void {
    if (op.returnMs !== Infinity || op.status !== 'unknown') throw new Error(`op ${op.id} completed twice`);
    if (op.kind === 'get' && out.found === undefined) throw new Error('a completed get needs `found`');
    if (op.kind === 'cas' && out.succeeded === undefined) throw new Error('a completed cas needs `succeeded`');
    op.returnMs = this.nowMs();
    op.status = 'ok';
    if (out.found !== undefined) op.found = out.found === null ? null : Buffer.from(out.found);
    if (out.modRevision !== undefined) op.modRevision = out.modRevision;
    if (out.succeeded !== undefined) op.succeeded = out.succeeded;
    if (out.revision !== undefined) op.revision = out.revision;
  }

  /** No usable answer: the op may or may not have taken effect. */
  unknown(op: Op): void {
    if (op.status !== 'unknown' || op.returnMs !== Infinity) throw new Error(`op ${op.id} completed twice`);
  }

  /** The op definitely had no effect. */
  fail(op: Op): void {
    if (op.status !== 'unknown' || op.returnMs !== Infinity) throw new Error(`op ${op.id} completed twice`);
    op.status = 'fail';
    op.returnMs = this.nowMs();
  }
}

// ---- JSON form ----

interface OpJson {
  id: number;
  client: number;
  kind: OpKind;
  key: string;
  callMs: number;
  returnMs: number | null;
  status: OpStatus;
  value?: string;
  expect?: string | null;
  expectModRevision?: number;
  found?: string | null;
  modRevision?: number;
  succeeded?: boolean;
  revision?: number;
  group?: number;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const unb64 = (s: string): Uint8Array => Buffer.from(s, 'base64');

/** A history as JSON text (bytes as base64, an unknown return time as null). */
export function historyToJson(ops: readonly Op[]): string {
  const out: OpJson[] = ops.map((o) => {
    const j: OpJson = {
      id: o.id,
      client: o.client,
      kind: o.kind,
      key: b64(o.key),
      callMs: o.callMs,
      returnMs: Number.isFinite(o.returnMs) ? o.returnMs : null,
      status: o.status,
    };
    if (o.value !== undefined) j.value = b64(o.value);
    if (o.expect !== undefined) j.expect = o.expect === null ? null : b64(o.expect);
    if (o.expectModRevision !== undefined) j.expectModRevision = o.expectModRevision;
    if (o.found !== undefined) j.found = o.found === null ? null : b64(o.found);
    if (o.modRevision !== undefined) j.modRevision = o.modRevision;
    if (o.succeeded !== undefined) j.succeeded = o.succeeded;
    if (o.revision !== undefined) j.revision = o.revision;
    if (o.group !== undefined) j.group = o.group;
    return j;
  });
  return JSON.stringify({ format: 'tetcd-lincheck-history', version: 1, ops: out }) + '\n';
}

/** Parses historyToJson's output. */
export function historyFromJson(text: string): Op[] {
  const doc = JSON.parse(text) as { format?: string; ops?: OpJson[] };
  if (doc.format !== 'tetcd-lincheck-history' || !Array.isArray(doc.ops)) throw new Error('not a tetcd-lincheck-history document');
  return doc.ops.map((j) => {
    const o: Op = {
      id: j.id,
      client: j.client,
      kind: j.kind,
      key: unb64(j.key),
      callMs: j.callMs,
      returnMs: j.returnMs === null ? Infinity : j.returnMs,
      status: j.status,
    };
    if (j.value !== undefined) o.value = unb64(j.value);
    if (j.expect !== undefined) o.expect = j.expect === null ? null : unb64(j.expect);
    if (j.expectModRevision !== undefined) o.expectModRevision = j.expectModRevision;
    if (j.found !== undefined) o.found = j.found === null ? null : unb64(j.found);
    if (j.modRevision !== undefined) o.modRevision = j.modRevision;
    if (j.succeeded !== undefined) o.succeeded = j.succeeded;
    if (j.revision !== undefined) o.revision = j.revision;
    if (j.group !== undefined) o.group = j.group;
    return o;
  });
}

/** Bytes shown to a human: printable ASCII as a quoted string, anything else as hex. */
export function showBytes(b: Uint8Array | null | undefined): string {
  if (b === undefined) return '?';
  if (b === null) return '∅';
  for (const c of b) if (c < 0x20 || c > 0x7e) return '0x' + Buffer.from(b).toString('hex');
  return JSON.stringify(Buffer.from(b).toString('latin1'));
}

/** One line describing an op, for reports. */
export function describeOp(o: Op): string {
  const t = `[${(o.callMs / 1000).toFixed(3)}s → ${Number.isFinite(o.returnMs) ? (o.returnMs / 1000).toFixed(3) + 's' : '?'}]`;
  let what: string;
  switch (o.kind) {
    case 'get':
      what = o.status === 'ok' ? `get → ${showBytes(o.found)} (mod ${o.modRevision ?? '?'})` : 'get';
      break;
    case 'put':
      what = `put ${showBytes(o.value)}`;
      break;
    case 'cas': {
      const cmp = o.expectModRevision !== undefined ? `mod=${o.expectModRevision} (${showBytes(o.expect)})` : showBytes(o.expect);
      what = `cas ${cmp} → ${showBytes(o.value)}`;
      if (o.status === 'ok')
        what += o.succeeded
          ? ' succeeded'
          : ` failed${o.found !== undefined ? `, saw ${showBytes(o.found)} (mod ${o.modRevision ?? '?'})` : ''}`;
      break;
    }
  }
  const rev = o.revision !== undefined ? ` rev=${o.revision}` : '';
  const part = o.group !== undefined ? ` (part of #${o.group}: ${o.kind === 'get' ? 'a range' : 'a txn'})` : '';
  return `#${o.id} c${o.client} ${t} ${showBytes(o.key)}: ${what} ${o.status}${rev}${part}`;
}
