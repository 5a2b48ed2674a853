#include "kmeans.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

#include "distances.h"
#include "multiversion.h"

namespace anisoscan {

namespace {

// The quantizer's k-means has at most 16 centers of at most 16 dimensions each, where the
// general assignment (panels of 64 centers, an argmin per point) wastes most of its work.
// Here the points themselves are held as panels (to_panels: blocks of kPanelRows points
// transposed, [dim][block]; a copy of the points, for few dimensions only), and each center
// updates a whole block's best distance and center with vector operations over points,
// without branches.
constexpr size_t kFewCenters = 16, kFewDims = 16;

ANISOSCAN_MULTIVERSION
void assign_to_few(const std::vector<float>& xt, size_t n, size_t d, const std::vector<float>& centers, size_t k,
                   int32_t* assign) {
  for (size_t b = 0; b < n; b += kPanelRows) {
    const float* block = xt.data() + b * d;  // panel b / kPanelRows starts at (b / kPanelRows) * d * kPanelRows
    float best[kPanelRows], dist[kPanelRows];
    int32_t arg[kPanelRows];
    // Nothing is zeroed or filled first (fills compiled to rep stos, most of this loop's time):
    // the first dimension and the first center set the starting values.
    for (size_t c = 0; c < k; ++c) {
      for (size_t j = 0; j < d; ++j) {
        const float cj = centers[c * d + j];
        const float* xj = block + j * kPanelRows;
        for (size_t i = 0; i < kPanelRows; ++i) {
          const float diff = xj[i] - cj;
          dist[i] = (j ? dist[i] : 0.f) + diff * diff;
        }
      }
      const int32_t label = static_cast<int32_t>(c);
      for (size_t i = 0; i < kPanelRows; ++i) {  // strict: ties keep the lower center, as assign_nearest
        const float before = c ? best[i] : std::numeric_limits<float>::infinity();
        const int32_t closer = -static_cast<int32_t>(dist[i] < before);  // all ones or zero
        arg[i] = ((c ? arg[i] : 0) & ~closer) | (label & closer);
        best[i] = std::min(before, dist[i]);
      }
    }
    std::copy(arg, arg + std::min(kPanelRows, n - b), assign + b);
  }
}

}  // namespace

std::vector<float> kmeans(MatrixView<const float> x, const KMeansParams& p) {
  const size_t n = x.rows, d = x.cols, k = p.k;
  if (k == 0 || n < k) throw std::invalid_argument("kmeans: need at least k points");
  if (d == 0) throw std::invalid_argument("kmeans: points need at least one dimension");
  std::mt19937_64 rng(p.seed);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);

  std::vector<float> centers(k * d);
  for (size_t c = 0; c < k; ++c)
    std::copy(x.row(order[c]), x.row(order[c]) + d, centers.begin() + c * d);

  const bool few = !p.spherical && k <= kFewCenters && d <= kFewDims;
  const std::vector<float> xt = few ? to_panels(x) : std::vector<float>();
  std::vector<int32_t> assign(n);
  std::vector<double> sums(k * d);
  std::vector<size_t> counts(k);
  for (int it = 0; it < p.iterations; ++it) {
    if (few)
      assign_to_few(xt, n, d, centers, k, assign.data());
    else
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
  }
  return centers;
}

}  // namespace anisoscan
