// C++ unit test of the writer core (no Node): CRC implementations agree, framing validation, group commit under
// a concurrent appender, rotation, and a byte-for-byte re-read of every segment with the chain verified.
// Built and run by CMake/ctest (see native/README.md), normally under AddressSanitizer + UBSan.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../crc32c.h"
#include "../record.h"
#include "../writer.h"

using namespace tetcd;

static int failures = 0;
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                          \
    }                                                                      \
  } while (0)

static std::vector<uint8_t> Record(uint8_t type, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out(RecordBytes(static_cast<uint32_t>(payload.size())));
  EncodeRecord(out.data(), type, payload.data(), static_cast<uint32_t>(payload.size()));
  return out;
}

static void TestCrc() {
  const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK(Crc32c(0, check, 9) == 0xE3069283u);
  CHECK(Crc32cSoftware(0, check, 9) == 0xE3069283u);
  std::mt19937 rng(1);
  std::vector<uint8_t> buf(10000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (int i = 0; i < 500; i++) {
    size_t start = rng() % 64, len = rng() % 9000;
    uint32_t seed = rng();
    uint32_t a = Crc32c(seed, buf.data() + start, len);
    CHECK(a == Crc32cSoftware(seed, buf.data() + start, len));
    size_t mid = len / 3;
    CHECK(a == Crc32c(Crc32c(seed, buf.data() + start, mid), buf.data() + start + mid, len - mid));
  }
}

static void TestValidate() {
  const char* why = nullptr;
  auto r = Record(kTypeEntry, std::vector<uint8_t>(30, 1));
  CHECK(ValidateFrames(r.data(), r.size(), false, &why) == 1);
  auto bad = r;
  bad[bad.size() - 1] = 0;  // marker gone
  CHECK(ValidateFrames(bad.data(), bad.size(), false, &why) == -1);
  CHECK(ValidateFrames(r.data(), r.size() - 1, false, &why) == -1);  // cut short
  auto carry = Record(kTypeCrcCarry, std::vector<uint8_t>(4, 0));
  CHECK(ValidateFrames(carry.data(), carry.size(), false, &why) == -1);  // only the writer makes carries
  CHECK(ValidateFrames(carry.data(), carry.size(), true, &why) == 1);
  auto type0 = r;
  type0[4] = 0;
  CHECK(ValidateFrames(type0.data(), type0.size(), false, &why) == -1);
}

static std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Verifies one segment; returns the number of entry records, -1 on any damage.
static long VerifySegment(const std::vector<uint8_t>& b, uint32_t* chain, bool first) {
  size_t at = 0;
  long entries = 0;
  while (at + kHeaderBytes <= b.size()) {
    bool zero = std::all_of(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + kHeaderBytes),
                            [](uint8_t x) { return x == 0; });
    if (zero) break;
    uint32_t len = LoadU32(&b[at]);
    size_t size = RecordBytes(len);
    if (at + size > b.size()) return -1;
    if (Crc32c(0, &b[at], 12) != LoadU32(&b[at + 12])) return -1;
    uint8_t type = b[at + 4];
    uint32_t seed = type == kTypeCrcCarry ? 0 : *chain;
    if (Crc32c(seed, &b[at + kHeaderBytes], size - kHeaderBytes) != LoadU32(&b[at + 8])) return -1;
    if (type == kTypeCrcCarry) {
      uint32_t carried = LoadU32(&b[at + kHeaderBytes]);
      if (!first && carried != *chain) return -1;
      *chain = carried;
    } else {
      *chain = LoadU32(&b[at + 8]);
    }
    if (type == kTypeEntry) entries++;
    at += size;
  }
  return entries;
}

static void TestWriter() {
  char tmpl[] = "/tmp/tetcd-wal-cctest-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  auto carry = Record(kTypeCrcCarry, std::vector<uint8_t>(4, 0));
  auto md = Record(kTypeMetadata, {'m', 'd'});
  std::vector<uint8_t> init(carry);
  init.insert(init.end(), md.begin(), md.end());
  std::string what;
  const std::string first = dir + "/" + SegmentName(0, 0);
  CHECK(WriteInitialSegment(first, init.data(), init.size(), 8192, false, &what) == 0);
  std::vector<uint8_t> scan = ReadFile(first);
  uint32_t chain = 0;
  CHECK(VerifySegment(scan, &chain, true) == 0);

  alignas(8) static uint8_t control[ctrl::kBytesTotal];
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<int> publishes{0};
  WriterOptions o;
  o.dir = dir;
  o.segmentPath = first;
  o.offset = init.size();
  o.chain = chain;
  o.metadata = {'m', 'd'};
  o.segmentBytes = 8192;
  o.batchBytesMax = 4096;
  o.control = control;
  o.onPublish = [&] {
    publishes++;
    std::lock_guard<std::mutex> lk(mu);
    cv.notify_all();
  };
  Writer w(o);
  CHECK(w.Start(&what) == 0);
  const int kAppends = 3000;
  uint64_t lastSeq = 0;
  std::thread appender([&] {
    for (int i = 1; i <= kAppends; i++) {
      std::vector<uint8_t> payload(20 + static_cast<size_t>(i % 200), static_cast<uint8_t>(i));
      auto rec = Record(kTypeEntry, payload);
      std::string why;
      uint64_t seq = w.Append(rec.data(), rec.size(), static_cast<uint64_t>(i), &why);
      if (seq != static_cast<uint64_t>(i)) failures++;
      lastSeq = seq;
    }
  });
  appender.join();
  auto durable = [&] {
    return static_cast<uint64_t>(__atomic_load_n(reinterpret_cast<int64_t*>(control + ctrl::kDurableSeq), __ATOMIC_SEQ_CST));
  };
  {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait_for(lk, std::chrono::seconds(20), [&] { return durable() >= lastSeq; });
  }
  CHECK(durable() == static_cast<uint64_t>(kAppends));
  const int64_t fsyncs = __atomic_load_n(reinterpret_cast<int64_t*>(control + ctrl::kFsyncs), __ATOMIC_SEQ_CST);
  const int64_t cuts = __atomic_load_n(reinterpret_cast<int64_t*>(control + ctrl::kCuts), __ATOMIC_SEQ_CST);
  CHECK(fsyncs > 0 && fsyncs < kAppends);  // group commit: fewer syncs than appends
  CHECK(cuts > 5);
  w.RequestClose();
  w.Join();
  CHECK(__atomic_load_n(reinterpret_cast<int32_t*>(control + ctrl::kState), __ATOMIC_SEQ_CST) == kClosed);
  std::string why;
  uint8_t one[32];
  EncodeRecord(one, kTypeEntry, nullptr, 0);
  CHECK(w.Append(one, RecordBytes(0), 1, &why) == 0);  // closed: refused

  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 4 && n.substr(n.size() - 4) == ".wal") names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  CHECK(names.size() == static_cast<size_t>(cuts) + 1);
  chain = 0;
  long entries = 0;
  for (size_t i = 0; i < names.size(); i++) {
    long n = VerifySegment(ReadFile(dir + "/" + names[i]), &chain, i == 0);
    CHECK(n >= 0);
    entries += n;
  }
  CHECK(entries == kAppends);
  for (const auto& n : names) unlink((dir + "/" + n).c_str());
  rmdir(dir.c_str());
}

// Appends queued behind a slow fdatasync fill the queue; the one that would pass queueBytesMax is refused with
// "queue full" and nothing is written of it, while every accepted append still becomes durable.
static void TestQueueFull() {
  char tmpl[] = "/tmp/tetcd-wal-cctest-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  auto carry = Record(kTypeCrcCarry, std::vector<uint8_t>(4, 0));
  auto md = Record(kTypeMetadata, {'m', 'd'});
  std::vector<uint8_t> init(carry);
  init.insert(init.end(), md.begin(), md.end());
  std::string what;
  const std::string first = dir + "/" + SegmentName(0, 0);
  CHECK(WriteInitialSegment(first, init.data(), init.size(), 65536, false, &what) == 0);
  uint32_t chain = 0;
  CHECK(VerifySegment(ReadFile(first), &chain, true) == 0);

  alignas(8) static uint8_t control[ctrl::kBytesTotal];
  WriterOptions o;
  o.dir = dir;
  o.segmentPath = first;
  o.offset = init.size();
  o.chain = chain;
  o.metadata = {'m', 'd'};
  o.segmentBytes = 65536;
  o.queueBytesMax = 1024;
  o.unsafeTestingFsyncSleepUs = 200000;
  o.control = control;
  Writer w(o);
  CHECK(w.Start(&what) == 0);
  auto rec = Record(kTypeEntry, std::vector<uint8_t>(200, 7));
  std::string why;
  uint64_t seq = w.Append(rec.data(), rec.size(), 1, &why);
  CHECK(seq == 1);
  // Let the thread take the first append into its (slow) sync; the rest queue up behind it.
  for (int i = 0; i < 1000 && w.QueuedBytes() > 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  uint64_t accepted = seq;
  for (uint64_t i = 2; i < 100; i++) {
    seq = w.Append(rec.data(), rec.size(), i, &why);
    if (seq == 0) break;
    accepted = seq;
  }
  CHECK(seq == 0);
  CHECK(why == "queue full");
  CHECK(accepted >= 3);
  CHECK(w.QueuedBytes() <= o.queueBytesMax);
  w.RequestClose();
  w.Join();
  CHECK(__atomic_load_n(reinterpret_cast<int32_t*>(control + ctrl::kState), __ATOMIC_SEQ_CST) == kClosed);
  CHECK(static_cast<uint64_t>(__atomic_load_n(reinterpret_cast<int64_t*>(control + ctrl::kDurableSeq),
                                              __ATOMIC_SEQ_CST)) == accepted);
  chain = 0;
  CHECK(VerifySegment(ReadFile(first), &chain, true) == static_cast<long>(accepted));
  unlink(first.c_str());
  rmdir(dir.c_str());
}

int main() {
  TestCrc();
  TestValidate();
  TestWriter();
  TestQueueFull();
  std::printf("wal native test: %s (crc32c %s)\n", failures == 0 ? "ok" : "FAILED", Crc32cImpl());
  return failures == 0 ? 0 : 1;
}
