// Lookup tables for FastScan: float distances per (sub-space, codeword), quantized to uint8
// with one scale per table and one offset per sub-space.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fastscan_layout.h"

namespace anisoscan {

// What reading a quantized score needs: one scale per table, the sum of the per-sub-space
// minima as offset.
struct LutScale {
  float scale = 1.f;   // quantized units per unit of distance
  float offset = 0.f;  // sum of the per-sub-space minima

  float distance(uint32_t quantized) const { return offset + static_cast<float>(quantized) / scale; }

  // Scores below the returned limit may beat `worst`; everything at or above cannot
  // (one unit of slack absorbs float rounding). 65536 admits every score.
  uint32_t limit_for(float worst) const;
};

struct QuantizedLut : LutScale {
  // [padded sub-spaces][16]; padding rows are zero. The scale keeps the entries of each pair
  // of rows (2p, 2p + 1) within 255 together, so that the kernels add a pair's two lookups
  // in bytes, and all rows' largest entries within 65535, so that no 16-bit sum overflows.
  std::vector<uint8_t> table;
  std::vector<float> row_min;  // [sub-spaces]: what each row had subtracted before scaling
  std::vector<float> row_max;  // [sub-spaces]: each row's largest entry (the quantizer's scratch)

  // Sizes table, row_min and row_max for num_subspaces, zeroes the padding row, keeps the storage.
  void reset(size_t num_subspaces);
};

// The scalar reference: quantizes a float table [num_subspaces][16] into `out`, reusing its
// storage. Each SIMD level has its own (FastScanKernel::quantize_lut) giving identical bytes.
void quantize_lut(const float* lut, size_t num_subspaces, QuantizedLut& out);

// No entry passes this (a guard: the scale already keeps pairs of entries within 255).
constexpr float kLargestEntry = 254.f;

// The quantization rule, with the per-row work supplied by one instruction-set level:
//   Row::minmax_rows(lut, m, lo, hi)   smallest and largest of each row's 16 floats;
//   Row::quantize(row, lo, scale, top, out)   out[k] = min((row[k] - lo) * scale + 0.5, top),
//   truncated to uint8, with exactly these IEEE operations (no fused multiply-add).
// Each level then produces the same bytes, scale and offset.
// Kept free of std:: calls: it is instantiated in files compiled for one ISA, and inline
// library code there could be merged into generic callers.
template <typename Row>
void quantize_lut_rows(const float* lut, size_t m, QuantizedLut& q) {
  q.reset(m);
  float* row_min = q.row_min.data();
  float* row_max = q.row_max.data();
  Row::minmax_rows(lut, m, row_min, row_max);
  // The offset as four sums of every fourth sub-space, added in one fixed order by every
  // level: one chain of additions took ~1,200 cycles at 384 sub-spaces.
  double sums[4] = {0.0, 0.0, 0.0, 0.0};
  size_t s = 0;
  for (; s + 4 <= m; s += 4)
    for (size_t j = 0; j < 4; ++j) sums[j] += row_min[s + j];
  for (; s < m; ++s) sums[s % 4] += row_min[s];
  q.offset = static_cast<float>((sums[0] + sums[1]) + (sums[2] + sums[3]));
  // An entry rounds to at most range * scale + 1/2: a pair's two stay within 254 + 1, and all
  // rows' largest within (65535 - m) + m / 2.
  double widest_pair = 0.0, total = 0.0;
  for (size_t p = 0; 2 * p < m; ++p) {
    const double pair = static_cast<double>(row_max[2 * p] - row_min[2 * p]) +
                        (2 * p + 1 < m ? static_cast<double>(row_max[2 * p + 1] - row_min[2 * p + 1]) : 0.0);
    widest_pair = pair > widest_pair ? pair : widest_pair;
    total += pair;
  }
  const double by_pair = 254.0 / widest_pair, by_total = (65535.0 - static_cast<double>(m)) / total;
  q.scale = widest_pair > 0.0 ? static_cast<float>(by_pair < by_total ? by_pair : by_total) : 1.f;
  uint8_t* table = q.table.data();
  for (size_t s = 0; s < m; ++s)
    Row::quantize(lut + s * kCodewords, row_min[s], q.scale, kLargestEntry, table + s * kCodewords);
}

// Row::minmax_rows for levels that reduce one row at a time with Row::minmax(row, lo, hi).
template <typename Row>
struct RowByRowMinmax {
  static void minmax_rows(const float* lut, size_t m, float* lo, float* hi) {
    for (size_t s = 0; s < m; ++s) Row::minmax(lut + s * kCodewords, lo[s], hi[s]);
  }
};

}  // namespace anisoscan
