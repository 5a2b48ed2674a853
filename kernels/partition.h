// One IVF partition's storage: ids, FastScan-packed codes and (optionally) each vector's
// re-rank copy, row_bytes bytes a row (refine.h says what the bytes are).
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
  const uint8_t* raw() const { return raw_; }  // [size, row_bytes], null without raw data
  const uint8_t* raw_row(size_t i, size_t row_bytes) const { return raw_ + i * row_bytes; }

  // Bytes this partition owns (mapped views cost no heap).
  size_t owned_bytes() const {
    return owned_ids_.capacity() * sizeof(int64_t) + owned_codes_.capacity() + owned_raw_.capacity();
  }

  void reserve(const FastScanLayout& layout, size_t total, size_t row_bytes);
  // Appends one vector: its id, its one-code-per-byte codes, its re-rank row (null: none).
  void append(const FastScanLayout& layout, int64_t id, const uint8_t* codes, const uint8_t* raw, size_t row_bytes);
  // Removes vector i by moving the last vector into its place.
  void swap_remove(const FastScanLayout& layout, size_t i, size_t row_bytes);
  // Gives back spare capacity.
  void shrink();

  // Points the partition at arrays it does not own (a mapped file); own() copies them in.
  void view(const int64_t* ids, const uint8_t* codes, const uint8_t* raw, size_t n);
  void own(const FastScanLayout& layout, size_t row_bytes);

 private:
  void refresh_views();

  size_t size_ = 0;
  const int64_t* ids_ = nullptr;
  const uint8_t* codes_ = nullptr;
  const uint8_t* raw_ = nullptr;
  bool mapped_ = false;
  std::vector<int64_t> owned_ids_;
  AlignedVector<uint8_t> owned_codes_;
  std::vector<uint8_t> owned_raw_;
};

}  // namespace anisoscan
