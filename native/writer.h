// The WAL writer: one thread per WAL that owns the open segment, coalesces every append queued while the
// previous fdatasync ran into the next write+fdatasync (group commit), and preallocates and rotates segments.
// It knows the record framing but nothing about Raft; it publishes progress into a caller-supplied control block.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <sys/uio.h>
#include <vector>

namespace tetcd {

/** Byte offsets in the control block (a SharedArrayBuffer on the JavaScript side). */
namespace ctrl {
constexpr size_t kGen = 0;          // i32, bumped after every publish
constexpr size_t kState = 4;        // i32, see WriterState
constexpr size_t kErrno = 8;        // i32, errno of the failure when kState == failed
constexpr size_t kDurableSeq = 16;  // i64, highest append sequence number that is durable
constexpr size_t kAppends = 24;     // i64, appends made durable
constexpr size_t kFsyncs = 32;      // i64
constexpr size_t kBytes = 40;       // i64, bytes written (records, carries and segment headers)
constexpr size_t kLastFsyncUs = 48; // i64
constexpr size_t kSegmentSeq = 56;  // i64, sequence number of the open segment
constexpr size_t kRecords = 64;     // i64, records written
constexpr size_t kFsyncUsTotal = 72;   // i64
constexpr size_t kBatchAppendsMax = 80;  // i64, most appends one fdatasync covered
constexpr size_t kCuts = 88;        // i64, segment rotations
constexpr size_t kBytesTotal = 128; // size of the block
}  // namespace ctrl

enum WriterState : int32_t { kRunning = 0, kFailed = 1, kClosed = 2 };

struct WriterOptions {
  std::string dir;              // WAL directory (new segments are created here)
  std::string segmentPath;      // open segment to continue
  uint64_t segmentSeq = 0;      // its sequence number
  uint64_t offset = 0;          // where the next record goes (end of the valid records)
  uint32_t chain = 0;           // data CRC of the last record before offset
  uint64_t lastIndex = 0;       // last Raft index written so far (names the next segment)
  std::vector<uint8_t> metadata;   // payload of the metadata record every new segment starts with
  std::vector<uint8_t> hardState;  // payload of the newest hard state (empty: none yet)
  uint64_t segmentBytes = 64ull << 20;
  uint64_t batchBytesMax = 1ull << 20;
  uint64_t batchDelayUsMax = 0;
  uint64_t idleSpinUs = 0;      // after a batch, poll this long for the next append before sleeping
  uint64_t queueBytesMax = 1ull << 30;  // same default as WAL_DEFAULTS.queueBytesMax (src/wal/index.ts)
  bool noFsync = false;
  uint64_t unsafeTestingFsyncSleepUs = 0;  // tests and benches only: sleep this long after each fdatasync
  uint8_t* control = nullptr;   // kBytesTotal bytes, 8-byte aligned, outlives the writer
  std::function<void()> onPublish;  // called on the writer thread after each publish
};

/** One WAL's writer thread. Append is called from one thread (the event loop); everything else happens inside. */
class Writer {
 public:
  explicit Writer(WriterOptions opts);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  /** Opens the segment (preallocating it) and starts the thread. Returns an errno, 0 on success. */
  int Start(std::string* what);

  /** Copies framed, unfilled records in. Returns the append's sequence number (> 0), or 0 with `why` set
   *  when the writer has failed, is closing, or the queue is over queueBytesMax. */
  uint64_t Append(const uint8_t* p, size_t n, uint64_t lastIndex, std::string* why);

  /** Asks the thread to write what is queued and stop; it publishes kClosed when done. Does not block. */
  void RequestClose();

  /** Waits for the thread to end (instant once kClosed or kFailed is published). */
  void Join();

  uint64_t QueuedBytes();

  /** What the writer was doing when it failed ("fdatasync", "write", ...); empty while healthy. */
  std::string FailWhat();

 private:
  struct Block {
    std::vector<uint8_t> buf;
    size_t used = 0;
    uint64_t lastSeq = 0;
    uint64_t lastIndex = 0;
    uint64_t appends = 0;
  };

  void Run();
  bool WriteBatch(std::vector<Block>& batch);
  bool Cut();
  bool WriteAll(const ::iovec* iov, int iovCount, uint64_t offset, size_t total);
  bool Sync(int fd);
  void Fail(int err, const char* what);
  void Publish();
  void StoreI64(size_t off, int64_t v);
  void StoreI32(size_t off, int32_t v);

  WriterOptions opts_;
  int fd_ = -1;
  int dirFd_ = -1;
  uint64_t segmentSeq_;
  uint64_t offset_;
  uint64_t headerEnd_ = 0;  // offset of the first record after a segment's carry/metadata/hard state
  uint32_t chain_;
  uint64_t lastIndex_;
  std::vector<uint8_t> hardState_;
  std::vector<uint8_t> scratch_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Block> pending_;       // guarded by mu_
  std::vector<Block> free_;         // guarded by mu_
  uint64_t pendingBytes_ = 0;       // guarded by mu_
  std::atomic<bool> hasPending_{false};  // !pending_.empty(), readable without mu_ (the idle spin)
  uint64_t appendSeq_ = 0;          // guarded by mu_
  bool closing_ = false;            // guarded by mu_
  bool stopped_ = false;            // guarded by mu_: failed or closed, no more appends

  uint64_t durableSeq_ = 0;
  int64_t appendsDone_ = 0, fsyncs_ = 0, bytes_ = 0, records_ = 0, fsyncUsTotal_ = 0, batchAppendsMax_ = 0, cuts_ = 0;
  std::thread thread_;
  std::string failWhat_;
};

/** Segment file name: %016x-%016x.wal of (sequence, first Raft index). */
std::string SegmentName(uint64_t seq, uint64_t firstIndex);

/** Creates a segment file holding `records` (framed, CRCs filled here starting from chain 0), preallocated to
 *  segmentBytes, and syncs it. Startup only (blocking). Returns errno, 0 on success. */
int WriteInitialSegment(const std::string& path, uint8_t* records, size_t n, uint64_t segmentBytes, bool noFsync,
                        std::string* what);

}  // namespace tetcd
