// Node-API face of the WAL writer: a WalHandle class (append/close/join) plus the CRC-32C primitive and the
// startup-only helpers the TypeScript side needs. Argument checking here is defensive; src/wal/ validates first.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include <napi.h>

#include "bcrypt.h"
#include "crc32c.h"
#include "record.h"
#include "sched.h"
#include "writer.h"

namespace tetcd {
namespace {

Napi::Error CodedError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

std::string ErrnoCode(int err) {
  switch (err) {
    case ENOSPC: return "ENOSPC";
    case EIO: return "EIO";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EROFS: return "EROFS";
    case EDQUOT: return "EDQUOT";
    case EFBIG: return "EFBIG";
    case EINVAL: return "EINVAL";
    default: return "E" + std::to_string(err);
  }
}

// Typed arrays may sit on a SharedArrayBuffer; napi_get_typedarray_info gives the data pointer either way.
uint8_t* TypedArrayData(const Napi::Value& v, size_t* bytes) {
  if (!v.IsTypedArray()) return nullptr;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer;
  size_t byteOffset = 0;
  if (napi_get_typedarray_info(v.Env(), ta, &type, &length, &data, &buffer, &byteOffset) != napi_ok) return nullptr;
  *bytes = ta.ByteLength();
  // An empty array may have no backing store; callers only need a non-null pointer to mean "a typed array".
  static uint8_t empty[8];
  return data != nullptr ? static_cast<uint8_t*>(data) : empty;
}

uint64_t U64(const Napi::Object& o, const char* key, uint64_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0) throw Napi::RangeError::New(o.Env(), std::string(key) + " out of range");
  return static_cast<uint64_t>(d);
}

std::vector<uint8_t> Bytes(const Napi::Object& o, const char* key) {
  size_t n = 0;
  uint8_t* p = TypedArrayData(o.Get(key), &n);
  if (p == nullptr) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a Uint8Array");
  return std::vector<uint8_t>(p, p + n);
}

class WalHandle : public Napi::ObjectWrap<WalHandle> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "WalHandle",
                       {InstanceMethod<&WalHandle::Append>("append"), InstanceMethod<&WalHandle::Close>("close"),
                        InstanceMethod<&WalHandle::JoinWriter>("join"), InstanceMethod<&WalHandle::Ref>("ref"),
                        InstanceMethod<&WalHandle::Unref>("unref"), InstanceMethod<&WalHandle::FailWhat>("failWhat"),
                        InstanceMethod<&WalHandle::QueuedBytes>("queuedBytes")});
  }

  explicit WalHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WalHandle>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "options object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    WriterOptions w;
    w.dir = o.Get("dir").ToString().Utf8Value();
    w.segmentPath = o.Get("segmentPath").ToString().Utf8Value();
    w.segmentSeq = U64(o, "segmentSeq", 0);
    w.offset = U64(o, "offset", 0);
    w.chain = static_cast<uint32_t>(U64(o, "chain", 0));
    w.lastIndex = U64(o, "lastIndex", 0);
    w.metadata = Bytes(o, "metadata");
    w.hardState = Bytes(o, "hardState");
    w.segmentBytes = U64(o, "segmentBytes", w.segmentBytes);
    w.batchBytesMax = U64(o, "batchBytesMax", w.batchBytesMax);
    w.batchDelayUsMax = U64(o, "batchDelayUsMax", 0);
    w.idleSpinUs = U64(o, "idleSpinUs", 0);
    w.queueBytesMax = U64(o, "queueBytesMax", w.queueBytesMax);
    w.noFsync = o.Get("noFsync").ToBoolean().Value();
    w.unsafeTestingFsyncSleepUs = U64(o, "unsafeTestingFsyncSleepUs", 0);
    if (w.segmentBytes == 0 || w.batchBytesMax == 0 || w.queueBytesMax == 0) {
      throw Napi::RangeError::New(env, "segmentBytes, batchBytesMax and queueBytesMax must be > 0");
    }

    Napi::Value control = o.Get("control");
    size_t controlBytes = 0;
    control_ = TypedArrayData(control, &controlBytes);
    if (control_ == nullptr || controlBytes < ctrl::kBytesTotal || (reinterpret_cast<uintptr_t>(control_) & 7) != 0) {
      throw Napi::TypeError::New(env, "control must be an 8-byte aligned typed array of at least 128 bytes");
    }
    std::memset(control_, 0, ctrl::kBytesTotal);
    controlRef_ = Napi::Persistent(control.As<Napi::Object>());
    w.control = control_;

    // The event loop learns of a publish through a thread-safe function (measured faster than Atomics.waitAsync
    // fed by a futex-waiting worker, which was removed: bench/RESULTS.md, WAL section).
    Napi::Value onWake = o.Get("onWake");
    if (!onWake.IsFunction()) throw Napi::TypeError::New(env, "onWake must be a function");
    tsfn_ = Tsfn::New(env, onWake.As<Napi::Function>(), "tetcd-wal", 0, 1, this);
    tsfn_.Unref(env);
    haveTsfn_ = true;
    w.onPublish = [this] {
      // One queued call at a time: the callback reads the newest durable sequence number, so a publish that
      // lands while a call is pending is covered by it.
      if (!callPending_.exchange(true)) tsfn_.NonBlockingCall();
    };

    writer_ = std::make_unique<Writer>(std::move(w));
    std::string what;
    int err = writer_->Start(&what);
    if (err != 0) {
      writer_.reset();
      if (haveTsfn_) {
        tsfn_.Release();
        haveTsfn_ = false;
      }
      throw CodedError(env, ErrnoCode(err), what + ": " + std::strerror(err));
    }
  }

  ~WalHandle() override {
    // Only reached if JavaScript dropped the handle without close(); finish the writer before freeing it.
    writer_.reset();
    if (haveTsfn_) tsfn_.Release();
  }

 private:
  static void CallJs(Napi::Env env, Napi::Function cb, WalHandle* self, void*) {
    if (self != nullptr) self->callPending_.store(false);
    if (env != nullptr && !cb.IsEmpty()) cb.Call({});
  }
  using Tsfn = Napi::TypedThreadSafeFunction<WalHandle, void, CallJs>;

  Napi::Value Append(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t n = 0;
    uint8_t* p = TypedArrayData(info[0], &n);
    if (p == nullptr || !info[1].IsNumber()) throw Napi::TypeError::New(env, "append(Uint8Array, lastIndex)");
    if (!writer_) throw CodedError(env, "ECLOSED", "wal is closed");
    const double lastIndex = info[1].As<Napi::Number>().DoubleValue();
    if (!(lastIndex >= 0)) throw Napi::RangeError::New(env, "lastIndex must be >= 0");
    std::string why;
    uint64_t seq = writer_->Append(p, n, static_cast<uint64_t>(lastIndex), &why);
    if (seq == 0) {
      const char* code = why == "writer failed" ? "EFAILED" : why == "closing" ? "ECLOSED"
                         : why == "queue full" ? "EQUEUEFULL" : "EINVAL";
      throw CodedError(env, code, "wal append refused: " + why);
    }
    return Napi::Number::New(env, static_cast<double>(seq));
  }

  void Close(const Napi::CallbackInfo&) {
    if (writer_) writer_->RequestClose();
  }

  void JoinWriter(const Napi::CallbackInfo& info) {
    if (writer_) {
      writer_->Join();
      failWhat_ = writer_->FailWhat();
      writer_.reset();
    }
    if (haveTsfn_) {
      tsfn_.Release();
      haveTsfn_ = false;
    }
    controlRef_.Reset();
    (void)info;
  }

  void Ref(const Napi::CallbackInfo& info) {
    if (haveTsfn_) tsfn_.Ref(info.Env());
  }

  void Unref(const Napi::CallbackInfo& info) {
    if (haveTsfn_) tsfn_.Unref(info.Env());
  }

  Napi::Value FailWhat(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), writer_ ? writer_->FailWhat() : failWhat_);
  }

  Napi::Value QueuedBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), writer_ ? static_cast<double>(writer_->QueuedBytes()) : 0.0);
  }

  std::unique_ptr<Writer> writer_;
  uint8_t* control_ = nullptr;
  Napi::ObjectReference controlRef_;
  Tsfn tsfn_;
  bool haveTsfn_ = false;
  std::atomic<bool> callPending_{false};
  std::string failWhat_;
};

// crc32c(seed, bytes, start, end) -> number
Napi::Value Crc32cJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0;
  uint8_t* p = TypedArrayData(info[1], &n);
  if (p == nullptr || !info[0].IsNumber()) throw Napi::TypeError::New(env, "crc32c(seed, Uint8Array, start?, end?)");
  const uint32_t seed = info[0].As<Napi::Number>().Uint32Value();
  size_t start = 0, end = n;
  if (info.Length() > 2 && info[2].IsNumber()) start = static_cast<size_t>(info[2].As<Napi::Number>().Int64Value());
  if (info.Length() > 3 && info[3].IsNumber()) end = static_cast<size_t>(info[3].As<Napi::Number>().Int64Value());
  if (start > end || end > n) throw Napi::RangeError::New(env, "crc32c: bad range");
  return Napi::Number::New(env, Crc32c(seed, p + start, end - start));
}

Napi::Value Crc32cSoftwareJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0;
  uint8_t* p = TypedArrayData(info[1], &n);
  if (p == nullptr || !info[0].IsNumber()) throw Napi::TypeError::New(env, "crc32cSoftware(seed, Uint8Array)");
  return Napi::Number::New(env, Crc32cSoftware(info[0].As<Napi::Number>().Uint32Value(), p, n));
}

// writeInitialSegment(path, records, segmentBytes, noFsync): fills CRCs (chain from 0), preallocates, writes, syncs.
void WriteInitialSegmentJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0;
  uint8_t* p = TypedArrayData(info[1], &n);
  if (!info[0].IsString() || p == nullptr || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env, "writeInitialSegment(path, Uint8Array, segmentBytes, noFsync)");
  }
  std::vector<uint8_t> copy(p, p + n);
  std::string what;
  int err = WriteInitialSegment(info[0].As<Napi::String>().Utf8Value(), copy.data(), copy.size(),
                                static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value()),
                                info[3].ToBoolean().Value(), &what);
  if (err != 0) throw CodedError(env, ErrnoCode(err), what + ": " + std::strerror(err));
}

// lockFile(path) -> fd. Takes an exclusive flock on path (created if missing) and keeps the descriptor open
// for the life of the process, so a second member on the same data dir fails fast instead of corrupting it.
Napi::Value LockFileJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "lockFile(path)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw CodedError(env, ErrnoCode(errno), "open " + path + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) throw CodedError(env, "ELOCKED", path + " is locked by another process");
    throw CodedError(env, ErrnoCode(err), "flock " + path + ": " + std::strerror(err));
  }
  return Napi::Number::New(env, fd);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("WalHandle", WalHandle::Init(env));
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs));
  exports.Set("crc32cSoftware", Napi::Function::New(env, Crc32cSoftwareJs));
  exports.Set("crc32cImpl", Napi::String::New(env, Crc32cImpl()));
  exports.Set("writeInitialSegment", Napi::Function::New(env, WriteInitialSegmentJs));
  exports.Set("lockFile", Napi::Function::New(env, LockFileJs));
  exports.Set("v8WorkersLower", Napi::Function::New(env, V8WorkersLowerJs));
  exports.Set("controlBytes", Napi::Number::New(env, static_cast<double>(ctrl::kBytesTotal)));
  InitBcrypt(env, exports);
  return exports;
}

}  // namespace
}  // namespace tetcd

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return tetcd::Init(env, exports); }

NODE_API_MODULE(tetcd_wal, InitModule)
