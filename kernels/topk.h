// Bounded max-heap keeping the k smallest (distance, label) pairs. Ties go to the
// smaller label so that results are deterministic across SIMD levels and threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace anisoscan {

template <typename Label>
class TopK {
 public:
  struct Entry {
    float distance;
    Label label;
    bool operator<(const Entry& o) const {
      return distance < o.distance || (distance == o.distance && label < o.label);
    }
  };

  explicit TopK(size_t k) : k_(k) { heap_.reserve(k); }

  size_t capacity() const { return k_; }
  size_t size() const { return heap_.size(); }
  bool full() const { return heap_.size() >= k_; }

  // Distance a candidate must beat (or tie with a smaller label) to enter.
  float worst() const {
    return full() ? heap_.front().distance : std::numeric_limits<float>::infinity();
  }

  bool push(float distance, Label label) {
    if (k_ == 0) return false;
    Entry e{distance, label};
    if (!full()) {
      heap_.push_back(e);
      std::push_heap(heap_.begin(), heap_.end());
      return true;
    }
    if (!(e < heap_.front())) return false;
    std::pop_heap(heap_.begin(), heap_.end());
    heap_.back() = e;
    std::push_heap(heap_.begin(), heap_.end());
    return true;
  }

  // Best first; empties the heap.
  std::vector<Entry> take_sorted() {
    std::sort_heap(heap_.begin(), heap_.end());
    std::vector<Entry> out;
    out.swap(heap_);
    return out;
  }

 private:
  size_t k_;
  std::vector<Entry> heap_;
};

}  // namespace anisoscan
