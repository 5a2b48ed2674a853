// Bounded max-heap keeping the k smallest (distance, label) pairs. Ties go to the
// smaller label so that results are deterministic across SIMD levels and threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
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

// Top-k by a reservoir: candidates are appended while they beat the threshold, and only
// when 2k have gathered are they cut back to the best k (nth_element), which also tightens
// the threshold. Pushing costs a compare and an append instead of a heap update; the result
// equals TopK's for the same pushes. Each candidate is held as one 128-bit integer,
// (distance made order-preserving) << 64 | label, so that ordering it is a single integer
// compare: selection is the hot spot of searches with a large reorder_k.
template <typename Label>
class ReservoirTopK {
  static_assert(std::is_unsigned<Label>::value && sizeof(Label) <= 8, "labels must be unsigned, at most 64 bits");
  using Key = unsigned __int128;
  static constexpr int kLabelBits = 64;

 public:
  using Entry = typename TopK<Label>::Entry;

  explicit ReservoirTopK(size_t k) : k_(k), keys_(2 * k) {}
  // Empty, for the best k: its storage is kept where it suffices, given back where it is far
  // larger (a thread's reservoirs outlive a call with a large reorder_k).
  void reset(size_t k) {
    k_ = k;
    if (keys_.capacity() > 8 * k + 64) keys_ = std::vector<Key>();
    keys_.resize(2 * k);
    count_ = 0;
    threshold_ = ~Key{0};
    worst_ = std::numeric_limits<float>::infinity();
  }

  size_t size() const { return std::min(count_, k_); }
  // The storage a reservoir for the best k holds.
  static size_t bytes_for(size_t k) { return sizeof(ReservoirTopK) + 2 * k * sizeof(Key); }
  // Distance a candidate must beat (or tie with a smaller label) to be kept.
  float worst() const { return worst_; }

  void push(float distance, Label label) {
    const Key key = make_key(distance, label);
    if (!(key < threshold_) || k_ == 0) return;
    keys_[count_++] = key;
    if (count_ == 2 * k_) shrink();
  }

  // The best k in no particular order; empties the reservoir.
  std::vector<Entry> take() {
    if (count_ > k_) shrink();
    std::vector<Entry> out;
    out.reserve(count_);
    for (size_t i = 0; i < count_; ++i) out.push_back(entry_of(keys_[i]));
    count_ = 0;
    return out;
  }

 private:
  // Float bits mapped so that unsigned order is numeric order (-0 is folded into +0 first,
  // as the float compare treats them as equal). Distances are never NaN.
  static uint32_t order_bits(float distance) {
    uint32_t bits;
    const float folded = distance + 0.f;
    std::memcpy(&bits, &folded, sizeof bits);
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
  }
  static float distance_of(uint32_t ordered) {
    const uint32_t bits = (ordered & 0x80000000u) ? ordered & 0x7FFFFFFFu : ~ordered;
    float distance;
    std::memcpy(&distance, &bits, sizeof distance);
    return distance;
  }
  static Key make_key(float distance, Label label) { return (Key{order_bits(distance)} << kLabelBits) | Key{label}; }
  static Entry entry_of(Key key) {
    return {distance_of(static_cast<uint32_t>(key >> kLabelBits)), static_cast<Label>(key)};
  }

  void shrink() {
    std::nth_element(keys_.begin(), keys_.begin() + (k_ - 1), keys_.begin() + count_);
    threshold_ = keys_[k_ - 1];
    worst_ = entry_of(threshold_).distance;
    count_ = k_;
  }

  size_t k_;
  std::vector<Key> keys_;
  size_t count_ = 0;
  Key threshold_ = ~Key{0};
  float worst_ = std::numeric_limits<float>::infinity();
};

// The k smallest of values[0, n) as (value, index), smallest first, ties to the smaller
// index. A histogram over [min, max] finds the bins holding the k smallest, so that only
// those few values are sorted: for picking the nearest of many partition centers.
std::vector<std::pair<float, uint32_t>> smallest_k(const float* values, size_t n, size_t k);

}  // namespace anisoscan
