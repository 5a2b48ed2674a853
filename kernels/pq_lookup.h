// A query's float lookup table against a quantizer's codebooks: what FastScan then quantizes.
#pragma once

#include "anisotropic_pq.h"

namespace anisoscan {

// Float table [num_subspaces][16] of partial internal distances:
// IP: -<q_s, c_sk>; L2: ||q_s - c_sk||^2 (q already made relative to the partition center).
// `query` has num_subspaces * sub_dim coordinates, zero past dim.
void build_float_lut(const ProductQuantizer& pq, const float* query, bool l2, float* lut);

}  // namespace anisoscan
