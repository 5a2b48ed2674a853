// Exhaustive search: the ground truth every approximate search is checked against.
#pragma once

#include <cstdint>

#include "array_view.h"
#include "metric.h"

namespace anisoscan {

// Top-k of `base` rows for each query, [queries.rows, k] each, Milvus distance semantics,
// ties broken by the lower row number. Uses the same arithmetic as the re-rank path.
void exact_search(MatrixView<const float> base, MatrixView<const float> queries, Metric metric,
                  size_t k, int threads, int64_t* ids, float* distances);

}  // namespace anisoscan
