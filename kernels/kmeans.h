// Lloyd's k-means, used for the IVF partitions and for the PQ codebooks' starting point.
#pragma once

#include <cstdint>
#include <vector>

#include "array_view.h"

namespace anisoscan {

struct KMeansParams {
  size_t k = 0;
  int iterations = 10;
  bool spherical = false;  // assignment by direction (assign_nearest); centers stay the means
  uint64_t seed = 1234;
  int threads = 0;
};

// Returns the k centers as a row-major [k, x.cols] array. Initialised from k distinct
// random points; an empty cluster is re-seeded by splitting the largest one.
std::vector<float> kmeans(MatrixView<const float> x, const KMeansParams& params);

}  // namespace anisoscan
