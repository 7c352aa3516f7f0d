// A read-only reader of bbolt database files (etcd's backend, and what `etcdctl snapshot save` writes),
// from the file format as go.etcd.io/bbolt lays it out (amd64, little-endian):
//
//   page header (16 bytes): id u64, flags u16 (branch 0x01, leaf 0x02, meta 0x04, freelist 0x10),
//     count u16, overflow u32 (the page spans 1 + overflow pages).
//   meta (pages 0 and 1, after the header): magic u32 0xED0CDAED, version u32 2, pageSize u32, flags u32,
//     root bucket {root pgid u64, sequence u64}, freelist pgid u64, pgid u64 (high water mark), txid u64,
//     checksum u64 = FNV-1a 64 of the 56 bytes before it. The valid meta with the higher txid is current.
//   branch element (16 bytes): pos u32, ksize u32, pgid u64; leaf element (16 bytes): flags u32 (0x01: the
//     value is a bucket), pos u32, ksize u32, vsize u32. The key sits `pos` bytes after its element.
//   bucket value: {root pgid u64, sequence u64}; root 0 = an inline bucket, whose leaf page follows.
//   freelist page: count pgids (u64); a count of 0xFFFF means the real count is the first u64.
//
// Every offset and page id is checked against the file before use, page references are followed at most
// once (a cycle or a shared page is an error, as bbolt's Check reports it), so a damaged or hostile file
// gives an error, never a crash or a loop.
import fs from 'node:fs';

const PAGE_HEADER_BYTES = 16;
const ELEMENT_BYTES = 16;
const BUCKET_HEADER_BYTES = 16;
const META_BYTES = 64;
const META_CHECKSUM_OFFSET = 56;
const MAGIC = 0xed0cdaed;
const VERSION = 2;

const BRANCH_PAGE = 0x01;
const LEAF_PAGE = 0x02;
const META_PAGE = 0x04;
const FREELIST_PAGE = 0x10;
const BUCKET_LEAF_FLAG = 0x01;
/** The meta's freelist id when the freelist is not kept in the file (etcd's NoFreelistSync). */
const NO_FREELIST = 0xffffffffffffffffn;

/** Page sizes accepted (bbolt writes the OS page size: 4 KiB on amd64, up to 64 KiB elsewhere). */
const PAGE_SIZE_MIN = 512;
const PAGE_SIZE_MAX = 64 * 1024;
/** Files up to this size are by default read into memory at once (one read instead of one per page); larger ones a page at a time. */
const WHOLE_FILE_BYTES_MAX = 256 * 1024 * 1024;
/** Bucket nesting followed at most (etcd nests none; bbolt's own limit is the stack). */
const BUCKET_DEPTH_MAX = 64;

/** The file is not a bbolt database, or is damaged: `message` is the text bbolt/etcdctl would print. */
export class BboltError extends Error {}

/** bbolt's own error values, by their texts. */
export const BboltErrors = {
  invalid: 'invalid database',
  versionMismatch: 'version mismatch',
  checksum: 'checksum error',
  tooSmall: 'file size too small',
} as const;

interface Meta {
  pageSize: number;
  root: number;
  /** The freelist page; -1 when the file keeps none (free pages are then the unreachable ones). */
  freelist: number;
  /** Pages in use: the high water mark. */
  pgid: number;
  txid: bigint;
}

/** One page (with its overflow pages) read from the file. */
interface Page {
  id: number;
  flags: number;
  count: number;
  overflow: number;
  buf: Buffer;
}

/** A key and value of a bucket; `bucket` set when the value is a nested bucket (then `value` is its header). */
export interface BboltEntry {
  key: Buffer;
  value: Buffer;
  bucket: boolean;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const U64 = 0xffffffffffffffffn;

function fnv1a64(b: Uint8Array): bigint {
  let h = FNV_OFFSET;
  for (let i = 0; i < b.length; i++) h = ((h ^ BigInt(b[i])) * FNV_PRIME) & U64;
  return h;
}

/** A u64 that must fit a page id / count (JS safe integer); larger is damage. */
function u64(b: Buffer, off: number, what: string): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BboltError(`${what} out of range: ${v}`);
  return Number(v);
}

/** The meta at the start of `page`, or the error bbolt's validate() gives for it. */
function readMeta(page: Buffer): Meta | Error {
  if (page.length < PAGE_HEADER_BYTES + META_BYTES) return new BboltError(BboltErrors.invalid);
  const m = page.subarray(PAGE_HEADER_BYTES, PAGE_HEADER_BYTES + META_BYTES);
  if (m.readUInt32LE(0) !== MAGIC) return new BboltError(BboltErrors.invalid);
  if (m.readUInt32LE(4) !== VERSION) return new BboltError(BboltErrors.versionMismatch);
  const sum = m.readBigUInt64LE(META_CHECKSUM_OFFSET);
  if (sum !== 0n && sum !== fnv1a64(m.subarray(0, META_CHECKSUM_OFFSET))) return new BboltError(BboltErrors.checksum);
  const freelist = m.readBigUInt64LE(32);
  const bigs = [m.readBigUInt64LE(16), freelist === NO_FREELIST ? 0n : freelist, m.readBigUInt64LE(40)];
  if (bigs.some((v) => v > BigInt(Number.MAX_SAFE_INTEGER))) return new BboltError(BboltErrors.invalid);
  return {
    pageSize: m.readUInt32LE(8),
    root: Number(bigs[0]),
    freelist: freelist === NO_FREELIST ? -1 : Number(bigs[1]),
    pgid: Number(bigs[2]),
    txid: m.readBigUInt64LE(48),
  };
}

/**
 * A bbolt file opened read-only.
 *
 *   const db = BboltFile.open('/backup/snap.db');
 *   for (const name of db.bucketNames()) for (const e of db.entries(name)) ...;
 *   db.close();
 */
export class BboltFile {
  private readonly pages: number;
  /** The whole file when it is small enough (WHOLE_FILE_BYTES_MAX), else undefined: pages are read one by one. */
  private whole: Buffer | undefined;

  private constructor(
    private readonly fd: number,
    /** Bytes of the file (a snapshot's trailing sha256 included). */
    readonly fileBytes: number,
    private readonly meta: Meta,
    private readonly wholeFileBytesMax: number,
  ) {
    this.pages = Math.floor(fileBytes / meta.pageSize);
  }

  /**
   * Opens `path` as bbolt does: the page size from a valid meta in the first 4 KiB, then both metas; it
   * fails only when neither is valid, with meta 0's error. `bytes` limits the file to its first bytes
   * (a snapshot without its trailing hash). Files up to `wholeFileBytesMax` are read into memory at once.
   */
  static open(path: string, bytes?: number, wholeFileBytesMax = WHOLE_FILE_BYTES_MAX): BboltFile {
    const fd = fs.openSync(path, 'r');
    try {
      const size = Math.min(bytes ?? Number.POSITIVE_INFINITY, fs.fstatSync(fd).size);
      const head = Buffer.alloc(0x1000);
      if (size < head.length || fs.readSync(fd, head, 0, head.length, 0) !== head.length) throw new BboltError(BboltErrors.invalid);
      let pageSize = 4096;
      const m0 = readMeta(head);
      if (!(m0 instanceof Error)) pageSize = m0.pageSize;
      if (!(pageSize >= PAGE_SIZE_MIN && pageSize <= PAGE_SIZE_MAX && (pageSize & (pageSize - 1)) === 0)) {
        throw new BboltError(BboltErrors.invalid);
      }
      if (size < pageSize * 2) throw new BboltError(BboltErrors.tooSmall);
      const two = Buffer.alloc(pageSize * 2);
      fs.readSync(fd, two, 0, two.length, 0);
      const a = readMeta(two.subarray(0, pageSize));
      const b = readMeta(two.subarray(pageSize));
      let meta: Meta;
      if (a instanceof Error && b instanceof Error) throw a;
      else if (a instanceof Error) meta = b as Meta;
      else if (b instanceof Error) meta = a;
      else meta = b.txid > a.txid ? b : a;
      if (meta.pageSize !== pageSize) throw new BboltError(BboltErrors.invalid);
      const db = new BboltFile(fd, size, meta, wholeFileBytesMax);
      if (meta.pgid < 2 || meta.pgid > db.pages) {
        throw new BboltError(`high water mark ${meta.pgid} past the file's ${db.pages} pages (truncated file)`);
      }
      return db;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** bbolt's tx.Size(): the high water mark in bytes (what `snapshot status` reports as total size). */
  get sizeBytes(): number {
    return this.meta.pgid * this.meta.pageSize;
  }

  get pageSize(): number {
    return this.meta.pageSize;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** Reads page `id` with its overflow pages; throws on an id past the high water mark or the file. */
  private page(id: number): Page {
    const ps = this.meta.pageSize;
    if (!(id >= 2 && id < this.meta.pgid)) throw new BboltError(`page ${id}: out of bounds: ${this.meta.pgid}`);
    if (this.whole === undefined && this.fileBytes <= this.wholeFileBytesMax) {
      const all = Buffer.allocUnsafe(this.pages * ps);
      if (fs.readSync(this.fd, all, 0, all.length, 0) !== all.length) throw new BboltError('short read of the file');
      this.whole = all;
    }
    if (this.whole !== undefined) {
      const overflow = this.whole.readUInt32LE(id * ps + 12);
      if (id + overflow >= this.meta.pgid)
        throw new BboltError(`page ${id}: overflow ${overflow} past the high water mark ${this.meta.pgid}`);
      return this.checkedPage(id, this.whole.subarray(id * ps, (id + overflow + 1) * ps));
    }
    // One read for the common page; a page with overflow pages is read again whole once its size is known.
    let buf = Buffer.allocUnsafe(ps);
    if (fs.readSync(this.fd, buf, 0, ps, id * ps) !== ps) throw new BboltError(`page ${id}: past the end of the file`);
    const overflow = buf.readUInt32LE(12);
    if (overflow > 0) {
      if (id + overflow >= this.meta.pgid)
        throw new BboltError(`page ${id}: overflow ${overflow} past the high water mark ${this.meta.pgid}`);
      buf = Buffer.allocUnsafe((overflow + 1) * ps);
      if (fs.readSync(this.fd, buf, 0, buf.length, id * ps) !== buf.length) throw new BboltError(`page ${id}: past the end of the file`);
    }
    return this.checkedPage(id, buf);
  }

  private checkedPage(id: number, buf: Buffer): Page {
    // bbolt writes every page with its own id: another id is a misdirected reference or a page never written.
    const self = buf.readBigUInt64LE(0);
    if (self !== BigInt(id)) throw new BboltError(`page ${id}: self identifies as page ${self}`);
    return { id, flags: buf.readUInt16LE(8), count: buf.readUInt16LE(10), overflow: buf.readUInt32LE(12), buf };
  }

  /** Names of the top-level buckets, in key order. */
  bucketNames(): Buffer[] {
    return [...this.walk(this.meta.root, undefined, new Set())].map((e) => e.key);
  }

  /** Every entry of the top-level bucket `name`, in key order; undefined when there is no such bucket. */
  bucket(name: string | Uint8Array): Iterable<BboltEntry> | undefined {
    const want = Buffer.from(name);
    for (const e of this.walk(this.meta.root, undefined, new Set())) {
      if (!e.key.equals(want)) continue;
      if (!e.bucket) throw new BboltError(`incompatible value: ${want.toString()} is not a bucket`);
      return this.bucketEntries(e.value);
    }
    return undefined;
  }

  /** Entries of a bucket given its header value (a root page, or inline). */
  bucketEntries(header: Buffer): Iterable<BboltEntry> {
    if (header.length < BUCKET_HEADER_BYTES) throw new BboltError(`bucket header of ${header.length} bytes`);
    const root = u64(header, 0, 'bucket root');
    if (root !== 0) return this.walk(root, undefined, new Set());
    const inline = header.subarray(BUCKET_HEADER_BYTES);
    if (inline.length < PAGE_HEADER_BYTES) throw new BboltError('inline bucket shorter than a page header');
    const p: Page = { id: 0, flags: inline.readUInt16LE(8), count: inline.readUInt16LE(10), overflow: 0, buf: inline };
    return this.walk(0, p, new Set());
  }

  /**
   * Entries under page `id` in key order (depth first). `seen` holds every page visited in this walk; a page
   * met twice is a cycle or a shared subtree and is refused.
   */
  private *walk(id: number, inline: Page | undefined, seen: Set<number>): Generator<BboltEntry> {
    const stack: Array<{ p: Page; i: number }> = [];
    const enter = (pid: number): void => {
      if (seen.has(pid)) throw new BboltError(`page ${pid}: multiple references`);
      seen.add(pid);
      const p = this.page(pid);
      if (stack.length > 64) throw new BboltError(`page ${pid}: tree deeper than 64 levels`);
      stack.push({ p, i: 0 });
    };
    if (inline) stack.push({ p: inline, i: 0 });
    else enter(id);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const p = top.p;
      if (top.i === 0) checkPage(p);
      if (top.i >= p.count) {
        stack.pop();
        continue;
      }
      const at = PAGE_HEADER_BYTES + top.i * ELEMENT_BYTES;
      top.i++;
      if (p.flags & BRANCH_PAGE) {
        const child = u64(p.buf, at + 8, `page ${p.id}: child page id`);
        if (inline) throw new BboltError('inline bucket with a branch page');
        enter(child);
        continue;
      }
      const flags = p.buf.readUInt32LE(at);
      const pos = p.buf.readUInt32LE(at + 4);
      const ksize = p.buf.readUInt32LE(at + 8);
      const vsize = p.buf.readUInt32LE(at + 12);
      const k0 = at + pos;
      if (k0 + ksize + vsize > p.buf.length) throw new BboltError(`page ${p.id}: element ${top.i - 1} runs past the page`);
      yield {
        key: p.buf.subarray(k0, k0 + ksize),
        value: p.buf.subarray(k0 + ksize, k0 + ksize + vsize),
        bucket: (flags & BUCKET_LEAF_FLAG) !== 0,
      };
    }
  }

  /**
   * bbolt's tx.Check(): freelist pages freed once, every page in a bucket tree referenced once, of a branch
   * or leaf type, not freed, and every page below the high water mark either reachable or free. Returns the
   * errors (bbolt's texts), at most `max` of them; structural damage that stops the walk ends the list.
   */
  check(max = 100): string[] {
    const errs: string[] = [];
    const add = (s: string): boolean => {
      errs.push(s);
      return errs.length < max;
    };
    const freed = new Set<number>();
    const reachable = new Set<number>([0, 1]);
    try {
      if (this.meta.freelist >= 0) {
        const fl = this.page(this.meta.freelist);
        for (let i = 0; i <= fl.overflow; i++) reachable.add(fl.id + i);
        for (const id of this.freelistIds(fl)) {
          if (freed.has(id) && !add(`page ${id}: already freed`)) return errs;
          freed.add(id);
        }
      }
      const visit = (header: Buffer | undefined, depth: number): boolean => {
        if (depth > BUCKET_DEPTH_MAX) throw new BboltError(`buckets nested deeper than ${BUCKET_DEPTH_MAX}`);
        const root = header === undefined ? this.meta.root : u64(header, 0, 'bucket root');
        if (root !== 0) {
          if (!this.visitPages(root, reachable, freed, add)) return false;
        }
        const entries = header === undefined ? this.walk(this.meta.root, undefined, new Set()) : this.bucketEntries(header);
        for (const e of entries) if (e.bucket && !visit(Buffer.from(e.value), depth + 1)) return false;
        return true;
      };
      if (!visit(undefined, 0)) return errs;
      // Without a freelist in the file, bbolt takes every unreachable page as free.
      if (this.meta.freelist < 0) return errs;
      for (let i = 0; i < this.meta.pgid; i++) {
        if (!reachable.has(i) && !freed.has(i) && !add(`page ${i}: unreachable unfreed`)) return errs;
      }
    } catch (err) {
      if (!(err instanceof BboltError)) throw err;
      errs.push(err.message);
    }
    return errs;
  }

  /** Page ids on a freelist page. */
  private freelistIds(p: Page): number[] {
    if ((p.flags & FREELIST_PAGE) === 0) throw new BboltError(`invalid freelist page: ${p.id}, page type is ${pageType(p.flags)}`);
    let idx = 0;
    let count = p.count;
    if (count === 0xffff) {
      count = u64(p.buf, PAGE_HEADER_BYTES, 'freelist count');
      idx = 1;
    }
    if (PAGE_HEADER_BYTES + (idx + count) * 8 > p.buf.length) throw new BboltError(`page ${p.id}: freelist runs past the page`);
    const out: number[] = [];
    for (let i = idx; i < idx + count; i++) out.push(u64(p.buf, PAGE_HEADER_BYTES + i * 8, 'freed page id'));
    return out;
  }

  /** bbolt's checkBucket on one bucket tree's pages (not its nested buckets). */
  private visitPages(root: number, reachable: Set<number>, freed: Set<number>, add: (s: string) => boolean): boolean {
    const stack = [root];
    const inTree = new Set<number>();
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (inTree.has(id)) throw new BboltError(`page ${id}: multiple references`);
      inTree.add(id);
      const p = this.page(id);
      for (let i = 0; i <= p.overflow; i++) {
        if (reachable.has(id + i) && !add(`page ${id + i}: multiple references`)) return false;
        reachable.add(id + i);
      }
      if (freed.has(id)) {
        if (!add(`page ${id}: reachable freed`)) return false;
      } else if ((p.flags & (BRANCH_PAGE | LEAF_PAGE)) === 0) {
        if (!add(`page ${id}: invalid type: ${pageType(p.flags)}`)) return false;
        continue;
      }
      if (p.flags & BRANCH_PAGE) {
        checkPage(p);
        for (let i = 0; i < p.count; i++) stack.push(u64(p.buf, PAGE_HEADER_BYTES + i * ELEMENT_BYTES + 8, `page ${id}: child page id`));
      }
    }
    return true;
  }
}

function pageType(flags: number): string {
  if (flags & BRANCH_PAGE) return 'branch';
  if (flags & LEAF_PAGE) return 'leaf';
  if (flags & META_PAGE) return 'meta';
  if (flags & FREELIST_PAGE) return 'freelist';
  return `unknown<${flags.toString(16).padStart(2, '0')}>`;
}

/** A page met in a bucket tree must be a branch or a leaf whose elements fit it. */
function checkPage(p: Page): void {
  if ((p.flags & (BRANCH_PAGE | LEAF_PAGE)) === 0) throw new BboltError(`invalid page type: ${p.id}: ${p.flags.toString(16)}`);
  if (PAGE_HEADER_BYTES + p.count * ELEMENT_BYTES > p.buf.length)
    throw new BboltError(`page ${p.id}: ${p.count} elements run past the page`);
}
