// One IVF partition's storage: ids, FastScan-packed codes and (optionally) raw vectors.
// The arrays are either owned or views into a memory-mapped index file; the first change
// to a mapped partition copies it into owned storage (copy on write).
#pragma once

#include <cstdint>
#include <vector>

#include "aligned_vector.h"
#include "fastscan_layout.h"

namespace anisoscan {

class Partition {
 public:
  size_t size() const { return size_; }
  const int64_t* ids() const { return ids_; }
  const uint8_t* codes() const { return codes_; }
  const float* raw() const { return raw_; }  // [size, dim], null without raw data
  const float* raw_row(size_t i, size_t dim) const { return raw_ + i * dim; }

  // Bytes this partition owns (mapped views cost no heap).
  size_t owned_bytes() const {
    return owned_ids_.capacity() * sizeof(int64_t) + owned_codes_.capacity() + owned_raw_.capacity() * sizeof(float);
  }

  void reserve(const FastScanLayout& layout, size_t total, size_t dim, bool with_raw);
  // Appends one vector: its id, its one-code-per-byte codes, its raw row (or null).
  void append(const FastScanLayout& layout, int64_t id, const uint8_t* codes, const float* raw, size_t dim);
  // Removes vector i by moving the last vector into its place.
  void swap_remove(const FastScanLayout& layout, size_t i, size_t dim);
  // Gives back spare capacity.
  void shrink();

  // Points the partition at arrays it does not own (a mapped file); own() copies them in.
  void view(const int64_t* ids, const uint8_t* codes, const float* raw, size_t n);
  void own(const FastScanLayout& layout, size_t dim);

 private:
  void refresh_views();

  size_t size_ = 0;
  const int64_t* ids_ = nullptr;
  const uint8_t* codes_ = nullptr;
  const float* raw_ = nullptr;
  bool mapped_ = false;
  std::vector<int64_t> owned_ids_;
  AlignedVector<uint8_t> owned_codes_;
  std::vector<float> owned_raw_;
};

}  // namespace anisoscan
