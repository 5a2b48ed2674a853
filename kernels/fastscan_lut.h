// Lookup tables for FastScan: float distances per (sub-space, codeword), quantized to uint8
// with one scale per table and one offset per sub-space.
#pragma once

#include <cstdint>
#include <vector>

#include "anisotropic_pq.h"

namespace anisoscan {

// Float table [num_subspaces][16] of partial internal distances:
// IP: -<q_s, c_sk>; L2: ||q_s - c_sk||^2 (q already made relative to the partition center).
void build_float_lut(const ProductQuantizer& pq, const float* query, bool l2, float* lut);

struct QuantizedLut {
  std::vector<uint8_t> table;  // [padded sub-spaces][16]; padding rows are zero
  float scale = 1.f;            // quantized units per unit of distance
  float offset = 0.f;           // sum of the per-sub-space minima

  // The largest entry is capped so that the sum over all sub-spaces fits in uint16:
  // min(255, 65535 / padded sub-spaces). Accumulators can then never overflow.
  static uint32_t entry_cap(size_t padded_subspaces);

  float distance(uint32_t quantized) const { return offset + static_cast<float>(quantized) / scale; }

  // Scores below the returned limit may beat `worst`; everything at or above cannot
  // (one unit of slack absorbs float rounding). 65536 admits every score.
  uint32_t limit_for(float worst) const;
};

QuantizedLut quantize_lut(const float* lut, size_t num_subspaces);

}  // namespace anisoscan
