#include "parallel.h"

#include <deque>

namespace anisoscan {

namespace {
thread_local bool tls_on_worker = false;
}  // namespace

struct WorkerPool::State {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::function<void()>> tasks;
};

WorkerPool::WorkerPool(size_t threads) : state_(std::make_shared<State>()) {
  for (size_t i = 0; i < threads; ++i)
    std::thread([state = state_] {
      tls_on_worker = true;
      for (;;) {
        std::function<void()> task;
        {
          std::unique_lock lock(state->mutex);
          state->ready.wait(lock, [&] { return !state->tasks.empty(); });
          task = std::move(state->tasks.front());
          state->tasks.pop_front();
        }
        task();
      }
    }).detach();  // the pool lives as long as the process
}

WorkerPool& WorkerPool::instance() {
  static WorkerPool* pool = new WorkerPool(static_cast<size_t>(std::max(1, resolve_threads(0) - 1)));
  return *pool;
}

void WorkerPool::submit(std::function<void()> task) {
  {
    std::lock_guard lock(state_->mutex);
    state_->tasks.push_back(std::move(task));
  }
  state_->ready.notify_one();
}

bool WorkerPool::on_worker() { return tls_on_worker; }

}  // namespace anisoscan
