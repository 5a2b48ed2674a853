// A minimal parallel-for over an index range with static chunking.
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace anisoscan {

inline int resolve_threads(int requested) {
  if (requested > 0) return requested;
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Calls fn(begin, end, thread_index) on disjoint chunks of [0, n). Runs inline when one
// thread suffices so that single-query latency pays nothing for threading.
template <typename Fn>
void parallel_for(size_t n, int threads, size_t min_chunk, Fn&& fn) {
  size_t t = std::min<size_t>(resolve_threads(threads), (n + min_chunk - 1) / std::max<size_t>(min_chunk, 1));
  if (t <= 1) {
    if (n > 0) fn(size_t{0}, n, 0);
    return;
  }
  std::vector<std::thread> workers;
  std::exception_ptr error;
  std::mutex error_mutex;
  size_t chunk = (n + t - 1) / t;
  for (size_t i = 0; i < t; ++i) {
    size_t b = i * chunk, e = std::min(n, b + chunk);
    if (b >= e) break;
    workers.emplace_back([&, b, e, i] {
      try {
        fn(b, e, static_cast<int>(i));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    });
  }
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace anisoscan
