// See bcrypt.h. The password and libcrypt's scratch area are wiped before returning.
#include "bcrypt.h"

#include <crypt.h>

#include <cstring>
#include <memory>
#include <string>

namespace tetcd {
namespace {

// crypt_data is ~32 KiB: on the heap, not a worker thread's stack.
struct Scratch {
  crypt_data data;
  Scratch() { std::memset(&data, 0, sizeof data); }
  ~Scratch() { explicit_bzero(&data, sizeof data); }
};

void Wipe(std::string& s) { explicit_bzero(s.data(), s.size()); }

Napi::Value BcryptHashJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "bcryptHash(password: string, cost: number)");
  }
  std::string password = info[0].As<Napi::String>().Utf8Value();
  int cost = info[1].As<Napi::Number>().Int32Value();
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  // No random bytes given: libcrypt takes them from the kernel (getrandom).
  if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, setting, sizeof setting) == nullptr) {
    Wipe(password);
    throw Napi::Error::New(env, "bcrypt: cannot make a salt for cost " + std::to_string(cost));
  }
  auto scratch = std::make_unique<Scratch>();
  const char* hash = crypt_rn(password.c_str(), setting, &scratch->data, sizeof scratch->data);
  Wipe(password);
  if (hash == nullptr || hash[0] == '*') throw Napi::Error::New(env, "bcrypt: hashing failed");
  return Napi::String::New(env, hash);
}

Napi::Value BcryptCompareJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "bcryptCompare(password: string, hash: string)");
  }
  std::string password = info[0].As<Napi::String>().Utf8Value();
  std::string expected = info[1].As<Napi::String>().Utf8Value();
  if (expected.rfind("$2", 0) != 0) {
    Wipe(password);
    return Napi::Boolean::New(env, false);
  }
  auto scratch = std::make_unique<Scratch>();
  const char* got = crypt_rn(password.c_str(), expected.c_str(), &scratch->data, sizeof scratch->data);
  Wipe(password);
  if (got == nullptr || got[0] == '*') return Napi::Boolean::New(env, false);
  // Constant time over the hash's length.
  size_t n = std::strlen(got);
  unsigned char diff = n == expected.size() ? 0 : 1;
  for (size_t i = 0; i < n && i < expected.size(); i++) diff |= static_cast<unsigned char>(got[i] ^ expected[i]);
  return Napi::Boolean::New(env, diff == 0);
}

}  // namespace

void InitBcrypt(Napi::Env env, Napi::Object exports) {
  exports.Set("bcryptHash", Napi::Function::New(env, BcryptHashJs));
  exports.Set("bcryptCompare", Napi::Function::New(env, BcryptCompareJs));
}

}  // namespace tetcd
