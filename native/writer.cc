// The writer thread: group commit over a queue of append blocks, segment preallocation and rotation.
#include "writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>

#include "record.h"

namespace tetcd {
namespace {

/** A pause hint for spin loops (lets the sibling hyperthread run; no-op where there is none). */
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Appends are copied into blocks of this size (or one block per append when an append is larger), so the
// thread can take whole appends at a time without moving bytes around.
constexpr size_t kBlockBytes = 256 * 1024;
constexpr size_t kFreeBlocksMax = 8;
constexpr int kIovecsMax = 64;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int Preallocate(int fd, uint64_t bytes) {
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  if (static_cast<uint64_t>(st.st_size) >= bytes) return 0;
  int r = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  // Filesystems without fallocate still work, just without the head start; errors like ENOSPC are real.
  if (r == EOPNOTSUPP || r == ENOSYS || r == EINVAL) return 0;
  return r;
}

bool PwriteAll(int fd, const uint8_t* p, size_t n, uint64_t offset) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return true;
}

}  // namespace

std::string SegmentName(uint64_t seq, uint64_t firstIndex) {
  char name[64];
  std::snprintf(name, sizeof name, "%016llx-%016llx.wal", static_cast<unsigned long long>(seq),
                static_cast<unsigned long long>(firstIndex));
  return name;
}

int WriteInitialSegment(const std::string& path, uint8_t* records, size_t n, uint64_t segmentBytes, bool noFsync,
                        std::string* what) {
  const char* why = nullptr;
  if (ValidateFrames(records, n, true, &why) < 0) {
    *what = std::string("initial records: ") + why;
    return EINVAL;
  }
  uint32_t chain = 0;
  FillFrames(records, n, &chain, [](uint8_t, const uint8_t*, uint32_t) {});
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    *what = "open " + path;
    return errno;
  }
  int err = Preallocate(fd, segmentBytes);
  if (err != 0) *what = "preallocate " + path;
  if (err == 0 && !PwriteAll(fd, records, n, 0)) {
    err = errno;
    *what = "write " + path;
  }
  if (err == 0 && !noFsync && fdatasync(fd) != 0) {
    err = errno;
    *what = "fdatasync " + path;
  }
  close(fd);
  return err;
}

Writer::Writer(WriterOptions opts)
    : opts_(std::move(opts)),
      segmentSeq_(opts_.segmentSeq),
      offset_(opts_.offset),
      chain_(opts_.chain),
      lastIndex_(opts_.lastIndex),
      hardState_(opts_.hardState) {
  assert(opts_.control != nullptr);
  assert((reinterpret_cast<uintptr_t>(opts_.control) & 7) == 0);
  assert(opts_.segmentBytes > 0 && opts_.batchBytesMax > 0);
}

Writer::~Writer() {
  if (thread_.joinable()) {
    RequestClose();
    Join();
  }
  if (fd_ >= 0) close(fd_);
  if (dirFd_ >= 0) close(dirFd_);
}

int Writer::Start(std::string* what) {
  fd_ = open(opts_.segmentPath.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) {
    *what = "open " + opts_.segmentPath;
    return errno;
  }
  dirFd_ = open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd_ < 0) {
    *what = "open " + opts_.dir;
    return errno;
  }
  int err = Preallocate(fd_, opts_.segmentBytes);
  if (err != 0) {
    *what = "preallocate " + opts_.segmentPath;
    return err;
  }
  if (!opts_.noFsync && fdatasync(fd_) != 0) {
    *what = "fdatasync " + opts_.segmentPath;
    return errno;
  }
  StoreI32(ctrl::kState, kRunning);
  StoreI64(ctrl::kSegmentSeq, static_cast<int64_t>(segmentSeq_));
  thread_ = std::thread(&Writer::Run, this);
  return 0;
}

uint64_t Writer::Append(const uint8_t* p, size_t n, uint64_t lastIndex, std::string* why) {
  const char* bad = nullptr;
  if (n == 0 || ValidateFrames(p, n, false, &bad) < 0) {
    *why = bad != nullptr ? bad : "empty append";
    return 0;
  }
  bool wake;
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopped_ || closing_) {
      *why = stopped_ ? "writer failed" : "closing";
      return 0;
    }
    if (pendingBytes_ + n > opts_.queueBytesMax) {
      *why = "queue full";
      return 0;
    }
    Block* tail = pending_.empty() ? nullptr : &pending_.back();
    // A block never grows past batchBytesMax (unless one append alone is larger), so the thread can honour
    // the batch limit by taking whole blocks.
    const size_t blockLimit = std::min<size_t>(tail != nullptr ? tail->buf.size() : 0, opts_.batchBytesMax);
    if (tail == nullptr || tail->used + n > blockLimit) {
      Block b;
      if (!free_.empty() && free_.back().buf.size() >= n) {
        b = std::move(free_.back());
        free_.pop_back();
      } else {
        b.buf.resize(n > kBlockBytes ? n : kBlockBytes);
      }
      b.used = 0;
      b.appends = 0;
      pending_.push_back(std::move(b));
      tail = &pending_.back();
    }
    std::memcpy(tail->buf.data() + tail->used, p, n);
    tail->used += n;
    tail->lastSeq = seq = ++appendSeq_;
    tail->lastIndex = lastIndex;
    tail->appends++;
    wake = pendingBytes_ == 0;  // the thread only sleeps on an empty queue, or gathers and checks at its deadline
    pendingBytes_ += n;
    hasPending_.store(true, std::memory_order_release);
    if (!wake && pendingBytes_ >= opts_.batchBytesMax && pendingBytes_ - n < opts_.batchBytesMax) wake = true;
  }
  if (wake) cv_.notify_one();
  return seq;
}

uint64_t Writer::QueuedBytes() {
  std::lock_guard<std::mutex> lk(mu_);
  return pendingBytes_;
}

std::string Writer::FailWhat() {
  std::lock_guard<std::mutex> lk(mu_);
  return failWhat_;
}

void Writer::RequestClose() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    closing_ = true;
  }
  cv_.notify_one();
}

void Writer::Join() {
  if (thread_.joinable()) thread_.join();
}

void Writer::Run() {
  std::vector<Block> batch;
  bool ok = true;
  for (;;) {
    // A lone writer's next append usually comes a few hundred microseconds after the last sync: polling for
    // it a while saves the sleep/wake-up round trip, which on a VM costs tens of microseconds per put. Only
    // an idle queue spins; under load there is always a batch waiting.
    if (opts_.idleSpinUs > 0 && !hasPending_.load(std::memory_order_acquire)) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(opts_.idleSpinUs);
      while (!hasPending_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until) CpuRelax();
    }
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return !pending_.empty() || closing_; });
      if (pending_.empty()) break;  // closing with nothing left
      if (opts_.batchDelayUsMax > 0 && !closing_ && pendingBytes_ < opts_.batchBytesMax) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(opts_.batchDelayUsMax);
        cv_.wait_until(lk, deadline, [this] { return pendingBytes_ >= opts_.batchBytesMax || closing_; });
      }
      uint64_t taken = 0;
      while (!pending_.empty() && (batch.empty() || taken + pending_.front().used <= opts_.batchBytesMax)) {
        taken += pending_.front().used;
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      pendingBytes_ -= taken;
      if (pending_.empty()) hasPending_.store(false, std::memory_order_release);
    }
    ok = WriteBatch(batch);
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (Block& b : batch) {
        if (free_.size() < kFreeBlocksMax && b.buf.size() == kBlockBytes) free_.push_back(std::move(b));
      }
    }
    batch.clear();
    if (!ok) return;  // Fail() published the error; appends are refused from now on
  }
  if (!opts_.noFsync && fdatasync(fd_) != 0) {
    Fail(errno, "fdatasync on close");
    return;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopped_ = true;
  }
  StoreI32(ctrl::kState, kClosed);
  Publish();
}

bool Writer::WriteBatch(std::vector<Block>& batch) {
  assert(!batch.empty());
  uint64_t total = 0;
  int64_t appends = 0;
  for (const Block& b : batch) {
    total += b.used;
    appends += static_cast<int64_t>(b.appends);
  }
  // Rotate before the write so a batch never straddles two files; a batch larger than a segment still goes
  // whole into a fresh one (which then grows past segmentBytes), as etcd lets an oversized entry do.
  if (offset_ + total > opts_.segmentBytes && offset_ > headerEnd_) {
    if (!Cut()) return false;
  }
  int64_t records = 0;
  for (Block& b : batch) {
    FillFrames(b.buf.data(), b.used, &chain_, [&](uint8_t type, const uint8_t* payload, uint32_t len) {
      records++;
      if (type == kTypeHardState) hardState_.assign(payload, payload + len);
    });
  }
  ::iovec iov[kIovecsMax];
  size_t i = 0;
  uint64_t at = offset_;
  while (i < batch.size()) {
    int count = 0;
    size_t bytes = 0;
    while (i < batch.size() && count < kIovecsMax) {
      iov[count].iov_base = batch[i].buf.data();
      iov[count].iov_len = batch[i].used;
      bytes += batch[i].used;
      count++;
      i++;
    }
    if (!WriteAll(iov, count, at, bytes)) {
      Fail(errno, "write");
      return false;
    }
    at += bytes;
  }
  if (!Sync(fd_)) return false;
  offset_ += total;
  lastIndex_ = batch.back().lastIndex;
  durableSeq_ = batch.back().lastSeq;
  appendsDone_ += appends;
  records_ += records;
  bytes_ += static_cast<int64_t>(total);
  if (appends > batchAppendsMax_) batchAppendsMax_ = appends;
  Publish();
  return true;
}

bool Writer::WriteAll(const ::iovec* iovIn, int iovCount, uint64_t offset, size_t total) {
  ::iovec iov[kIovecsMax];
  std::memcpy(iov, iovIn, sizeof(::iovec) * static_cast<size_t>(iovCount));
  int first = 0;
  while (total > 0) {
    ssize_t w = pwritev(fd_, iov + first, iovCount - first, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (w == 0) {
      errno = EIO;
      return false;
    }
    size_t done = static_cast<size_t>(w);
    total -= done;
    offset += done;
    while (done > 0 && first < iovCount) {
      if (done >= iov[first].iov_len) {
        done -= iov[first].iov_len;
        first++;
      } else {
        iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + done;
        iov[first].iov_len -= done;
        done = 0;
      }
    }
  }
  return true;
}

bool Writer::Sync(int fd) {
  if (opts_.noFsync) return true;
  const int64_t startUs = NowUs();
  if (fdatasync(fd) != 0) {
    Fail(errno, "fdatasync");
    return false;
  }
  if (opts_.unsafeTestingFsyncSleepUs > 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(opts_.unsafeTestingFsyncSleepUs));
  }
  const int64_t us = NowUs() - startUs;
  fsyncs_++;
  fsyncUsTotal_ += us;
  StoreI64(ctrl::kLastFsyncUs, us);
  return true;
}

bool Writer::Cut() {
  if (ftruncate(fd_, static_cast<off_t>(offset_)) != 0) {
    Fail(errno, "truncate segment");
    return false;
  }
  if (!Sync(fd_)) return false;
  close(fd_);
  fd_ = -1;
  const uint64_t seq = segmentSeq_ + 1;
  const std::string name = SegmentName(seq, lastIndex_ + 1);
  const std::string path = opts_.dir + "/" + name;
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    Fail(errno, "create segment");
    return false;
  }
  fd_ = fd;
  int err = Preallocate(fd, opts_.segmentBytes);
  if (err != 0) {
    Fail(err, "preallocate segment");
    return false;
  }
  const uint32_t carried = chain_;
  uint8_t carryPayload[4];
  StoreU32(carryPayload, carried);
  scratch_.resize(RecordBytes(4) + RecordBytes(static_cast<uint32_t>(opts_.metadata.size())) +
                  RecordBytes(static_cast<uint32_t>(hardState_.size())));
  size_t n = EncodeRecord(scratch_.data(), kTypeCrcCarry, carryPayload, 4);
  n += EncodeRecord(scratch_.data() + n, kTypeMetadata, opts_.metadata.data(),
                    static_cast<uint32_t>(opts_.metadata.size()));
  if (!hardState_.empty()) {
    n += EncodeRecord(scratch_.data() + n, kTypeHardState, hardState_.data(), static_cast<uint32_t>(hardState_.size()));
  }
  FillFrames(scratch_.data(), n, &chain_, [](uint8_t, const uint8_t*, uint32_t) {});
  if (!PwriteAll(fd, scratch_.data(), n, 0)) {
    Fail(errno, "write segment header");
    return false;
  }
  if (!Sync(fd)) return false;
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    Fail(errno, "rename segment");
    return false;
  }
  if (!opts_.noFsync && fsync(dirFd_) != 0) {
    Fail(errno, "fsync wal directory");
    return false;
  }
  segmentSeq_ = seq;
  offset_ = n;
  headerEnd_ = n;
  bytes_ += static_cast<int64_t>(n);
  cuts_++;
  return true;
}

void Writer::Fail(int err, const char* what) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopped_ = true;
    failWhat_ = what;
  }
  StoreI32(ctrl::kErrno, err == 0 ? EIO : err);
  StoreI32(ctrl::kState, kFailed);
  Publish();
}

void Writer::StoreI64(size_t off, int64_t v) {
  __atomic_store_n(reinterpret_cast<int64_t*>(opts_.control + off), v, __ATOMIC_SEQ_CST);
}

void Writer::StoreI32(size_t off, int32_t v) {
  __atomic_store_n(reinterpret_cast<int32_t*>(opts_.control + off), v, __ATOMIC_SEQ_CST);
}

void Writer::Publish() {
  StoreI64(ctrl::kAppends, appendsDone_);
  StoreI64(ctrl::kFsyncs, fsyncs_);
  StoreI64(ctrl::kBytes, bytes_);
  StoreI64(ctrl::kRecords, records_);
  StoreI64(ctrl::kFsyncUsTotal, fsyncUsTotal_);
  StoreI64(ctrl::kBatchAppendsMax, batchAppendsMax_);
  StoreI64(ctrl::kCuts, cuts_);
  StoreI64(ctrl::kSegmentSeq, static_cast<int64_t>(segmentSeq_));
  // The durable sequence number goes last: a reader that sees it also sees the stats that led to it.
  StoreI64(ctrl::kDurableSeq, static_cast<int64_t>(durableSeq_));
  __atomic_add_fetch(reinterpret_cast<int32_t*>(opts_.control + ctrl::kGen), 1, __ATOMIC_SEQ_CST);
  if (opts_.onPublish) opts_.onPublish();
}

}  // namespace tetcd
