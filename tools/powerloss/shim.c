// Power-loss simulation, test-only: an LD_PRELOAD library that journals, before each change to a file or
// directory under $POWERLOSS_ROOT, what is needed to undo it (pre-images of written ranges, old sizes,
// namespace operations with a hard-linked copy of anything unlinked or replaced), and which of those changes
// a completed fsync/fdatasync made durable. After SIGKILL, tools/powerloss/rollback.ts undoes every change
// not covered, as a power loss would lose it. See tools/powerloss/README.md for what is and is not covered.
//
// Environment:
//   POWERLOSS_ROOT         directory whose files are tracked (absent: the library does nothing)
//   POWERLOSS_JOURNAL      directory for the journal and the stash (same file system as the root)
//   POWERLOSS_DROP_SYNC    fsync/fdatasync of a regular file whose path contains this string (ends with it,
//                          if the string ends in '$') succeed
//                          without syncing (emulates a missing fdatasync, to prove the tests catch it)
//   POWERLOSS_DROP_DIRSYNC the same for directories (a missing directory fsync)
//   POWERLOSS_FAIL         "op:substring:n:errno[,...]": the n-th call (1-based, counted per rule) of op
//                          (write, fdatasync) on a path containing substring fails with errno (EIO, ENOSPC)
//                          without doing anything; later calls succeed again (the disk recovered)
//   POWERLOSS_SYNC_DELAY_US every fsync/fdatasync of a tracked file waits this long before syncing, so a kill
//                          lands more often between a write and the sync that would cover it
//   POWERLOSS_NO_BOOT_ID   1: open("/proc/sys/kernel/random/boot_id") fails, as after a reboot LMDB must
//                          not trust a boot id equal to the one its unsynced meta page carries
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 65536
#define CHUNK 4096

enum {
  REC_WRITE = 'W',   // dev ino off n data[n]: bytes [off, off+n) before a change
  REC_ZERO = 'Z',    // dev ino off n: those bytes were all zero
  REC_SIZE = 'S',    // dev ino size: the size before a change of size
  REC_FSYNC = 'F',   // dev ino upto: a completed fsync/fdatasync begun at journal offset upto
  REC_RANGE = 'R',   // dev ino off n: an O_DSYNC/O_SYNC write, durable on completion
  REC_DSYNC = 'D',   // dev ino upto: a completed fsync of a directory
  REC_CREATE = 'C',  // pdev pino name: a file created
  REC_MKDIR = 'M',   // pdev pino name
  REC_UNLINK = 'U',  // pdev pino ino name stash
  REC_RMDIR = 'X',   // pdev pino name
  REC_RENAME = 'N',  // opdev opino npdev npino ino oldname newname stash(of the replaced file, or "")
  REC_NOTE = 'T',    // text: something the journal cannot undo (a shared writable mapping, ...)
  REC_LOST = 'L',    // dev ino upto: an injected fsync failure; what no sync covered by then is lost for good
                     // (the kernel may drop dirty pages it failed to write: a later fsync cannot bring them back)
};

struct fdinfo {
  uint8_t tracked;
  uint8_t isdir;
  uint8_t dsync;
  uint8_t append;
  uint64_t dev, ino;
  char* path;
};

static struct fdinfo fds[MAX_FDS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char root[PATH_MAX];
static size_t rootLen;
static char journalDir[PATH_MAX];
static int jfd = -1;
static int active;
static const char* dropSync;
static const char* dropDirSync;
static int noBootId;
static long syncDelayUs;
static uint64_t stashSeq;

struct failRule {
  char op[16];
  char sub[256];
  long n;
  int err;
  long seen;
};
static struct failRule fails[8];
static int nfails;

#define REAL(ret, name, ...)                     \
  static ret (*real_##name)(__VA_ARGS__);        \
  __attribute__((unused)) static void load_##name(void) { \
    if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name); \
  }

REAL(int, open, const char*, int, ...)
REAL(int, open64, const char*, int, ...)
REAL(int, openat, int, const char*, int, ...)
REAL(int, openat64, int, const char*, int, ...)
REAL(int, creat, const char*, mode_t)
REAL(int, close, int)
REAL(ssize_t, write, int, const void*, size_t)
REAL(ssize_t, pwrite, int, const void*, size_t, off_t)
REAL(ssize_t, pwrite64, int, const void*, size_t, off_t)
REAL(ssize_t, writev, int, const struct iovec*, int)
REAL(ssize_t, pwritev, int, const struct iovec*, int, off_t)
REAL(ssize_t, pwritev64, int, const struct iovec*, int, off_t)
REAL(ssize_t, pwritev2, int, const struct iovec*, int, off_t, int)
REAL(int, ftruncate, int, off_t)
REAL(int, ftruncate64, int, off_t)
REAL(int, truncate, const char*, off_t)
REAL(int, fallocate, int, int, off_t, off_t)
REAL(int, fallocate64, int, int, off_t, off_t)
REAL(int, posix_fallocate, int, off_t, off_t)
REAL(int, posix_fallocate64, int, off_t, off_t)
REAL(int, fsync, int)
REAL(int, fdatasync, int)
REAL(int, rename, const char*, const char*)
REAL(int, renameat, int, const char*, int, const char*)
REAL(int, renameat2, int, const char*, int, const char*, unsigned)
REAL(int, unlink, const char*)
REAL(int, unlinkat, int, const char*, int)
REAL(int, mkdir, const char*, mode_t)
REAL(int, mkdirat, int, const char*, mode_t)
REAL(int, rmdir, const char*)
typedef void* (*mmap_fn)(void*, size_t, int, int, int, off_t);
static mmap_fn real_mmap, real_mmap64;
static void load_mmap(void) {
  if (!real_mmap) real_mmap = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
}
static void load_mmap64(void) {
  if (!real_mmap64) real_mmap64 = (mmap_fn)dlsym(RTLD_NEXT, "mmap64");
}

static void die(const char* what) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "powerloss shim: %s: %s\n", what, strerror(errno));
  (void)!syscall(1 /* SYS_write */, 2, buf, (size_t)n);
  abort();
}

static int raw_open(const char* p, int flags, mode_t mode) {
  load_open();
  return real_open(p, flags, mode);
}

static void parse_fails(const char* spec) {
  const char* s = spec;
  while (s && *s && nfails < 8) {
    struct failRule* r = &fails[nfails];
    char errname[32] = {0};
    const char* end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    char item[512];
    if (len >= sizeof item) len = sizeof item - 1;
    memcpy(item, s, len);
    item[len] = 0;
    char* a = strtok(item, ":");
    char* b = strtok(NULL, ":");
    char* c = strtok(NULL, ":");
    char* d = strtok(NULL, ":");
    if (a && b && c && d) {
      snprintf(r->op, sizeof r->op, "%s", a);
      snprintf(r->sub, sizeof r->sub, "%s", b);
      r->n = atol(c);
      snprintf(errname, sizeof errname, "%s", d);
      r->err = strcmp(errname, "ENOSPC") == 0 ? ENOSPC : EIO;
      nfails++;
    }
    s = end ? end + 1 : NULL;
  }
}

__attribute__((constructor)) static void init(void) {
  const char* r = getenv("POWERLOSS_ROOT");
  const char* j = getenv("POWERLOSS_JOURNAL");
  const char* nb = getenv("POWERLOSS_NO_BOOT_ID");
  noBootId = nb && strcmp(nb, "1") == 0;
  if (!r || !j) return;
  if (!realpath(r, root)) return;  // no root yet: nothing to track
  rootLen = strlen(root);
  snprintf(journalDir, sizeof journalDir, "%s", j);
  dropSync = getenv("POWERLOSS_DROP_SYNC");
  dropDirSync = getenv("POWERLOSS_DROP_DIRSYNC");
  const char* sd = getenv("POWERLOSS_SYNC_DELAY_US");
  syncDelayUs = sd ? atol(sd) : 0;
  const char* f = getenv("POWERLOSS_FAIL");
  if (f) parse_fails(f);
  active = 1;
}

/** The journal, opened on first use (processes that never touch the root never create it). */
static int journal(void) {
  if (jfd >= 0) return jfd;
  char p[PATH_MAX + 32];
  snprintf(p, sizeof p, "%s/journal", journalDir);
  jfd = raw_open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (jfd < 0) die("open journal");
  snprintf(p, sizeof p, "%s/stash", journalDir);
  load_mkdir();
  if (real_mkdir(p, 0755) != 0 && errno != EEXIST) die("mkdir stash");
  return jfd;
}

/** The journal's length: records before it are covered by a sync that starts now. */
static uint64_t journal_pos(void) {
  struct stat st;
  if (fstat(journal(), &st) != 0) die("fstat journal");
  return (uint64_t)st.st_size;
}

struct rec {
  uint8_t buf[256 + 3 * PATH_MAX];
  size_t n;
};

static void rec_begin(struct rec* r, uint8_t type) {
  r->n = 8;
  r->buf[4] = type;
  r->buf[5] = r->buf[6] = r->buf[7] = 0;
}
static void rec_u64(struct rec* r, uint64_t v) {
  memcpy(r->buf + r->n, &v, 8);
  r->n += 8;
}
static void rec_str(struct rec* r, const char* s) {
  uint16_t len = (uint16_t)strlen(s);
  memcpy(r->buf + r->n, &len, 2);
  memcpy(r->buf + r->n + 2, s, len);
  r->n += 2 + len;
}

/** Appends one record (with `extra` bytes of data after it) in a single write, so a kill leaves it whole or
 *  leaves a short tail the rollback ignores. */
static void rec_emit(struct rec* r, const void* extra, size_t extraLen) {
  uint32_t total = (uint32_t)(r->n + extraLen);
  memcpy(r->buf, &total, 4);
  struct iovec iov[2] = {{r->buf, r->n}, {(void*)extra, extraLen}};
  load_writev();
  ssize_t w = real_writev(journal(), iov, extraLen ? 2 : 1);
  if (w != (ssize_t)total) die("write journal");
}

static void note(const char* text) {
  struct rec r;
  rec_begin(&r, REC_NOTE);
  rec_str(&r, text);
  rec_emit(&r, NULL, 0);
}

static int under_root(const char* abs) {
  return active && strncmp(abs, root, rootLen) == 0 && (abs[rootLen] == 0 || abs[rootLen] == '/');
}

/** Absolute, symlink-free form of (dirfd, path) whose last component may not exist yet. */
static int resolve(int dirfd, const char* path, char* out) {
  char joined[PATH_MAX * 2];
  if (path[0] == '/') {
    snprintf(joined, sizeof joined, "%s", path);
  } else {
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
      if (!getcwd(base, sizeof base)) return -1;
    } else {
      char link[64];
      snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
      ssize_t n = readlink(link, base, sizeof base - 1);
      if (n < 0) return -1;
      base[n] = 0;
    }
    snprintf(joined, sizeof joined, "%s/%s", base, path);
  }
  // Strip trailing slashes, split off the last component, resolve the parent.
  size_t len = strlen(joined);
  while (len > 1 && joined[len - 1] == '/') joined[--len] = 0;
  char* slash = strrchr(joined, '/');
  const char* name = slash + 1;
  char parent[PATH_MAX];
  if (slash == joined) {
    strcpy(parent, "/");
  } else {
    *slash = 0;
    if (!realpath(joined, parent)) return -1;
  }
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || name[0] == 0) {
    char full[PATH_MAX * 2];
    snprintf(full, sizeof full, "%s/%s", parent, name);
    if (!realpath(full, out)) return -1;
    return 0;
  }
  if (strcmp(parent, "/") == 0) snprintf(out, PATH_MAX, "/%s", name);
  else snprintf(out, PATH_MAX, "%s/%s", parent, name);
  return 0;
}

static void split(const char* abs, char* parent, const char** name) {
  const char* slash = strrchr(abs, '/');
  size_t n = (size_t)(slash - abs);
  if (n == 0) n = 1;
  memcpy(parent, abs, n);
  parent[n] = 0;
  *name = slash + 1;
}

/** pattern occurs in path; a pattern ending in '$' must end the path. */
static int path_matches(const char* path, const char* pattern) {
  size_t n = strlen(pattern);
  if (n > 0 && pattern[n - 1] == '$') {
    size_t len = strlen(path);
    return len >= n - 1 && memcmp(path + len - (n - 1), pattern, n - 1) == 0;
  }
  return strstr(path, pattern) != NULL;
}

static int fail_now(const char* op, const char* path) {
  for (int i = 0; i < nfails; i++) {
    struct failRule* r = &fails[i];
    if (strcmp(r->op, op) != 0 || !path || !path_matches(path, r->sub)) continue;
    if (++r->seen == r->n) {
      char msg[PATH_MAX + 64];
      snprintf(msg, sizeof msg, "injected %s on %s #%ld", strerror(r->err), op, r->n);
      note(msg);
      return r->err;
    }
  }
  return 0;
}

// ---- data: pre-images -------------------------------------------------------------------------------------

static int reader_for(int fd) {
  char p[64];
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
  int r = raw_open(p, O_RDONLY | O_CLOEXEC, 0);
  if (r < 0) die("reopen for pre-image");
  return r;
}

/** Journals the bytes [off, off+n) of fd's file (what lies below its current size), zero runs compactly. */
static void preimage(int fd, struct fdinfo* fi, uint64_t off, uint64_t n) {
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat");
  uint64_t size = (uint64_t)st.st_size;
  if (off >= size || n == 0) return;
  if (off + n > size) n = size - off;
  int rfd = reader_for(fd);
  static __thread uint8_t* buf;
  if (!buf) buf = malloc(1 << 20);
  uint64_t at = off, end = off + n;
  while (at < end) {
    size_t want = end - at > (1 << 20) ? (1 << 20) : (size_t)(end - at);
    ssize_t got = pread(rfd, buf, want, (off_t)at);
    if (got <= 0) die("pread pre-image");
    // Split into zero and non-zero runs of CHUNK-aligned pieces.
    size_t i = 0;
    while (i < (size_t)got) {
      size_t piece = CHUNK - (size_t)((at + i) % CHUNK);
      if (piece > (size_t)got - i) piece = (size_t)got - i;
      int zero = 1;
      for (size_t k = 0; k < piece; k++)
        if (buf[i + k]) {
          zero = 0;
          break;
        }
      size_t j = i + piece;
      while (j < (size_t)got) {
        size_t p2 = CHUNK < (size_t)got - j ? CHUNK : (size_t)got - j;
        int z2 = 1;
        for (size_t k = 0; k < p2; k++)
          if (buf[j + k]) {
            z2 = 0;
            break;
          }
        if (z2 != zero) break;
        j += p2;
      }
      struct rec r;
      rec_begin(&r, zero ? REC_ZERO : REC_WRITE);
      rec_u64(&r, fi->dev);
      rec_u64(&r, fi->ino);
      rec_u64(&r, at + i);
      rec_u64(&r, j - i);
      rec_emit(&r, zero ? NULL : buf + i, zero ? 0 : j - i);
      i = j;
    }
    at += (uint64_t)got;
  }
  load_close();
  real_close(rfd);
}

static void size_rec(int fd, struct fdinfo* fi) {
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat");
  struct rec r;
  rec_begin(&r, REC_SIZE);
  rec_u64(&r, fi->dev);
  rec_u64(&r, fi->ino);
  rec_u64(&r, (uint64_t)st.st_size);
  rec_emit(&r, NULL, 0);
}

static struct fdinfo* tracked(int fd) {
  if (!active || fd < 0 || fd >= MAX_FDS || !fds[fd].tracked) return NULL;
  return &fds[fd];
}

/** Before a write of n bytes at off (off < 0: at the current position or the end for O_APPEND). */
static void before_write(int fd, struct fdinfo* fi, int64_t off, uint64_t n) {
  if (off < 0) {
    if (fi->append) {
      struct stat st;
      fstat(fd, &st);
      off = st.st_size;
    } else {
      off = lseek(fd, 0, SEEK_CUR);
    }
  }
  size_rec(fd, fi);
  preimage(fd, fi, (uint64_t)off, n);
}

static void after_write(struct fdinfo* fi, int64_t off, ssize_t w) {
  if (!fi->dsync || w <= 0) return;
  struct rec r;
  rec_begin(&r, REC_RANGE);
  rec_u64(&r, fi->dev);
  rec_u64(&r, fi->ino);
  rec_u64(&r, (uint64_t)off);
  rec_u64(&r, (uint64_t)w);
  rec_emit(&r, NULL, 0);
}

static uint64_t iov_len(const struct iovec* iov, int n) {
  uint64_t t = 0;
  for (int i = 0; i < n; i++) t += iov[i].iov_len;
  return t;
}

// ---- open / close -------------------------------------------------------------------------------------------

static void stat_parent(const char* abs, uint64_t* dev, uint64_t* ino) {
  char parent[PATH_MAX];
  const char* name;
  split(abs, parent, &name);
  struct stat st;
  if (stat(parent, &st) != 0) die("stat parent");
  *dev = (uint64_t)st.st_dev;
  *ino = (uint64_t)st.st_ino;
}

static void ns_rec(uint8_t type, const char* abs) {
  uint64_t pdev, pino;
  stat_parent(abs, &pdev, &pino);
  char parent[PATH_MAX];
  const char* name;
  split(abs, parent, &name);
  struct rec r;
  rec_begin(&r, type);
  rec_u64(&r, pdev);
  rec_u64(&r, pino);
  rec_str(&r, name);
  rec_emit(&r, NULL, 0);
}

static int do_open(int dirfd, const char* path, int flags, mode_t mode, int at) {
  char abs[PATH_MAX];
  int track = active && resolve(dirfd, path, abs) == 0 && under_root(abs);
  if (!track) {
    if (at) {
      load_openat();
      return real_openat(dirfd, path, flags, mode);
    }
    return raw_open(path, flags, mode);
  }
  pthread_mutex_lock(&mu);
  struct stat st;
  int existed = stat(abs, &st) == 0;
  if (flags & O_CREAT && !existed) ns_rec(REC_CREATE, abs);
  if (existed && (flags & O_TRUNC) && S_ISREG(st.st_mode) && (flags & O_ACCMODE) != O_RDONLY) {
    int rfd = raw_open(abs, O_RDONLY | O_CLOEXEC, 0);
    if (rfd >= 0) {
      struct fdinfo tmp = {.dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino};
      size_rec(rfd, &tmp);
      preimage(rfd, &tmp, 0, (uint64_t)st.st_size);
      load_close();
      real_close(rfd);
    }
  }
  int fd = raw_open(abs, flags, mode);
  if (fd >= 0 && fd < MAX_FDS && fstat(fd, &st) == 0) {
    struct fdinfo* fi = &fds[fd];
    free(fi->path);
    fi->tracked = 1;
    fi->isdir = S_ISDIR(st.st_mode);
    fi->dsync = (flags & (O_DSYNC | O_SYNC)) != 0;
    fi->append = (flags & O_APPEND) != 0;
    fi->dev = (uint64_t)st.st_dev;
    fi->ino = (uint64_t)st.st_ino;
    fi->path = strdup(abs);
    if (fi->dsync) note("opened with O_DSYNC/O_SYNC: its writes are durable on completion");
  }
  pthread_mutex_unlock(&mu);
  return fd;
}

static mode_t va_mode(int flags, va_list ap) {
  return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  if (noBootId && strcmp(path, "/proc/sys/kernel/random/boot_id") == 0) {
    errno = ENOENT;
    return -1;
  }
  return do_open(AT_FDCWD, path, flags, m, 0);
}
int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  return open(path, flags, m);
}
int __open_2(const char* path, int flags) { return open(path, flags, 0); }
int __open64_2(const char* path, int flags) { return open(path, flags, 0); }
int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  return do_open(dirfd, path, flags, m, 1);
}
int openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  return do_open(dirfd, path, flags, m, 1);
}
int __openat_2(int dirfd, const char* path, int flags) { return do_open(dirfd, path, flags, 0, 1); }
int creat(const char* path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char* path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

int close(int fd) {
  load_close();
  if (fd >= 0 && fd < MAX_FDS && fds[fd].tracked) {
    pthread_mutex_lock(&mu);
    fds[fd].tracked = 0;
    free(fds[fd].path);
    fds[fd].path = NULL;
    int r = real_close(fd);
    pthread_mutex_unlock(&mu);
    return r;
  }
  return real_close(fd);
}

// ---- writes -------------------------------------------------------------------------------------------------

#define WRITE_BODY(OFF, N, CALL)                           \
  struct fdinfo* fi = tracked(fd);                         \
  if (!fi) return CALL;                                    \
  pthread_mutex_lock(&mu);                                 \
  int inj = fail_now("write", fi->path);                   \
  if (inj) {                                               \
    pthread_mutex_unlock(&mu);                             \
    errno = inj;                                           \
    return -1;                                             \
  }                                                        \
  int64_t off_ = (OFF);                                    \
  if (off_ < 0) off_ = fi->append ? -1 : lseek(fd, 0, SEEK_CUR); \
  before_write(fd, fi, off_, (N));                         \
  ssize_t w = CALL;                                        \
  int e = errno;                                           \
  after_write(fi, off_, w);                                \
  pthread_mutex_unlock(&mu);                               \
  errno = e;                                               \
  return w;

ssize_t write(int fd, const void* p, size_t n) {
  load_write();
  WRITE_BODY(-1, n, real_write(fd, p, n))
}
ssize_t pwrite(int fd, const void* p, size_t n, off_t off) {
  load_pwrite();
  WRITE_BODY(off, n, real_pwrite(fd, p, n, off))
}
ssize_t pwrite64(int fd, const void* p, size_t n, off_t off) {
  load_pwrite64();
  WRITE_BODY(off, n, real_pwrite64(fd, p, n, off))
}
ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  load_writev();
  WRITE_BODY(-1, iov_len(iov, cnt), real_writev(fd, iov, cnt))
}
ssize_t pwritev(int fd, const struct iovec* iov, int cnt, off_t off) {
  load_pwritev();
  WRITE_BODY(off, iov_len(iov, cnt), real_pwritev(fd, iov, cnt, off))
}
ssize_t pwritev64(int fd, const struct iovec* iov, int cnt, off_t off) {
  load_pwritev64();
  WRITE_BODY(off, iov_len(iov, cnt), real_pwritev64(fd, iov, cnt, off))
}
ssize_t pwritev2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  load_pwritev2();
  WRITE_BODY(off, iov_len(iov, cnt), real_pwritev2(fd, iov, cnt, off, flags))
}

/** Size changes: the old size, and the bytes a shrink cuts off. */
static void before_resize(int fd, struct fdinfo* fi, uint64_t newSize) {
  size_rec(fd, fi);
  struct stat st;
  if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > newSize) preimage(fd, fi, newSize, (uint64_t)st.st_size - newSize);
}

int ftruncate(int fd, off_t len) {
  load_ftruncate();
  struct fdinfo* fi = tracked(fd);
  if (!fi) return real_ftruncate(fd, len);
  pthread_mutex_lock(&mu);
  before_resize(fd, fi, (uint64_t)len);
  int r = real_ftruncate(fd, len);
  int e = errno;
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int ftruncate64(int fd, off_t len) { return ftruncate(fd, len); }
int truncate(const char* path, off_t len) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = ftruncate(fd, len);
  int e = errno;
  close(fd);
  errno = e;
  return r;
}
int truncate64(const char* path, off_t len) { return truncate(path, len); }

int fallocate(int fd, int mode, off_t off, off_t len) {
  load_fallocate();
  struct fdinfo* fi = tracked(fd);
  if (!fi) return real_fallocate(fd, mode, off, len);
  pthread_mutex_lock(&mu);
  size_rec(fd, fi);
  if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
    struct stat st;
    fstat(fd, &st);
    preimage(fd, fi, (uint64_t)off, (uint64_t)st.st_size);  // everything from off may move or vanish
  }
  int r = real_fallocate(fd, mode, off, len);
  int e = errno;
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int fallocate64(int fd, int mode, off_t off, off_t len) { return fallocate(fd, mode, off, len); }
int posix_fallocate(int fd, off_t off, off_t len) {
  load_posix_fallocate();
  struct fdinfo* fi = tracked(fd);
  if (!fi) return real_posix_fallocate(fd, off, len);
  pthread_mutex_lock(&mu);
  size_rec(fd, fi);
  int r = real_posix_fallocate(fd, off, len);
  pthread_mutex_unlock(&mu);
  return r;
}
int posix_fallocate64(int fd, off_t off, off_t len) { return posix_fallocate(fd, off, len); }

// ---- syncs --------------------------------------------------------------------------------------------------

static int do_sync(int fd, int data) {
  load_fsync();
  load_fdatasync();
  struct fdinfo* fi = tracked(fd);
  if (!fi) return data ? real_fdatasync(fd) : real_fsync(fd);
  const char* drop = fi->isdir ? dropDirSync : dropSync;
  if (drop && *drop && fi->path && path_matches(fi->path, drop)) return 0;  // the emulated missing sync
  pthread_mutex_lock(&mu);
  int inj = fi->isdir ? 0 : fail_now("fdatasync", fi->path);
  uint64_t upto = journal_pos();
  uint64_t dev = fi->dev, ino = fi->ino, isdir = fi->isdir;
  pthread_mutex_unlock(&mu);
  if (inj) {
    pthread_mutex_lock(&mu);
    struct rec rl;
    rec_begin(&rl, REC_LOST);
    rec_u64(&rl, dev);
    rec_u64(&rl, ino);
    rec_u64(&rl, upto);
    rec_emit(&rl, NULL, 0);
    pthread_mutex_unlock(&mu);
    errno = inj;
    return -1;
  }
  if (syncDelayUs > 0) usleep((useconds_t)syncDelayUs);
  int r = data ? real_fdatasync(fd) : real_fsync(fd);
  if (r != 0) return r;
  int e = errno;
  pthread_mutex_lock(&mu);
  struct rec rc;
  rec_begin(&rc, isdir ? REC_DSYNC : REC_FSYNC);
  rec_u64(&rc, dev);
  rec_u64(&rc, ino);
  rec_u64(&rc, upto);
  rec_emit(&rc, NULL, 0);
  pthread_mutex_unlock(&mu);
  errno = e;
  return 0;
}
int fsync(int fd) { return do_sync(fd, 0); }
int fdatasync(int fd) { return do_sync(fd, 1); }

// ---- namespace ----------------------------------------------------------------------------------------------

/** Hard-links abs into the stash so its inode (and content) can come back; returns the stash name or "". */
static void stash(const char* abs, char* out, size_t outLen) {
  out[0] = 0;
  struct stat st;
  if (lstat(abs, &st) != 0 || !S_ISREG(st.st_mode)) return;
  char p[PATH_MAX + 64];
  snprintf(out, outLen, "%llu-%llu", (unsigned long long)++stashSeq, (unsigned long long)st.st_ino);
  snprintf(p, sizeof p, "%s/stash/%s", journalDir, out);
  journal();
  if (link(abs, p) != 0) {
    note("could not stash a file before unlink/rename over it (different file system?)");
    out[0] = 0;
  }
}

static int do_unlink(int dirfd, const char* path, int flags) {
  load_unlinkat();
  char abs[PATH_MAX];
  if (!(active && resolve(dirfd, path, abs) == 0 && under_root(abs))) return real_unlinkat(dirfd, path, flags);
  pthread_mutex_lock(&mu);
  struct stat st;
  int isdir = lstat(abs, &st) == 0 && S_ISDIR(st.st_mode);
  if (isdir || (flags & AT_REMOVEDIR)) {
    ns_rec(REC_RMDIR, abs);
  } else if (lstat(abs, &st) == 0) {
    char sname[128];
    stash(abs, sname, sizeof sname);
    uint64_t pdev, pino;
    stat_parent(abs, &pdev, &pino);
    char parent[PATH_MAX];
    const char* name;
    split(abs, parent, &name);
    struct rec r;
    rec_begin(&r, REC_UNLINK);
    rec_u64(&r, pdev);
    rec_u64(&r, pino);
    rec_u64(&r, (uint64_t)st.st_ino);
    rec_str(&r, name);
    rec_str(&r, sname);
    rec_emit(&r, NULL, 0);
  }
  int r = real_unlinkat(AT_FDCWD, abs, flags);
  int e = errno;
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int unlink(const char* path) { return do_unlink(AT_FDCWD, path, 0); }
int unlinkat(int dirfd, const char* path, int flags) { return do_unlink(dirfd, path, flags); }
int rmdir(const char* path) { return do_unlink(AT_FDCWD, path, AT_REMOVEDIR); }

static int do_mkdir(int dirfd, const char* path, mode_t mode) {
  load_mkdirat();
  char abs[PATH_MAX];
  if (!(active && resolve(dirfd, path, abs) == 0 && under_root(abs))) return real_mkdirat(dirfd, path, mode);
  pthread_mutex_lock(&mu);
  struct stat st;
  if (lstat(abs, &st) != 0) ns_rec(REC_MKDIR, abs);
  int r = real_mkdirat(AT_FDCWD, abs, mode);
  int e = errno;
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int mkdir(const char* path, mode_t mode) { return do_mkdir(AT_FDCWD, path, mode); }
int mkdirat(int dirfd, const char* path, mode_t mode) { return do_mkdir(dirfd, path, mode); }

static int do_rename(int olddir, const char* oldp, int newdir, const char* newp, unsigned flags) {
  load_renameat2();
  load_renameat();
  char a[PATH_MAX], b[PATH_MAX];
  int ok = active && resolve(olddir, oldp, a) == 0 && resolve(newdir, newp, b) == 0;
  if (!ok || !(under_root(a) || under_root(b))) {
    return flags ? real_renameat2(olddir, oldp, newdir, newp, flags) : real_renameat(olddir, oldp, newdir, newp);
  }
  pthread_mutex_lock(&mu);
  struct stat st;
  if (lstat(a, &st) == 0) {
    char sname[128] = "";
    struct stat tst;
    if (lstat(b, &tst) == 0 && tst.st_ino != st.st_ino) stash(b, sname, sizeof sname);
    uint64_t opdev, opino, npdev, npino;
    stat_parent(a, &opdev, &opino);
    stat_parent(b, &npdev, &npino);
    char pa[PATH_MAX], pb[PATH_MAX];
    const char *na, *nb;
    split(a, pa, &na);
    split(b, pb, &nb);
    struct rec r;
    rec_begin(&r, REC_RENAME);
    rec_u64(&r, opdev);
    rec_u64(&r, opino);
    rec_u64(&r, npdev);
    rec_u64(&r, npino);
    rec_u64(&r, (uint64_t)st.st_ino);
    rec_str(&r, na);
    rec_str(&r, nb);
    rec_str(&r, sname);
    rec_emit(&r, NULL, 0);
  }
  int r = flags ? real_renameat2(AT_FDCWD, a, AT_FDCWD, b, flags) : real_renameat(AT_FDCWD, a, AT_FDCWD, b);
  int e = errno;
  pthread_mutex_unlock(&mu);
  errno = e;
  return r;
}
int rename(const char* a, const char* b) { return do_rename(AT_FDCWD, a, AT_FDCWD, b, 0); }
int renameat(int od, const char* a, int nd, const char* b) { return do_rename(od, a, nd, b, 0); }
int renameat2(int od, const char* a, int nd, const char* b, unsigned flags) { return do_rename(od, a, nd, b, flags); }

// ---- mappings -----------------------------------------------------------------------------------------------

static void check_map(int prot, int flags, int fd) {
  struct fdinfo* fi = tracked(fd);
  if (!fi || !(prot & PROT_WRITE) || !(flags & MAP_SHARED)) return;
  char msg[PATH_MAX + 96];
  snprintf(msg, sizeof msg, "shared writable mapping of %s: writes through it are not journaled", fi->path);
  pthread_mutex_lock(&mu);
  note(msg);
  pthread_mutex_unlock(&mu);
}
void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  load_mmap();
  check_map(prot, flags, fd);
  return real_mmap(addr, len, prot, flags, fd, off);
}
void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  load_mmap64();
  check_map(prot, flags, fd);
  return real_mmap64(addr, len, prot, flags, fd, off);
}
