// parallel_for over an index range, on one process-wide pool of worker threads started once
// (hardware threads - 1; the calling thread is the last worker). Many callers at once (gRPC
// threads, Milvus Lite's searches) share it instead of each starting its own threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace anisoscan {

inline int resolve_threads(int requested) {
  if (requested > 0) return requested;
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Runs queued tasks on its threads; lives until the process ends.
class WorkerPool {
 public:
  static WorkerPool& instance();
  void submit(std::function<void()> task);
  // True on the pool's own threads: work started there runs inline, never waits on the pool.
  static bool on_worker();

 private:
  explicit WorkerPool(size_t threads);
  struct State;
  std::shared_ptr<State> state_;
};

// Calls fn(begin, end, chunk) on disjoint chunks of [0, n), chunk in [0, number of chunks).
// Runs inline when one thread suffices, so that single-query latency pays nothing for
// threading. The caller takes chunks too, so it never waits for a chunk nobody has started.
template <typename Fn>
void parallel_for(size_t n, int threads, size_t min_chunk, Fn&& fn) {
  const size_t t = std::min<size_t>(resolve_threads(threads), (n + min_chunk - 1) / std::max<size_t>(min_chunk, 1));
  if (t <= 1 || WorkerPool::on_worker()) {
    if (n > 0) fn(size_t{0}, n, 0);
    return;
  }
  struct Call {
    std::atomic<size_t> next{0};
    size_t finished = 0;
    std::mutex mutex;
    std::condition_variable all_done;
    std::exception_ptr error;
  };
  auto call = std::make_shared<Call>();
  const size_t chunk = (n + t - 1) / t;
  // Late helpers find no chunk left and touch only `call`, which they share.
  auto work = [call, chunk, n, t, &fn] {
    for (size_t i; (i = call->next.fetch_add(1)) < t;) {
      const size_t b = std::min(n, i * chunk), e = std::min(n, b + chunk);
      std::exception_ptr error;
      try {
        if (b < e) fn(b, e, static_cast<int>(i));
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard lock(call->mutex);
      if (error && !call->error) call->error = error;
      if (++call->finished == t) call->all_done.notify_all();
    }
  };
  for (size_t i = 1; i < t; ++i) WorkerPool::instance().submit(work);
  work();
  std::unique_lock lock(call->mutex);
  call->all_done.wait(lock, [&] { return call->finished == t; });
  if (call->error) std::rethrow_exception(call->error);
}

}  // namespace anisoscan
