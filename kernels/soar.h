// Spilled assignment (SOAR, Sun et al. 2023): each vector's second partition, chosen so that
// its residual there is close to orthogonal to the residual in its first. A query that the
// first residual misjudges (large <q, r>) then tends to be judged well through the second.
#pragma once

#include <cstddef>
#include <cstdint>

#include "array_view.h"

namespace anisoscan {

// spill[i] = the center c' != primary[i] with the smallest
//   ||x - c'||^2 + lambda * <r, x - c'>^2 / ||r||^2,   r = x - c_primary,
// (ties to the lower index; only the first term when r = 0). Needs ncenters >= 2; the
// centers row by row [ncenters, dim], as panels (distances.h), and their squared norms.
void soar_assign(MatrixView<const float> x, const int32_t* primary, const float* center_rows,
                 const float* center_panels, const float* center_norms, size_t ncenters, double lambda, int threads, int32_t* spill);

}  // namespace anisoscan
