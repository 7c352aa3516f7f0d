// bcrypt through the system's libcrypt (libxcrypt): $2b$ hashes made and checked in C, as fast as etcd's Go
// bcrypt and ~1.6x faster than bcryptjs. Synchronous: src/auth/hash_worker.ts calls it on the hashing pool's
// threads, never on the event loop.
#pragma once

#include <napi.h>

namespace tetcd {

// Adds bcryptHash(password, cost) -> string and bcryptCompare(password, hash) -> boolean to `exports`.
void InitBcrypt(Napi::Env env, Napi::Object exports);

}  // namespace tetcd
