// The other half of the power-loss simulation (tools/powerloss/shim.c, README.md): after the process that ran
// under the shim was SIGKILLed, undo every change its journal shows was not covered by a completed fsync —
// the state a power loss at that moment could leave. Strict mode loses everything unsynced; torn mode keeps a
// seeded random subset of the unsynced 4 KiB pages (and maybe the new size), as a disk that wrote some of them.
//
//   const r = rollback({ root: dataDir, journal: journalDir, torn: true, seed: 42 });
//   console.log(r.summary);
//
// Also a command: node dist/tools/powerloss/rollback.js <root> <journal-dir> [--torn --seed N]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rng } from '../lib/rng.js';

const PAGE = 4096;

interface DataRec {
  type: 'W' | 'Z' | 'S' | 'F' | 'R' | 'L';
  at: number;
  off: number;
  n: number;
  data?: Buffer;
  size?: number;
  upto?: number;
}

type NsRec =
  | { type: 'C' | 'M' | 'X'; at: number; pdev: bigint; pino: bigint; name: string }
  | { type: 'U'; at: number; pdev: bigint; pino: bigint; ino: bigint; name: string; stash: string }
  | {
      type: 'N';
      at: number;
      opdev: bigint;
      opino: bigint;
      npdev: bigint;
      npino: bigint;
      ino: bigint;
      oldName: string;
      newName: string;
      stash: string;
    };

interface Journal {
  data: Map<string, DataRec[]>;
  ns: NsRec[];
  dirSyncUpto: Map<string, number>;
  notes: Set<string>;
  bytes: number;
}

export interface RollbackOptions {
  root: string;
  journal: string;
  /** Keep a random subset of the unsynced pages (default: lose them all). */
  torn?: boolean;
  seed?: number;
}

export interface RollbackResult {
  /** One line: what was undone. */
  summary: string;
  /** Things the journal says it could not track (a shared writable mapping, a failed stash). */
  notes: string[];
  namespaceUndone: number;
  filesRolledBack: number;
  bytesRestored: number;
}

const key = (dev: bigint, ino: bigint): string => `${dev}:${ino}`;

export function readJournal(file: string): Journal {
  const buf = fs.existsSync(file) ? fs.readFileSync(file) : Buffer.alloc(0);
  const j: Journal = { data: new Map(), ns: [], dirSyncUpto: new Map(), notes: new Set(), bytes: buf.length };
  let at = 0;
  while (at + 8 <= buf.length) {
    const total = buf.readUInt32LE(at);
    if (total < 8 || at + total > buf.length) break; // a record cut short by the kill: its operation never ran
    const type = String.fromCharCode(buf[at + 4]!);
    let p = at + 8;
    const u64 = (): bigint => {
      const v = buf.readBigUInt64LE(p);
      p += 8;
      return v;
    };
    const num = (): number => Number(u64());
    const str = (): string => {
      const n = buf.readUInt16LE(p);
      const s = buf.subarray(p + 2, p + 2 + n).toString();
      p += 2 + n;
      return s;
    };
    const pushData = (dev: bigint, ino: bigint, r: DataRec): void => {
      const k = key(dev, ino);
      let list = j.data.get(k);
      if (!list) j.data.set(k, (list = []));
      list.push(r);
    };
    switch (type) {
      case 'W':
      case 'Z':
      case 'R': {
        const dev = u64();
        const ino = u64();
        const off = num();
        const n = num();
        pushData(dev, ino, { type, at, off, n, data: type === 'W' ? buf.subarray(p, p + n) : undefined });
        break;
      }
      case 'S': {
        const dev = u64();
        const ino = u64();
        pushData(dev, ino, { type, at, off: 0, n: 0, size: num() });
        break;
      }
      case 'F':
      case 'L': {
        const dev = u64();
        const ino = u64();
        pushData(dev, ino, { type, at, off: 0, n: 0, upto: num() });
        break;
      }
      case 'D': {
        const k = key(u64(), u64());
        const upto = num();
        j.dirSyncUpto.set(k, Math.max(j.dirSyncUpto.get(k) ?? 0, upto));
        break;
      }
      case 'C':
      case 'M':
      case 'X':
        j.ns.push({ type, at, pdev: u64(), pino: u64(), name: str() });
        break;
      case 'U':
        j.ns.push({ type, at, pdev: u64(), pino: u64(), ino: u64(), name: str(), stash: str() });
        break;
      case 'N':
        j.ns.push({
          type,
          at,
          opdev: u64(),
          opino: u64(),
          npdev: u64(),
          npino: u64(),
          ino: u64(),
          oldName: str(),
          newName: str(),
          stash: str(),
        });
        break;
      case 'T':
        j.notes.add(str());
        break;
      default:
        throw new Error(`powerloss journal ${file}: unknown record type ${JSON.stringify(type)} at offset ${at}`);
    }
    at += total;
  }
  return j;
}

/** Every file and directory under root (and the stash), by dev:ino. */
function walk(dirs: string[]): { dirs: Map<string, string>; files: Map<string, string> } {
  const out = { dirs: new Map<string, string>(), files: new Map<string, string>() };
  const visit = (p: string): void => {
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(p, { bigint: true });
    } catch {
      return;
    }
    const k = key(st.dev, st.ino);
    if (st.isDirectory()) {
      out.dirs.set(k, p);
      for (const name of fs.readdirSync(p)) visit(path.join(p, name));
    } else if (st.isFile() && !out.files.has(k)) {
      out.files.set(k, p);
    }
  };
  for (const d of dirs) visit(d);
  return out;
}

const exists = (p: string): boolean => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

/** Undoes what the journal in opts.journal shows was not durable, under opts.root; then clears the journal. */
export function rollback(opts: RollbackOptions): RollbackResult {
  const jfile = path.join(opts.journal, 'journal');
  const stashDir = path.join(opts.journal, 'stash');
  const j = readJournal(jfile);
  const random = rng(opts.seed ?? 1);
  const covered = (k: string, at: number): boolean => (j.dirSyncUpto.get(k) ?? -1) > at;

  // 1. Namespace operations no directory fsync covered, newest first.
  let namespaceUndone = 0;
  for (let i = j.ns.length - 1; i >= 0; i--) {
    const r = j.ns[i]!;
    if (r.type === 'N') {
      if (covered(key(r.opdev, r.opino), r.at) && covered(key(r.npdev, r.npino), r.at)) continue;
    } else if (covered(key(r.pdev, r.pino), r.at)) continue;
    const tree = walk([opts.root]).dirs;
    namespaceUndone++;
    if (r.type === 'N') {
      const np = tree.get(key(r.npdev, r.npino));
      const op = tree.get(key(r.opdev, r.opino));
      if (!np) continue;
      const target = path.join(np, r.newName);
      let st: fs.BigIntStats | undefined;
      try {
        st = fs.lstatSync(target, { bigint: true });
      } catch {
        st = undefined;
      }
      if (st && st.ino === r.ino) {
        if (op) fs.renameSync(target, path.join(op, r.oldName));
        else fs.rmSync(target, { recursive: true, force: true }); // its old directory is gone too
      }
      if (r.stash && !exists(target)) fs.linkSync(path.join(stashDir, r.stash), target);
      continue;
    }
    const parent = tree.get(key(r.pdev, r.pino));
    if (!parent) continue; // the directory itself did not survive
    const p = path.join(parent, r.name);
    if (r.type === 'C') {
      if (exists(p) && !fs.lstatSync(p).isDirectory()) fs.unlinkSync(p);
    } else if (r.type === 'M') {
      if (exists(p)) fs.rmSync(p, { recursive: true, force: true });
    } else if (r.type === 'X') {
      if (!exists(p)) fs.mkdirSync(p);
    } else if (r.type === 'U') {
      if (!exists(p) && r.stash) fs.linkSync(path.join(stashDir, r.stash), p);
    }
  }

  // 2. File contents and sizes no fsync/fdatasync of the file covered.
  const files = walk([opts.root]).files;
  let filesRolledBack = 0;
  let bytesRestored = 0;
  for (const [k, recs] of j.data) {
    const file = files.get(k);
    if (!file) continue;
    // A change is durable once a sync begun after it completed, unless a sync begun after it failed first
    // (then it is lost for good: fsyncgate). Syncs are journaled in the order they ended.
    const syncs = recs.filter((r) => r.type === 'F' || r.type === 'L');
    const fate = (r: DataRec): 'durable' | 'open' | 'lost' => {
      for (const s of syncs) if (s.upto! > r.at) return s.type === 'F' ? 'durable' : 'lost';
      return 'open';
    };
    const changes = recs.filter((r) => r.type !== 'F' && r.type !== 'L');
    const fates = changes.map(fate);
    const open = changes.filter((_, i) => fates[i] === 'open');
    if (!changes.some((r, i) => fates[i] !== 'durable' && (r.type === 'W' || r.type === 'Z' || r.type === 'S'))) continue;
    let oldSize = open.find((r) => r.type === 'S')?.size;
    // An O_DSYNC write made the size that holds it durable too.
    for (const r of open) if (r.type === 'R' && oldSize !== undefined) oldSize = Math.max(oldSize, r.off + r.n);
    const curSize = fs.statSync(file).size;
    // Torn mode: each unsynced page survives or not, once for the whole file.
    const kept = new Map<number, boolean>();
    const keep = (page: number): boolean => {
      if (!opts.torn) return false;
      let v = kept.get(page);
      if (v === undefined) kept.set(page, (v = random() < 0.5));
      return v;
    };
    const fd = fs.openSync(file, 'r+');
    try {
      const protectedRanges: Array<[number, number]> = [];
      const restore = (off: number, bytes: Buffer | undefined, n: number): void => {
        // Byte ranges [a, b) of this pre-image to write back: not protected by a later durable write, not kept.
        let a = off;
        const end = off + n;
        while (a < end) {
          const pageEnd = Math.min(end, (Math.floor(a / PAGE) + 1) * PAGE);
          if (!keep(Math.floor(a / PAGE))) {
            for (let b = a; b < pageEnd; ) {
              const prot = protectedRanges.find(([s, e]) => b >= s && b < e);
              if (prot) {
                b = Math.min(pageEnd, prot[1]);
                continue;
              }
              let stop = pageEnd;
              for (const [s] of protectedRanges) if (s > b && s < stop) stop = s;
              const chunk = bytes ? bytes.subarray(b - off, stop - off) : Buffer.alloc(stop - b);
              fs.writeSync(fd, chunk, 0, chunk.length, b);
              bytesRestored += chunk.length;
              b = stop;
            }
          }
          a = pageEnd;
        }
      };
      // Newest first: a durable change protects its range from the pre-images of older lost ones.
      for (let i = changes.length - 1; i >= 0; i--) {
        const r = changes[i]!;
        const durable = fates[i] === 'durable' || r.type === 'R';
        if (r.type !== 'W' && r.type !== 'Z' && r.type !== 'R') continue;
        if (durable) protectedRanges.push([r.off, r.off + r.n]);
        else restore(r.off, r.data, r.n);
      }
      if (oldSize !== undefined && oldSize !== curSize) {
        const keepSize = opts.torn === true && random() < 0.5;
        if (!keepSize) {
          fs.ftruncateSync(fd, oldSize);
        } else if (curSize > oldSize) {
          // The file grew and the new size survived: pages of the growth that did not survive read as zeros.
          for (let page = Math.floor(oldSize / PAGE); page * PAGE < curSize; page++) {
            if (keep(page)) continue;
            const a = Math.max(oldSize, page * PAGE);
            const b = Math.min(curSize, (page + 1) * PAGE);
            fs.writeSync(fd, Buffer.alloc(b - a), 0, b - a, a);
          }
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    filesRolledBack++;
  }

  fs.rmSync(jfile, { force: true });
  fs.rmSync(stashDir, { recursive: true, force: true });
  const notes = [...j.notes];
  const summary =
    `powerloss rollback${opts.torn ? ` (torn, seed ${opts.seed ?? 1})` : ''}: journal ${j.bytes} bytes, ` +
    `${namespaceUndone} directory entries undone, ${filesRolledBack} files rolled back, ${bytesRestored} bytes restored`;
  return { summary, notes, namespaceUndone, filesRolledBack, bytesRestored };
}

/** Builds the shim (once, or again when shim.c is newer) and returns the path of the shared library. */
export function buildShim(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('powerloss: no package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  const src = path.join(dir, 'tools', 'powerloss', 'shim.c');
  const out = path.join(dir, 'build', 'powerloss', 'libpowerloss.so');
  if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(src).mtimeMs) {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-o', tmp, src, '-ldl', '-lpthread'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    fs.renameSync(tmp, out);
  }
  return out;
}

/** The environment a process runs under the shim with, tracking `root` and journaling into `journal`. */
export function shimEnv(root: string, journal: string, extra: Record<string, string> = {}): Record<string, string> {
  fs.mkdirSync(journal, { recursive: true });
  return {
    LD_PRELOAD: buildShim(),
    POWERLOSS_ROOT: root,
    POWERLOSS_JOURNAL: journal,
    // libuv may submit file operations through io_uring, past every libc function the shim interposes.
    UV_USE_IO_URING: '0',
    // After a power loss the machine reboots: LMDB must not trust its unsynced meta page by boot id.
    POWERLOSS_NO_BOOT_ID: '1',
    ...extra,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const torn = args.includes('--torn');
  const si = args.indexOf('--seed');
  const seed = si >= 0 ? Number(args[si + 1]) : 1;
  const [root, journal] = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--seed');
  if (!root || !journal) {
    process.stderr.write('usage: rollback.js <root> <journal-dir> [--torn --seed N]\n');
    process.exit(2);
  }
  const r = rollback({ root, journal, torn, seed });
  process.stdout.write(r.summary + '\n');
  for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
}
