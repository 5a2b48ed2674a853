#include "exact_search.h"

#include <limits>
#include <vector>

#include "distances.h"
#include "parallel.h"
#include "topk.h"

namespace anisoscan {

void exact_search(MatrixView<const float> base, MatrixView<const float> queries, Metric metric,
                  size_t k, int threads, int64_t* ids, float* distances) {
  const size_t d = base.cols;
  std::vector<float> base_copy, query_copy;
  if (metric == Metric::kCosine) {
    base_copy.assign(base.data, base.data + base.rows * d);
    query_copy.assign(queries.data, queries.data + queries.rows * d);
    normalize_rows({base_copy.data(), base.rows, d});
    normalize_rows({query_copy.data(), queries.rows, d});
    base.data = base_copy.data();
    queries.data = query_copy.data();
  }
  const float missing = metric == Metric::kL2 ? std::numeric_limits<float>::infinity()
                                              : -std::numeric_limits<float>::infinity();
  parallel_for(queries.rows, threads, 1, [&](size_t b, size_t e, int) {
    for (size_t qi = b; qi < e; ++qi) {
      TopK<int64_t> heap(k);
      const float* q = queries.row(qi);
      for (size_t i = 0; i < base.rows; ++i)
        heap.push(internal_distance(metric, q, base.row(i), d), static_cast<int64_t>(i));
      auto best = heap.take_sorted();
      for (size_t j = 0; j < k; ++j) {
        ids[qi * k + j] = j < best.size() ? best[j].label : -1;
        distances[qi * k + j] = j < best.size() ? to_milvus_distance(metric, best[j].distance) : missing;
      }
    }
  });
}

}  // namespace anisoscan
