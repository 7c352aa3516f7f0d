// Writes a bbolt database file: the format of etcd's backend and so of `etcdctl snapshot save`'s files,
// so etcd itself can restore a snapshot tetcd serves. Written from the format's facts (bbolt 1.3:
// page.go, node.go, bucket.go, db.go): pages of `pageSize` bytes, little-endian structs, meta pages 0
// and 1 (magic 0xED0CDAED, version 2, FNV-1a 64 checksum over the meta before it), a freelist page, and
// B+trees whose leaves hold key/value elements (a bucket is a leaf element flagged 0x01 whose value is
// the bucket's header, followed by the bucket's own page when it is small enough to be inline).
//
// Buckets are written whole, one after another, from entries in key order: leaves are filled and
// written as they come (only the first key of each leaf is kept, for the branch pages), so a bucket of
// any size costs one page of memory plus a key per leaf. The file is tight: every page below the
// high-water mark belongs to a tree, the freelist or a meta page (`bbolt check` finds nothing unreachable).
//
//   const w = new BboltWriter(fd);
//   const b = w.bucket(Buffer.from('key'));
//   for (const [k, v] of sorted) b.add(k, v);
//   b.end();
//   const bytes = w.finish();
import fs from 'node:fs';

/** The page size bbolt picks on Linux/amd64 (the OS page size), and so the one etcd's files have. */
export const BBOLT_PAGE_SIZE_DEFAULT = 4096;

const PAGE_HEADER_BYTES = 16;
const ELEMENT_BYTES = 16;
const BUCKET_HEADER_BYTES = 16;
const META_BYTES = 64;
const META_CHECKSUMMED_BYTES = 56;

const BRANCH_PAGE = 0x01;
const LEAF_PAGE = 0x02;
const META_PAGE = 0x04;
const FREELIST_PAGE = 0x10;
/** Leaf element flag: the element is a bucket. */
const BUCKET_LEAF = 0x01;

const MAGIC = 0xed0cdaed;
const VERSION = 2;
/** bbolt's element count field is 16 bits. */
const PAGE_ELEMENTS_MAX = 0xffff;
/** A leaf's data buffer grown past this for a large value is dropped after the leaf. */
const DATA_BUFFER_KEPT_BYTES = 4 << 20;
/** Bytes the writer gathers before one write(2). */
const FLUSH_BYTES = 1 << 20;

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const U64_MASK = 0xffffffffffffffffn;

/** FNV-1a 64 of `b` (bbolt's meta checksum). */
export function fnv1a64(b: Uint8Array): bigint {
  let h = FNV64_OFFSET;
  for (let i = 0; i < b.length; i++) h = ((h ^ BigInt(b[i])) * FNV64_PRIME) & U64_MASK;
  return h;
}

/** One child of a branch page: the first key below it and its page. */
interface ChildRef {
  readonly key: Buffer;
  readonly pgid: number;
}

/**
 * The file being written: pages get ids in the order they are written, from 2 (0 and 1 are the meta
 * pages, written last by finish()).
 */
export class BboltWriter {
  readonly pageSize: number;
  private nextPgid = 2;
  private out: Buffer;
  private outUsed = 0;
  /** File offset of out[0]. */
  private outOffset: number;
  private readonly root: BucketBuilder;
  /** Every finished top-level bucket: its name and its value in the root bucket. */
  private readonly rootEntries: { key: Buffer; value: Buffer }[] = [];
  private open: BucketBuilder | undefined;
  private finished = false;

  constructor(
    private readonly fd: number,
    pageSize = BBOLT_PAGE_SIZE_DEFAULT,
  ) {
    if (!(pageSize >= 1024 && (pageSize & (pageSize - 1)) === 0)) throw new Error(`bbolt: bad page size ${pageSize}`);
    this.pageSize = pageSize;
    this.out = Buffer.allocUnsafe(FLUSH_BYTES);
    this.outOffset = 2 * pageSize;
    this.root = new BucketBuilder(this, true);
  }

  /** Pages written so far, meta pages included. */
  get pages(): number {
    return this.nextPgid;
  }

  /**
   * Starts a top-level bucket; add its entries in strictly increasing key order, then end() it before
   * the next bucket. Bucket names may come in any order (the root is sorted at finish()).
   */
  bucket(name: Uint8Array): BucketBuilder {
    if (this.finished || this.open !== undefined) throw new Error('bbolt: a bucket is still open, or the file is finished');
    if (name.length === 0) throw new Error('bbolt: empty bucket name');
    const b = new BucketBuilder(this, false);
    this.open = b;
    b.onEnd = (value) => {
      this.open = undefined;
      this.rootEntries.push({ key: Buffer.from(name), value });
    };
    return b;
  }

  /**
   * Room for the next page (`bytes`, whole pages) to be filled in place: a view of the output buffer, or a
   * buffer of its own when larger. It is not zeroed: the caller writes every byte, then calls _pageDone().
   */
  _pageSpace(bytes: number): Buffer {
    if (this.outUsed + bytes > this.out.length) this.flush();
    return bytes > this.out.length ? Buffer.allocUnsafe(bytes) : this.out.subarray(this.outUsed, this.outUsed + bytes);
  }

  /** Takes the page filled in `view` (from _pageSpace, its id still to set) as the next pages; returns its pgid. */
  _pageDone(view: Buffer): number {
    const pgid = this.nextPgid;
    writeU64(view, 0, pgid);
    this.nextPgid += view.length / this.pageSize;
    if (view.buffer === this.out.buffer && view.byteOffset === this.out.byteOffset + this.outUsed) {
      this.outUsed += view.length;
    } else {
      this.writeAll(view, this.outOffset);
      this.outOffset += view.length;
    }
    return pgid;
  }

  /** Appends `page` (whole pages, its header's id still to set) as the next pages; returns its pgid. */
  _writePage(page: Buffer): number {
    const view = this._pageSpace(page.length);
    page.copy(view);
    return this._pageDone(view);
  }

  private flush(): void {
    if (this.outUsed === 0) return;
    this.writeAll(this.out.subarray(0, this.outUsed), this.outOffset);
    this.outOffset += this.outUsed;
    this.outUsed = 0;
  }

  private writeAll(b: Uint8Array, position: number): void {
    let done = 0;
    while (done < b.length) done += fs.writeSync(this.fd, b, done, b.length - done, position + done);
  }

  /**
   * Writes the root bucket, an empty freelist and the two meta pages (page 0 with txid 2, page 1 with
   * txid 1, as bbolt places a txid's meta at txid % 2); returns the file's size in bytes.
   */
  finish(): number {
    if (this.finished || this.open !== undefined) throw new Error('bbolt: a bucket is still open, or the file is finished');
    this.finished = true;
    this.rootEntries.sort((a, b) => Buffer.compare(a.key, b.key));
    for (let i = 1; i < this.rootEntries.length; i++) {
      if (Buffer.compare(this.rootEntries[i - 1].key, this.rootEntries[i].key) === 0) {
        throw new Error(`bbolt: bucket '${this.rootEntries[i].key.toString()}' written twice`);
      }
    }
    let rootValue: Buffer | undefined;
    this.root.onEnd = (v) => {
      rootValue = v;
    };
    for (const e of this.rootEntries) this.root._addElement(e.key, e.value, BUCKET_LEAF);
    this.root.end();
    const rootPgid = readU64(rootValue!, 0);
    const freelist = Buffer.alloc(this.pageSize);
    writeU16(freelist, 8, FREELIST_PAGE);
    const freelistPgid = this._writePage(freelist);
    this.flush();
    const highWater = this.nextPgid;
    for (const [pgid, txid] of [
      [0, 2],
      [1, 1],
    ]) {
      const p = Buffer.alloc(this.pageSize);
      writeU64(p, 0, pgid);
      writeU16(p, 8, META_PAGE);
      const m = p.subarray(PAGE_HEADER_BYTES, PAGE_HEADER_BYTES + META_BYTES);
      m.writeUInt32LE(MAGIC, 0);
      m.writeUInt32LE(VERSION, 4);
      m.writeUInt32LE(this.pageSize, 8);
      m.writeUInt32LE(0, 12);
      writeU64(m, 16, rootPgid);
      writeU64(m, 24, 0);
      writeU64(m, 32, freelistPgid);
      writeU64(m, 40, highWater);
      writeU64(m, 48, txid);
      m.writeBigUInt64LE(fnv1a64(m.subarray(0, META_CHECKSUMMED_BYTES)), META_CHECKSUMMED_BYTES);
      this.writeAll(p, pgid * this.pageSize);
    }
    return highWater * this.pageSize;
  }
}

/**
 * One bucket's tree, built bottom-up from entries in key order: a leaf is written when the next entry
 * would not fit its page (an entry bigger than a page gets a leaf of its own, with overflow pages), then
 * branch levels over the leaves' first keys until one page is the root. A bucket that fits one leaf of
 * at most a quarter page is inline, as bbolt keeps such buckets.
 */
export class BucketBuilder {
  /** Element headers of the leaf being filled: flags, data offset, key size, value size. */
  private flags: number[] = [];
  private offsets: number[] = [];
  private ksizes: number[] = [];
  private vsizes: number[] = [];
  private data: Buffer;
  private dataUsed = 0;
  private firstKey: Buffer | undefined;
  private lastKey: Buffer | undefined;
  private readonly leaves: ChildRef[] = [];
  private ended = false;
  /** Receives the bucket's value for its parent (header, and the inline page if inline). */
  onEnd: (value: Buffer) => void = () => {};

  constructor(
    private readonly w: BboltWriter,
    private readonly neverInline: boolean,
  ) {
    this.data = Buffer.allocUnsafe(w.pageSize);
  }

  /** Adds a key/value pair; keys must be non-empty and strictly increasing (bytewise). */
  add(key: Uint8Array, value: Uint8Array): void {
    this._addElement(key, value, 0);
  }

  _addElement(key: Uint8Array, value: Uint8Array, flags: number): void {
    if (this.ended) throw new Error('bbolt: add after end');
    if (key.length === 0) throw new Error('bbolt: empty key');
    if (this.lastKey !== undefined && Buffer.compare(this.lastKey, key) >= 0) {
      throw new Error(`bbolt: key ${Buffer.from(key).toString('hex')} out of order`);
    }
    const size = ELEMENT_BYTES + key.length + value.length;
    const n = this.flags.length;
    if (n > 0 && (this.leafBytes() + size > this.w.pageSize || n === PAGE_ELEMENTS_MAX)) this.flushLeaf();
    if (this.dataUsed + key.length + value.length > this.data.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.data.length * 2, this.dataUsed + key.length + value.length));
      this.data.copy(grown, 0, 0, this.dataUsed);
      this.data = grown;
    }
    if (this.flags.length === 0) this.firstKey = Buffer.from(key);
    this.flags.push(flags);
    this.offsets.push(this.dataUsed);
    this.ksizes.push(key.length);
    this.vsizes.push(value.length);
    this.data.set(key, this.dataUsed);
    this.data.set(value, this.dataUsed + key.length);
    this.dataUsed += key.length + value.length;
    // The last key is kept for the order check: a view of the data buffer would change under it.
    this.lastKey = Buffer.from(key);
  }

  private leafBytes(): number {
    return PAGE_HEADER_BYTES + this.flags.length * ELEMENT_BYTES + this.dataUsed;
  }

  /** Writes the leaf being filled into `p` as a page image (zero-padded to p's length; the id left 0). */
  private leafImage(p: Buffer, overflowPages: number): void {
    const n = this.flags.length;
    p.fill(0, 0, PAGE_HEADER_BYTES);
    writeU16(p, 8, LEAF_PAGE);
    writeU16(p, 10, n);
    writeU32(p, 12, overflowPages);
    const dataStart = PAGE_HEADER_BYTES + n * ELEMENT_BYTES;
    for (let i = 0; i < n; i++) {
      const e = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
      p.writeUInt32LE(this.flags[i], e);
      p.writeUInt32LE(dataStart + this.offsets[i] - e, e + 4);
      p.writeUInt32LE(this.ksizes[i], e + 8);
      p.writeUInt32LE(this.vsizes[i], e + 12);
    }
    this.data.copy(p, dataStart, 0, this.dataUsed);
    p.fill(0, dataStart + this.dataUsed);
  }

  private flushLeaf(): void {
    const pages = Math.ceil(this.leafBytes() / this.w.pageSize);
    const p = this.w._pageSpace(pages * this.w.pageSize);
    this.leafImage(p, pages - 1);
    this.leaves.push({ key: this.firstKey!, pgid: this.w._pageDone(p) });
    this.flags = [];
    this.offsets = [];
    this.ksizes = [];
    this.vsizes = [];
    this.dataUsed = 0;
    // Kept grown for the next large value, up to a bound (one huge value must not pin its size).
    if (this.data.length > DATA_BUFFER_KEPT_BYTES) this.data = Buffer.allocUnsafe(this.w.pageSize);
  }

  /** Finishes the bucket: its last leaf and its branch pages are written, its value goes to the parent. */
  end(): void {
    if (this.ended) throw new Error('bbolt: bucket ended twice');
    this.ended = true;
    if (!this.neverInline && this.leaves.length === 0 && this.leafBytes() <= this.w.pageSize / 4) {
      const bytes = this.leafBytes();
      const value = Buffer.alloc(BUCKET_HEADER_BYTES + bytes);
      this.leafImage(value.subarray(BUCKET_HEADER_BYTES), 0);
      this.onEnd(value);
      return;
    }
    if (this.flags.length > 0 || this.leaves.length === 0) this.flushLeaf();
    let level = this.leaves;
    while (level.length > 1) {
      const up = this.branchLevel(level);
      if (up.length >= level.length) throw new Error('bbolt: a branch level did not shrink');
      level = up;
    }
    const value = Buffer.alloc(BUCKET_HEADER_BYTES);
    writeU64(value, 0, level[0].pgid);
    this.onEnd(value);
  }

  /** Writes the branch pages over `children`; returns their refs (one level up). */
  private branchLevel(children: ChildRef[]): ChildRef[] {
    const up: ChildRef[] = [];
    let start = 0;
    while (start < children.length) {
      let bytes = PAGE_HEADER_BYTES;
      let end = start;
      while (end < children.length && end - start < PAGE_ELEMENTS_MAX) {
        const size = ELEMENT_BYTES + children[end].key.length;
        // At least two children a page (bbolt's minKeysPerPage; a bigger one overflows): each level halves.
        if (end - start >= 2 && bytes + size > this.w.pageSize) break;
        bytes += size;
        end++;
      }
      const n = end - start;
      const pages = Math.ceil(bytes / this.w.pageSize);
      const p = Buffer.alloc(pages * this.w.pageSize);
      writeU16(p, 8, BRANCH_PAGE);
      writeU16(p, 10, n);
      writeU32(p, 12, pages - 1);
      let dataAt = PAGE_HEADER_BYTES + n * ELEMENT_BYTES;
      for (let i = 0; i < n; i++) {
        const c = children[start + i];
        const e = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
        p.writeUInt32LE(dataAt - e, e);
        p.writeUInt32LE(c.key.length, e + 4);
        writeU64(p, e + 8, c.pgid);
        c.key.copy(p, dataAt);
        dataAt += c.key.length;
      }
      up.push({ key: children[start].key, pgid: this.w._writePage(p) });
      start = end;
    }
    return up;
  }
}

function writeU16(b: Buffer, off: number, v: number): void {
  b.writeUInt16LE(v, off);
}

function writeU32(b: Buffer, off: number, v: number): void {
  b.writeUInt32LE(v, off);
}

function writeU64(b: Uint8Array, off: number, v: number): void {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  buf.writeUInt32LE(v % 0x100000000, off);
  buf.writeUInt32LE(Math.floor(v / 0x100000000), off + 4);
}

function readU64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * 0x100000000;
}
