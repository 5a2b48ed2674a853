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

namespace anisoscan {

// Top-k by a reservoir: candidates are appended while they beat the threshold, and only
// when 2k have gathered are they cut back to the best k (nth_element), which also tightens
// the threshold. Pushing costs a compare and an append instead of a heap update; the result
// equals TopK's for the same pushes.
template <typename Label>
class ReservoirTopK {
 public:
  using Entry = typename TopK<Label>::Entry;

  explicit ReservoirTopK(size_t k) : k_(k) { items_.reserve(2 * k + 1); }

  size_t size() const { return std::min(items_.size(), k_); }
  // Distance a candidate must beat (or tie with a smaller label) to be kept.
  float worst() const { return threshold_.distance; }

  void push(float distance, Label label) {
    Entry e{distance, label};
    if (k_ == 0 || !(e < threshold_)) return;
    items_.push_back(e);
    if (items_.size() >= 2 * k_) shrink();
  }

  std::vector<Entry> take_sorted() {
    if (items_.size() > k_) shrink();
    std::sort(items_.begin(), items_.end());
    std::vector<Entry> out;
    out.swap(items_);
    return out;
  }

 private:
  void shrink() {
    std::nth_element(items_.begin(), items_.begin() + (k_ - 1), items_.end());
    threshold_ = items_[k_ - 1];
    items_.resize(k_);
  }

  size_t k_;
  std::vector<Entry> items_;
  Entry threshold_{std::numeric_limits<float>::infinity(), std::numeric_limits<Label>::max()};
};

}  // namespace anisoscan
