// A user's key permissions merged over all its roles, checked as etcd 3.4 checks them
// (auth/range_perm_cache.go over pkg/adt's interval tree): keys compare "affinely" (an empty byte string
// sorts after every other, so an empty range end means "to the end of the keyspace" and so does an empty
// begin), a range is permitted when the union of the user's intervals covers it without a gap, a single
// key when some interval holds it.
import { Permission_Type, type Permission } from '../proto/auth.js';

/** [begin, end) with etcd's affine ordering. */
interface Interval {
  begin: Uint8Array;
  end: Uint8Array;
}

/** adt.BytesAffineComparable: the empty string is greater than every other. */
export function affineCompare(a: Uint8Array, b: Uint8Array): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return Buffer.compare(a, b);
}

/** adt.Interval.Compare: 0 when the two overlap. */
function overlaps(q: Interval, p: Interval): boolean {
  if (affineCompare(q.begin, p.begin) < 0 && affineCompare(q.end, p.begin) <= 0) return false;
  if (affineCompare(q.begin, p.end) >= 0) return false;
  return true;
}

/** adt.NewBytesAffinePoint: [key, key + "\0"). */
function point(key: Uint8Array): Interval {
  const end = new Uint8Array(key.length + 1);
  end.set(key, 0);
  return { begin: key, end };
}

const ZERO = Uint8Array.of(0);
const EMPTY = new Uint8Array(0);

function isZero(b: Uint8Array): boolean {
  return b.length === 1 && b[0] === 0;
}

/** The intervals one kind of access (read or write) is allowed on, sorted by begin. */
export class IntervalSet {
  private readonly ivls: Interval[] = [];

  add(p: Permission): void {
    // getMergedPerms: "\0" as the range end means no end; an empty one a single key.
    if (p.range_end.length === 0) this.ivls.push(point(p.key));
    else this.ivls.push({ begin: p.key, end: isZero(p.range_end) ? EMPTY : p.range_end });
  }

  seal(): void {
    this.ivls.sort((a, b) => affineCompare(a.begin, b.begin));
  }

  /** adt.IntervalTree.Intersects of a point. */
  holds(key: Uint8Array): boolean {
    const q = point(key);
    for (const p of this.ivls) if (overlaps(q, p)) return true;
    return false;
  }

  /** adt.IntervalTree.Contains: the overlapping intervals, in begin order, cover q without a gap. */
  covers(q: Interval): boolean {
    let minBegin: Uint8Array | undefined;
    let maxEnd: Uint8Array = EMPTY;
    for (const p of this.ivls) {
      if (!overlaps(q, p)) continue;
      if (minBegin === undefined) {
        minBegin = p.begin;
        maxEnd = p.end;
        continue;
      }
      if (affineCompare(maxEnd, p.begin) < 0) return false;
      if (affineCompare(p.end, maxEnd) > 0) maxEnd = p.end;
    }
    return minBegin !== undefined && affineCompare(maxEnd, q.end) >= 0 && affineCompare(minBegin, q.begin) <= 0;
  }
}

/**
 * What one user may read and write.
 *
 *   const perms = UserPerms.of(roles);
 *   perms.permitted(key, rangeEnd, Permission_Type.READ)
 */
export class UserPerms {
  readonly read = new IntervalSet();
  readonly write = new IntervalSet();

  static of(perms: Iterable<Permission>): UserPerms {
    const u = new UserPerms();
    for (const p of perms) {
      if (p.permType === Permission_Type.READ || p.permType === Permission_Type.READWRITE) u.read.add(p);
      if (p.permType === Permission_Type.WRITE || p.permType === Permission_Type.READWRITE) u.write.add(p);
    }
    u.read.seal();
    u.write.seal();
    return u;
  }

  /** isRangeOpPermitted: an empty range end checks the key alone; "\0" means every key from `key` on. */
  permitted(key: Uint8Array, rangeEnd: Uint8Array | undefined, type: number): boolean {
    const set = type === Permission_Type.READ ? this.read : this.write;
    if (rangeEnd === undefined || rangeEnd.length === 0) return set.holds(key);
    return set.covers({ begin: key, end: isZero(rangeEnd) ? EMPTY : rangeEnd });
  }
}

export { ZERO as ZERO_KEY };
