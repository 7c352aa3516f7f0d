// V8's platform worker threads run TurboFan compilations and the collector's concurrent and parallel
// phases. At normal priority a compilation holds a core for milliseconds; on a small machine the event loop
// and the WAL writer then wait for one, and that was most of a freshly started member's latency tail
// (bench/RESULTS.md, "A fresh member's tail"). Two ways down: a higher nice value (they still get a share
// of a busy machine, so compilation and marking keep up under load) or SCHED_IDLE (they run only on CPU
// time nothing else wants: the shortest tail, but on a saturated machine they starve and V8's code stays in
// its lower tiers). Either is one-way for an unprivileged process.
//
// The threads are the platform's, so the only way onto each of them is a task: one task per worker thread,
// each holding its thread at a barrier until all have arrived (so no thread takes two), then changing the
// calling thread (sched_setscheduler(0, ...) and setpriority(PRIO_PROCESS, 0, ...) are per thread on Linux).
// node.h (for the platform) defines NAPI_VERSION as the runtime's own; this addon builds against version 8.
#pragma push_macro("NAPI_VERSION")
#undef NAPI_VERSION
#include <node.h>
#include <v8-platform.h>
#undef NAPI_VERSION
#pragma pop_macro("NAPI_VERSION")

#include "sched.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace tetcd {
namespace {

constexpr int kQuietMs = 20;

struct Barrier {
  std::mutex mu;
  std::condition_variable cv;
  int want = 0;
  int arrived = 0;
  int finished = 0;
  int err = 0;
  bool released = false;   // the tasks stopped waiting for each other
  bool idle = false;        // SCHED_IDLE, else nice
  int nice = 0;
  std::set<long> switched;  // thread ids lowered
  std::chrono::steady_clock::time_point lastArrival;
  std::chrono::steady_clock::time_point deadline;
};

class LowerTask : public v8::Task {
 public:
  explicit LowerTask(std::shared_ptr<Barrier> b) : b_(std::move(b)) {}
  void Run() override {
    thread_local bool lowered = false;
    if (lowered) return;  // a late task on a thread an earlier task already lowered
    std::unique_lock<std::mutex> lk(b_->mu);
    b_->arrived++;
    b_->lastArrival = std::chrono::steady_clock::now();
    b_->cv.notify_all();
    // A task that finished at once would free its thread for the next task, so each waits until all have
    // arrived. Node counts its delayed-task thread among the platform's worker threads and that one never
    // runs tasks, so "all" also means: nobody new for kQuietMs (or the caller's deadline passed).
    while (b_->arrived < b_->want && !b_->released) {
      const auto quietUntil = b_->lastArrival + std::chrono::milliseconds(kQuietMs);
      const auto until = std::min(quietUntil, b_->deadline);
      if (std::chrono::steady_clock::now() >= until) break;
      b_->cv.wait_until(lk, until);
    }
    b_->released = true;
    sched_param p{};
    p.sched_priority = 0;
    bool ok;
    if (b_->idle) {
      ok = sched_setscheduler(0, SCHED_IDLE, &p) == 0;
    } else {
      // Only ever down: under `nice -n 15 tetcd` the threads already start below the nice asked for, and
      // raising them back would be refused to an unprivileged process anyway.
      errno = 0;
      const int current = getpriority(PRIO_PROCESS, 0);
      ok = (errno == 0 && current >= b_->nice) || setpriority(PRIO_PROCESS, 0, b_->nice) == 0;
    }
    if (ok) {
      lowered = true;
      b_->switched.insert(syscall(SYS_gettid));
    } else {
      b_->err = errno;
    }
    b_->finished++;
    b_->cv.notify_all();
  }

 private:
  std::shared_ptr<Barrier> b_;
};

}  // namespace

Napi::Value V8WorkersLowerJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env, "v8WorkersLower('idle' | 'nice', nice, timeoutMs)");
  }
  const std::string mode = info[0].As<Napi::String>().Utf8Value();
  const int64_t nice = info[1].As<Napi::Number>().Int64Value();
  const int64_t timeoutMs = info[2].As<Napi::Number>().Int64Value();
  if (mode != "idle" && mode != "nice") throw Napi::RangeError::New(env, "v8WorkersLower: mode is 'idle' or 'nice'");
  if (mode == "nice" && (nice < 1 || nice > 19)) throw Napi::RangeError::New(env, "v8WorkersLower: nice in 1..19");
  if (timeoutMs < 1 || timeoutMs > 10000) throw Napi::RangeError::New(env, "v8WorkersLower: timeoutMs in 1..10000");
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  node::Environment* nodeEnv = node::GetCurrentEnvironment(isolate->GetCurrentContext());
  node::MultiIsolatePlatform* platform = nodeEnv != nullptr ? node::GetMultiIsolatePlatform(nodeEnv) : nullptr;
  if (platform == nullptr) throw Napi::Error::New(env, "v8WorkersLower: no V8 platform");
  auto b = std::make_shared<Barrier>();
  b->want = platform->NumberOfWorkerThreads();
  b->idle = mode == "idle";
  b->nice = static_cast<int>(nice);
  b->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  for (int i = 0; i < b->want; i++) platform->CallOnWorkerThread(std::make_unique<LowerTask>(b));
  int threads, switched, err, finished;
  {
    std::unique_lock<std::mutex> lk(b->mu);
    // Tasks that had not started when the others were released still run later, on a thread of their own if
    // a worker was busy (it is switched then) or on one already switched (they return at once).
    b->cv.wait_until(lk, b->deadline + std::chrono::milliseconds(kQuietMs),
                     [&] { return b->released && b->finished >= b->arrived; });
    threads = b->want;
    switched = static_cast<int>(b->switched.size());
    err = b->err;
    finished = b->finished;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("threads", Napi::Number::New(env, threads));
  out.Set("switched", Napi::Number::New(env, switched));
  out.Set("finished", Napi::Number::New(env, finished));
  out.Set("errno", Napi::Number::New(env, err));
  return out;
}

}  // namespace tetcd
