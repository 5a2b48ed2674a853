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
  std::vector<uint8_t> table;  // [padded sub-spaces][16]; padding rows are zero
  std::vector<float> row_min;  // [sub-spaces]: what each row had subtracted before scaling
  std::vector<float> row_max;  // [sub-spaces]: each row's largest entry (the quantizer's scratch)

  // The largest entry is capped so that the sum over all sub-spaces fits in uint16:
  // min(255, 65535 / padded sub-spaces). Accumulators can then never overflow.
  static uint32_t entry_cap(size_t padded_subspaces);

  // Sizes table, row_min and row_max for num_subspaces, zeroes the padding row, keeps the storage.
  void reset(size_t num_subspaces);
};

// The scalar reference: quantizes a float table [num_subspaces][16] into `out`, reusing its
// storage. Each SIMD level has its own (FastScanKernel::quantize_lut) giving identical bytes.
void quantize_lut(const float* lut, size_t num_subspaces, QuantizedLut& out);

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
  float range = 0.f;
  // The offset as four sums of every fourth sub-space, added in one fixed order by every
  // level: one chain of additions took ~1,200 cycles at 384 sub-spaces.
  double sums[4] = {0.0, 0.0, 0.0, 0.0};
  float* row_max = q.row_max.data();
  Row::minmax_rows(lut, m, row_min, row_max);
  for (size_t s = 0; s < m; ++s) range = row_max[s] - row_min[s] > range ? row_max[s] - row_min[s] : range;
  size_t s = 0;
  for (; s + 4 <= m; s += 4)
    for (size_t j = 0; j < 4; ++j) sums[j] += row_min[s + j];
  for (; s < m; ++s) sums[s % 4] += row_min[s];
  const uint32_t cap = QuantizedLut::entry_cap(FastScanLayout{m}.padded_subspaces());
  q.scale = range > 0.f ? static_cast<float>(cap) / range : 1.f;
  q.offset = static_cast<float>((sums[0] + sums[1]) + (sums[2] + sums[3]));
  uint8_t* table = q.table.data();
  for (size_t s = 0; s < m; ++s)
    Row::quantize(lut + s * kCodewords, row_min[s], q.scale, static_cast<float>(cap), table + s * kCodewords);
}

// Row::minmax_rows for levels that reduce one row at a time with Row::minmax(row, lo, hi).
template <typename Row>
struct RowByRowMinmax {
  static void minmax_rows(const float* lut, size_t m, float* lo, float* hi) {
    for (size_t s = 0; s < m; ++s) Row::minmax(lut + s * kCodewords, lo[s], hi[s]);
  }
};

}  // namespace anisoscan
