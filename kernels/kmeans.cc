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

// The quantizer's k-means has at most 16 centers of a few dimensions each, where the general
// assignment (panels of 64 centers, an argmin per point) wastes most of its work. Here a block
// of points is held transposed, [dim][block], and each center updates the whole block's
// best distance and center with vector operations over points, without branches.
constexpr size_t kFewCenters = 16;

ANISOSCAN_MULTIVERSION
void assign_to_few(MatrixView<const float> x, const std::vector<float>& centers, size_t k, int32_t* assign) {
  constexpr size_t kBlock = 64;
  const size_t d = x.cols;
  std::vector<float> xt(d * kBlock, 0.f);
  for (size_t b = 0; b < x.rows; b += kBlock) {
    const size_t nb = std::min(kBlock, x.rows - b);
    for (size_t i = 0; i < nb; ++i)
      for (size_t j = 0; j < d; ++j) xt[j * kBlock + i] = x.row(b + i)[j];
    float best[kBlock], dist[kBlock];
    int32_t arg[kBlock];
    std::fill(best, best + kBlock, std::numeric_limits<float>::infinity());
    std::fill(arg, arg + kBlock, 0);
    for (size_t c = 0; c < k; ++c) {
      std::fill(dist, dist + kBlock, 0.f);
      for (size_t j = 0; j < d; ++j) {
        const float cj = centers[c * d + j];
        const float* xj = xt.data() + j * kBlock;
        for (size_t i = 0; i < kBlock; ++i) {
          const float diff = xj[i] - cj;
          dist[i] += diff * diff;
        }
      }
      const int32_t label = static_cast<int32_t>(c);
      for (size_t i = 0; i < kBlock; ++i) {  // strict: ties keep the lower center, as assign_nearest
        const int32_t closer = -static_cast<int32_t>(dist[i] < best[i]);  // all ones or zero
        arg[i] = (arg[i] & ~closer) | (label & closer);
        best[i] = std::min(best[i], dist[i]);
      }
    }
    std::copy(arg, arg + nb, assign + b);
  }
}

}  // namespace

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
    if (!p.spherical && k <= kFewCenters)
      assign_to_few(x, centers, k, assign.data());
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
    if (p.spherical) normalize_rows(cview);
  }
  return centers;
}

}  // namespace anisoscan
