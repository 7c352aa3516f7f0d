// Checks that use etcd's revisions on top of the model check. Each is implied by linearizability of the
// store with its revisions (every write is its own txn and gets the next revision; a linearizable answer
// carries the store revision at its linearization point), so a violation is a real bug, never noise.
import { describeOp, type Op } from './history.js';

/** One revision anomaly: what rule broke and the ops involved. */
export interface RevisionViolation {
  rule: string;
  ops: Op[];
  message: string;
}

const isWrite = (o: Op): boolean => o.kind === 'put' || (o.kind === 'cas' && o.succeeded === true);
const keyId = (k: Uint8Array): string => Buffer.from(k).toString('latin1');
const valId = (v: Uint8Array): string => Buffer.from(v).toString('latin1');

/**
 * Returns every revision anomaly of the completed ops (at most `max`):
 * - a read's header revision is ≥ the mod_revision it returns, and an absent key has mod_revision 0;
 * - two acknowledged writes never share a revision;
 * - a value written once on a key is always seen with the revision its write got (and one revision names
 *   one value);
 * - real time order implies revision order: if A returned before B was invoked, rev(B) ≥ rev(A), and
 *   rev(B) > rev(A) when B is a write;
 * - a read answered at header revision R returns, for each key, the last write at or below R: no
 *   acknowledged write of the key has a revision in (returned mod_revision, R]. With ranges over several
 *   keys this is what makes their answer one snapshot (a range that sees one key of a multi-key txn and
 *   misses another breaks it). Histories here have no deletes and no reads at an old revision.
 */
export function checkRevisions(ops: readonly Op[], max = 20): RevisionViolation[] {
  const out: RevisionViolation[] = [];
  const add = (rule: string, involved: Op[], message: string): boolean => {
    out.push({ rule, ops: involved, message: `${rule}: ${message}\n${involved.map((o) => '    ' + describeOp(o)).join('\n')}` });
    return out.length >= max;
  };
  const done = ops.filter((o) => o.status === 'ok');

  // Reads: header ≥ mod_revision; absence ↔ 0.
  for (const o of done) {
    if (o.found === undefined || o.modRevision === undefined) continue;
    if (o.found === null && o.modRevision !== 0) {
      if (add('absent-has-revision', [o], `an absent key reported mod_revision ${o.modRevision}`)) return out;
    }
    if (o.found !== null && o.modRevision <= 0) {
      if (add('present-without-revision', [o], 'a present key reported mod_revision 0')) return out;
    }
    if (o.revision !== undefined && o.revision > 0 && o.modRevision > o.revision) {
      if (add('read-from-future', [o], `header revision ${o.revision} < returned mod_revision ${o.modRevision}`)) return out;
    }
  }

  // Writes get distinct revisions.
  const byRevision = new Map<number, Op>();
  for (const o of done) {
    if (!isWrite(o) || o.revision === undefined || o.revision <= 0) continue;
    const prev = byRevision.get(o.revision);
    if (prev !== undefined && (prev.group === undefined || prev.group !== o.group)) {
      if (add('shared-write-revision', [prev, o], `two writes acknowledged at revision ${o.revision}`)) return out;
    } else byRevision.set(o.revision, o);
  }

  // Value ↔ revision, per key, for values written exactly once.
  const writesPerValue = new Map<string, number>();
  for (const o of ops) {
    if ((o.kind === 'put' || o.kind === 'cas') && o.value !== undefined && o.status !== 'fail') {
      const id = keyId(o.key) + '\0' + valId(o.value);
      writesPerValue.set(id, (writesPerValue.get(id) ?? 0) + 1);
    }
  }
  const revOfValue = new Map<string, { rev: number; op: Op }>();
  const valueOfRev = new Map<string, { val: string; op: Op }>();
  const note = (o: Op, value: Uint8Array, rev: number): boolean => {
    const vid = keyId(o.key) + '\0' + valId(value);
    if (writesPerValue.get(vid) !== 1) return false;
    const known = revOfValue.get(vid);
    if (known === undefined) revOfValue.set(vid, { rev, op: o });
    else if (known.rev !== rev) return add('value-revision-mismatch', [known.op, o], `one write seen at revisions ${known.rev} and ${rev}`);
    const rid = keyId(o.key) + '\0' + rev;
    const other = valueOfRev.get(rid);
    if (other === undefined) valueOfRev.set(rid, { val: vid, op: o });
    else if (other.val !== vid) return add('revision-names-two-values', [other.op, o], `revision ${rev} holds two different values`);
    return false;
  };
  for (const o of done) {
    if (isWrite(o) && o.value !== undefined && o.revision !== undefined && o.revision > 0) {
      if (note(o, o.value, o.revision)) return out;
    }
    if (o.found && o.modRevision !== undefined && o.modRevision > 0) {
      if (note(o, o.found, o.modRevision)) return out;
    }
  }

  // Reads see every write at or below their revision.
  const writeRevs = new Map<string, { rev: number; op: Op }[]>();
  for (const o of done) {
    if (!isWrite(o) || o.revision === undefined || o.revision <= 0) continue;
    const k = keyId(o.key);
    let list = writeRevs.get(k);
    if (list === undefined) writeRevs.set(k, (list = []));
    list.push({ rev: o.revision, op: o });
  }
  for (const list of writeRevs.values()) list.sort((a, b) => a.rev - b.rev);
  for (const o of done) {
    if (o.kind !== 'get' || o.modRevision === undefined || o.revision === undefined || o.revision <= 0) continue;
    const list = writeRevs.get(keyId(o.key));
    if (list === undefined) continue;
    // The last acknowledged write of the key at or below the read's revision.
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.rev <= o.revision) lo = mid + 1;
      else hi = mid;
    }
    const last = lo > 0 ? list[lo - 1]! : undefined;
    if (last !== undefined && last.rev > o.modRevision) {
      if (
        add(
          'read-missed-write',
          [last.op, o],
          `a read at revision ${o.revision} returned mod_revision ${o.modRevision}, missing the write at revision ${last.rev}`,
        )
      )
        return out;
    }
  }

  // Real-time order ⇒ revision order. Sweep ops by call time; keep the highest revision among ops
  // that returned before the current call.
  const withRev = done.filter((o) => o.revision !== undefined && o.revision > 0);
  const byCall = [...withRev].sort((a, b) => a.callMs - b.callMs);
  const byReturn = [...withRev].sort((a, b) => a.returnMs - b.returnMs);
  let r = 0;
  let best: Op | undefined;
  for (const b of byCall) {
    while (r < byReturn.length && byReturn[r].returnMs < b.callMs) {
      const a = byReturn[r++];
      if (best === undefined || a.revision! > best.revision!) best = a;
    }
    if (best === undefined) continue;
    const strict = isWrite(b);
    if (b.revision! < best.revision! || (strict && b.revision! === best.revision!)) {
      if (
        add(
          'revision-went-back',
          [best, b],
          `an op invoked after another returned at revision ${best.revision} answered with revision ${b.revision}`,
        )
      )
        return out;
    }
  }
  return out;
}
