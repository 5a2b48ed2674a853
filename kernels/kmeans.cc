#include "kmeans.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>

#include "distances.h"

namespace anisoscan {

std::vector<float> kmeans(MatrixView<const float> x, const KMeansParams& p) {
  const size_t n = x.rows, d = x.cols, k = p.k;
  if (k == 0 || n < k) throw std::invalid_argument("kmeans: need at least k points");
  std::mt19937_64 rng(p.seed);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);

  std::vector<float> centers(k * d);
  for (size_t c = 0; c < k; ++c)
    std::copy(x.row(order[c]), x.row(order[c]) + d, centers.begin() + c * d);
  MatrixView<float> cview{centers.data(), k, d};
  if (p.spherical) normalize_rows(cview);

  std::vector<int32_t> assign(n);
  std::vector<double> sums(k * d);
  std::vector<size_t> counts(k);
  for (int it = 0; it < p.iterations; ++it) {
    assign_nearest(x, {centers.data(), k, d}, p.spherical, assign.data(), nullptr, p.threads);
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    for (size_t i = 0; i < n; ++i) {
      size_t c = static_cast<size_t>(assign[i]);
      ++counts[c];
      const float* xi = x.row(i);
      double* s = sums.data() + c * d;
      for (size_t t = 0; t < d; ++t) s[t] += xi[t];
    }
    for (size_t c = 0; c < k; ++c) {
      if (counts[c] == 0) continue;
      for (size_t t = 0; t < d; ++t) centers[c * d + t] = static_cast<float>(sums[c * d + t] / counts[c]);
    }
    // Split the largest cluster for each empty one, with a small symmetric perturbation.
    for (size_t c = 0; c < k; ++c) {
      if (counts[c] != 0) continue;
      size_t big = static_cast<size_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
      std::uniform_real_distribution<float> jitter(-1e-4f, 1e-4f);
      for (size_t t = 0; t < d; ++t) {
        float e = jitter(rng);
        centers[c * d + t] = centers[big * d + t] * (1.f + e);
        centers[big * d + t] *= (1.f - e);
      }
      counts[c] = counts[big] / 2;
      counts[big] -= counts[c];
    }
    if (p.spherical) normalize_rows(cview);
  }
  return centers;
}

}  // namespace anisoscan
