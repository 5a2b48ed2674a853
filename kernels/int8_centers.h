// Partition centers as small integers (a scale per center) with a proven bound on each
// product's error, for a first pass that narrows one query's partition ranking. The exact
// ranking takes a float product with every center: a query alone streams all the float
// centers (2.4 MB at 780 x 768), bound by memory. In integers they are a quarter of the
// bytes; every center gets a distance within its bound, and only the centers that could
// still be among the nprobe best get exact float products (IvfIndex::rank_candidates), so
// the ranking is the exact one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "aligned_vector.h"
#include "array_view.h"

namespace anisoscan {

// Dimensions per 32-bit lane: vpmaddubsw multiplies byte pairs into 16 bits (two groups'
// results add there), vpmaddwd adds two of those into 32. Panels hold 64 centers (kPanelRows) of kInt8Group bytes per group of
// dimensions: [panel][group][64 centers][kInt8Group].
constexpr size_t kInt8Group = 4;
inline size_t int8_dims(size_t d) { return (d + kInt8Group - 1) / kInt8Group * kInt8Group; }

// Centers and queries take values in [-63, 63]; queries are stored offset by 64, as unsigned
// bytes. A pair of products stays within 2 * 127 * 63 = 16002, so the AVX2 kernel adds two
// vpmaddubsw results in 16 bits (32004, no saturation) before widening them to 32: three
// multiplies per 64 products, not four, on the one pipe that multiplies integers on Zen 1.
// The bounds loosen by about a third (the query's error doubles; the centers' dominated).
constexpr int kCenterLevels = 63, kQueryLevels = 63, kQueryOffset = 64;
constexpr int kLargestQueryCode = kQueryOffset + kQueryLevels;
static_assert(2 * 2 * kLargestQueryCode * kCenterLevels <= 32767, "two vpmaddubsw sums must fit in 16 bits");

// One query in integers: codes[t] = round(q[t] / scale) + kQueryOffset for the int8_dims(d)
// bytes (kQueryOffset, a zero, past d).
struct Int8Query {
  float scale = 0.f;
  float norm = 0.f;   // >= ||q||
  float error = 0.f;  // >= ||q - scale * (codes - kQueryOffset)||
};
Int8Query quantize_query(const float* q, size_t d, uint8_t* codes);

class Int8Centers {
 public:
  Int8Centers() = default;
  explicit Int8Centers(MatrixView<const float> centers);

  // False when a bound is not finite or the integer sums could overflow: rank exactly then.
  bool usable() const { return usable_; }
  const int8_t* panels() const { return panels_.data(); }
  size_t dims() const { return dims_; }  // int8_dims(d)

  // <q, c_j> from the integer sum over the query's codes that the kernel gives.
  float product(size_t j, int32_t sum, const Int8Query& q) const {
    return q.scale * scales_[j] * static_cast<float>(sum - kQueryOffset * code_sums_[j]);
  }
  // Whether products and bounds with this query stay far inside float's range (they are
  // below ||q|| * the largest center norm): else rank exactly.
  bool bounded(const Int8Query& q) const { return q.norm * largest_norm_ < 1e30f; }
  // |<q, c_j> as the float panels compute it - product(j, ...)| <= this, up to the float
  // rounding of product() itself (relative, below 2^-22), for a bounded() query.
  float error_bound(size_t j, const Int8Query& q) const { return q.norm * errors_[j] + q.error * norms_[j]; }
  size_t memory_bytes() const {
    return panels_.capacity() + (scales_.capacity() + errors_.capacity() + norms_.capacity()) * sizeof(float) +
           code_sums_.capacity() * sizeof(int32_t);
  }

 private:
  AlignedVector<int8_t> panels_;
  std::vector<float> scales_;
  std::vector<float> errors_;  // ||c - c'|| + the float products' own rounding, per ||q||
  std::vector<float> norms_;   // ||c'||, c' = scale * codes
  std::vector<int32_t> code_sums_;
  float largest_norm_ = 0.f;  // >= every ||c_j||
  size_t dims_ = 0;
  bool usable_ = false;
};

// sums[i * stride + j] = sum_t codes[i * dims + t] * C_j[t] for `rows` quantized queries
// against ny centers' panels, stride = panel_count(ny) * kPanelRows (room for whole panels).
// Integers: the scalar reference and the AVX2 kernel agree exactly.
using Int8PanelProducts = void (*)(const uint8_t* codes, size_t rows, size_t dims, const int8_t* panels, size_t ny,
                                   int32_t* sums);
void int8_panel_products_scalar(const uint8_t* codes, size_t rows, size_t dims, const int8_t* panels, size_t ny,
                                int32_t* sums);
void int8_panel_products_avx2(const uint8_t* codes, size_t rows, size_t dims, const int8_t* panels, size_t ny,
                              int32_t* sums);
// The AVX2 kernel where the CPU has AVX2 and ANISOSCAN_SIMD allows it; else null.
Int8PanelProducts int8_panel_products();

}  // namespace anisoscan
