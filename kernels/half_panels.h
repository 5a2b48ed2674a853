// Partition centers in half precision (IEEE binary16), in the panel layout of distances.h:
// half the bytes of the float panels. Ranking the centers for one query alone streams every
// center from memory and is bound by that, not by arithmetic; a first pass over these
// panels, whose error per product is bounded, narrows the centers that the exact float
// products then rank (IvfIndex::rank_partitions), so the result is the exact ranking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "aligned_vector.h"
#include "array_view.h"

namespace anisoscan {

// Round to nearest even, overflowing to infinity; exact in the other direction.
uint16_t half_from_float(float value);
float float_from_half(uint16_t half);

class HalfPanels {
 public:
  HalfPanels() = default;
  explicit HalfPanels(MatrixView<const float> rows);

  // False when a center does not fit binary16's range: the exact pass ranks alone then.
  bool usable() const { return usable_; }
  const uint16_t* panels() const { return panels_.data(); }
  // |<q, c_j> in float from the float panels - the same from these| <= ||q|| * error_bound(j),
  // in any order of summation of either.
  float error_bound(size_t j) const { return bounds_[j]; }
  size_t memory_bytes() const { return panels_.capacity() * sizeof(uint16_t) + bounds_.capacity() * sizeof(float); }

 private:
  AlignedVector<uint16_t> panels_;  // 16-byte loads of 8 lanes
  std::vector<float> bounds_;
  bool usable_ = false;
};

// out[j] ~ <x, c_j> for one row x (d values) against ny centers held as half panels:
// per center, fused multiply-adds in dimension order. The scalar reference and the AVX2
// kernel (F16C, FMA) give the same bits.
void half_panel_products_scalar(const float* x, size_t d, const uint16_t* panels, size_t ny, float* out);
void half_panel_products_avx2(const float* x, size_t d, const uint16_t* panels, size_t ny, float* out);
// The AVX2 kernel where the CPU has AVX2, FMA and F16C and ANISOSCAN_SIMD allows it; else null.
using HalfPanelProducts = void (*)(const float*, size_t, const uint16_t*, size_t, float*);
HalfPanelProducts half_panel_products();

}  // namespace anisoscan
