#include "context.h"

#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace wp {

const char* code_name(Code c) {
  switch (c) {
    case Code::Argument: return "E_ARGUMENT";
    case Code::Format: return "E_FORMAT";
    case Code::Dtype: return "E_DTYPE";
    case Code::Io: return "E_IO";
    case Code::NonFinite: return "E_NONFINITE";
    case Code::Cancelled: return "E_CANCELLED";
    case Code::Internal: return "E_INTERNAL";
    case Code::Cuda: return "E_CUDA";
    case Code::Range: return "E_RANGE";
  }
  return "E_INTERNAL";
}

int Context::thread_count() const {
  if (threads > 0) return threads;
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

void parallel_for(const Context& ctx, size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  size_t nt = std::min<size_t>(static_cast<size_t>(ctx.thread_count()), n);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  std::mutex mu;
  auto worker = [&]() {
    for (;;) {
      if (failed.load(std::memory_order_relaxed)) return;
      size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      try {
        ctx.check_cancel();
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first) first = std::current_exception();
        failed = true;
        return;
      }
    }
  };
  if (nt <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(nt - 1);
    for (size_t t = 0; t + 1 < nt; ++t) pool.emplace_back(worker);
    worker();
    for (auto& th : pool) th.join();
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace wp
