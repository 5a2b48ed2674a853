#include "topk.h"

#include "multiversion.h"

namespace anisoscan {

ANISOSCAN_MULTIVERSION
std::vector<std::pair<float, uint32_t>> smallest_k(const float* values, size_t n, size_t k) {
  std::vector<std::pair<float, uint32_t>> picked;
  if (k == 0 || n == 0) return picked;
  float lo = values[0], hi = values[0];
#pragma omp simd reduction(min : lo) reduction(max : hi)
  for (size_t i = 1; i < n; ++i) {  // ternaries, not std::min/max: these vectorize
    lo = values[i] < lo ? values[i] : lo;
    hi = values[i] > hi ? values[i] : hi;
  }
  constexpr size_t kBins = 256;
  const float per_unit = hi > lo ? static_cast<float>(kBins) / (hi - lo) : 0.f;
  // Non-decreasing in the value, so the bins up to the last one needed hold a prefix of the order.
  std::vector<uint8_t> bin(n);
  for (size_t i = 0; i < n; ++i) {
    const float x = (values[i] - lo) * per_unit;
    bin[i] = static_cast<uint8_t>(static_cast<int32_t>(x < kBins - 1.f ? x : kBins - 1.f));
  }
  uint32_t count[kBins] = {};
  for (size_t i = 0; i < n; ++i) ++count[bin[i]];
  size_t last = 0, below = count[0];  // bins [0, last] hold at least k values
  while (below < k && last + 1 < kBins) below += count[++last];
  for (size_t i = 0; i < n; ++i)
    if (bin[i] <= last) picked.emplace_back(values[i], static_cast<uint32_t>(i));
  std::sort(picked.begin(), picked.end());  // few beyond k: the last bin's share
  picked.resize(std::min(k, picked.size()));
  return picked;
}

}  // namespace anisoscan
