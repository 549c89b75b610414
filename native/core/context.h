// Context: what a long core call needs from its caller: a thread count, a cancel flag and a progress sink.
// Core functions never touch N-API, globals or stdout; the addon wires these to AbortSignal and onProgress.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "error.h"

namespace wp {

struct Context {
  int threads = 0;                               // 0 = hardware concurrency
  const int32_t* cancel = nullptr;               // non-zero (set by the caller, any thread) aborts
  std::function<void(double done, double total)> progress;  // may be empty; called from worker threads

  bool cancelled() const { return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED) != 0; }
  void check_cancel() const {
    if (cancelled()) throw Error(Code::Cancelled, "operation cancelled");
  }
  int thread_count() const;
};

// Run fn(i) for i in [0, n) on ctx.thread_count() threads. Indices are handed out one at a time from a shared
// counter (dynamic scheduling), and every fn(i) writes only its own outputs, so results do not depend on the
// thread count or on which thread ran which index. The cancel flag is checked before each fn(i). The first
// exception thrown by any fn stops the others and is rethrown here.
void parallel_for(const Context& ctx, size_t n, const std::function<void(size_t)>& fn);

}  // namespace wp
