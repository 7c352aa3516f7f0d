// Priority of V8's platform worker threads (background compilation and GC helpers): --v8-workers-sched.
#pragma once
#include <napi.h>

namespace tetcd {

/** v8WorkersLower('idle' | 'nice', nice, timeoutMs) -> { threads, switched, finished, errno }: moves each of
 *  the V8 platform's worker threads (background compilation, GC helpers) to SCHED_IDLE, or to nice value
 *  `nice` (never raising one already lower), waiting at most timeoutMs for busy ones. A thread is lowered
 *  once; later calls leave it. */
Napi::Value V8WorkersLowerJs(const Napi::CallbackInfo& info);

}  // namespace tetcd
