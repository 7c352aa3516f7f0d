// An interval index over byte-string ranges [start, end) (an empty end is unbounded), answering "which
// intervals hold this key" in O(log n + matches): a treap ordered by (start, id) whose nodes carry the
// largest end in their subtree, so a lookup skips every subtree that ends at or before the key.
// etcd keeps its range watchers in an interval tree for the same reason (pkg/adt).

/** An unbounded end sorts after every key. */
const UNBOUNDED = null;
type End = Uint8Array | typeof UNBOUNDED;

interface Node<T> {
  readonly start: Uint8Array;
  readonly end: End;
  readonly id: number;
  readonly value: T;
  readonly priority: number;
  maxEnd: End;
  left: Node<T> | undefined;
  right: Node<T> | undefined;
}

function cmpEnd(a: End, b: End): number {
  if (a === UNBOUNDED) return b === UNBOUNDED ? 0 : 1;
  if (b === UNBOUNDED) return -1;
  return Buffer.compare(a, b);
}

function maxEndOf<T>(n: Node<T>): End {
  let m = n.end;
  if (n.left !== undefined && cmpEnd(n.left.maxEnd, m) > 0) m = n.left.maxEnd;
  if (n.right !== undefined && cmpEnd(n.right.maxEnd, m) > 0) m = n.right.maxEnd;
  return m;
}

/**
 * Intervals with values.
 *
 *   const t = new IntervalTree<Watcher>();
 *   t.insert(key, end, w.seq, w);                 // end: an empty array means every key >= key
 *   t.forEachContaining(changedKey, (w) => ...);
 *   t.delete(key, w.seq);
 */
export class IntervalTree<T> {
  private root: Node<T> | undefined = undefined;
  private count = 0;
  /** xorshift32 state for priorities (deterministic: the shape never depends on the clock). */
  private seed = 0x2545f491;

  get size(): number {
    return this.count;
  }

  /** Adds [start, end) with a unique id (ties on start are ordered by id). An empty `end` is unbounded. */
  insert(start: Uint8Array, end: Uint8Array, id: number, value: T): void {
    let s = this.seed;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.seed = s >>> 0;
    const e: End = end.length === 0 ? UNBOUNDED : end;
    const node: Node<T> = { start, end: e, id, value, priority: this.seed, maxEnd: e, left: undefined, right: undefined };
    this.root = this.insertAt(this.root, node);
    this.count++;
  }

  /** Removes the interval with this start and id; false if there is none. */
  delete(start: Uint8Array, id: number): boolean {
    const before = this.count;
    this.root = this.deleteAt(this.root, start, id);
    return this.count < before;
  }

  /** Calls visit with the value of every interval that holds `key`, in start order. */
  forEachContaining(key: Uint8Array, visit: (value: T) => void): void {
    this.visit(this.root, key, visit);
  }

  /** Every value, in start order. */
  values(): T[] {
    const out: T[] = [];
    const walk = (n: Node<T> | undefined): void => {
      if (n === undefined) return;
      walk(n.left);
      out.push(n.value);
      walk(n.right);
    };
    walk(this.root);
    return out;
  }

  private visit(n: Node<T> | undefined, key: Uint8Array, fn: (value: T) => void): void {
    while (n !== undefined) {
      // Nothing in this subtree ends after the key: no interval here holds it.
      if (n.maxEnd !== UNBOUNDED && Buffer.compare(n.maxEnd, key) <= 0) return;
      this.visit(n.left, key, fn);
      // Starts to the right are >= this one: past the key, nothing there holds it.
      if (Buffer.compare(n.start, key) > 0) return;
      if (n.end === UNBOUNDED || Buffer.compare(key, n.end) < 0) fn(n.value);
      n = n.right;
    }
  }

  private insertAt(n: Node<T> | undefined, node: Node<T>): Node<T> {
    if (n === undefined) return node;
    if (order(node.start, node.id, n) < 0) {
      n.left = this.insertAt(n.left, node);
      if (n.left.priority > n.priority) n = rotateRight(n);
    } else {
      n.right = this.insertAt(n.right, node);
      if (n.right.priority > n.priority) n = rotateLeft(n);
    }
    n.maxEnd = maxEndOf(n);
    return n;
  }

  private deleteAt(n: Node<T> | undefined, start: Uint8Array, id: number): Node<T> | undefined {
    if (n === undefined) return undefined;
    const c = order(start, id, n);
    if (c < 0) n.left = this.deleteAt(n.left, start, id);
    else if (c > 0) n.right = this.deleteAt(n.right, start, id);
    else {
      this.count--;
      return merge(n.left, n.right);
    }
    n.maxEnd = maxEndOf(n);
    return n;
  }
}

function order<T>(start: Uint8Array, id: number, n: Node<T>): number {
  const c = Buffer.compare(start, n.start);
  return c !== 0 ? c : id - n.id;
}

function rotateRight<T>(n: Node<T>): Node<T> {
  const l = n.left!;
  n.left = l.right;
  l.right = n;
  n.maxEnd = maxEndOf(n);
  l.maxEnd = maxEndOf(l);
  return l;
}

function rotateLeft<T>(n: Node<T>): Node<T> {
  const r = n.right!;
  n.right = r.left;
  r.left = n;
  n.maxEnd = maxEndOf(n);
  r.maxEnd = maxEndOf(r);
  return r;
}

function merge<T>(a: Node<T> | undefined, b: Node<T> | undefined): Node<T> | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (a.priority > b.priority) {
    a.right = merge(a.right, b);
    a.maxEnd = maxEndOf(a);
    return a;
  }
  b.left = merge(a, b.left);
  b.maxEnd = maxEndOf(b);
  return b;
}
