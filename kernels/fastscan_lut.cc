#include "fastscan_lut.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "fastscan_layout.h"

namespace anisoscan {

void build_float_lut(const ProductQuantizer& pq, const float* query, bool l2, float* lut) {
  const size_t ds = pq.sub_dim(), d = pq.dim();
  float slice[kMaxSubDim];
  for (size_t s = 0; s < pq.num_subspaces(); ++s) {
    // The last sub-space may stick out past dim: its padded coordinates are zero.
    for (size_t t = 0; t < ds; ++t) slice[t] = s * ds + t < d ? query[s * ds + t] : 0.f;
    // Inline loops: sub-spaces are a few floats, too short to pay for a call each.
    for (size_t k = 0; k < kCodewords; ++k) {
      const float* c = pq.codeword(s, k);
      float acc = 0.f;
      for (size_t t = 0; t < ds; ++t) acc += l2 ? (slice[t] - c[t]) * (slice[t] - c[t]) : slice[t] * c[t];
      lut[s * kCodewords + k] = l2 ? acc : -acc;
    }
  }
}

uint32_t QuantizedLut::entry_cap(size_t padded_subspaces) {
  return static_cast<uint32_t>(std::min<size_t>(255, 65535 / std::max<size_t>(padded_subspaces, 1)));
}

uint32_t QuantizedLut::limit_for(float worst) const {
  if (!(worst < std::numeric_limits<float>::infinity())) return 65536;
  double x = (static_cast<double>(worst) - offset) * scale;
  if (x < 0.0) return 0;
  if (x >= 65535.0) return 65536;
  return static_cast<uint32_t>(std::ceil(x)) + 1;
}

QuantizedLut quantize_lut(const float* lut, size_t m) {
  FastScanLayout layout{m};
  QuantizedLut q;
  q.table.assign(layout.padded_subspaces() * kCodewords, 0);
  std::vector<float> mins(m);
  float range = 0.f;
  double offset = 0.0;
  for (size_t s = 0; s < m; ++s) {
    const float* row = lut + s * kCodewords;
    mins[s] = *std::min_element(row, row + kCodewords);
    range = std::max(range, *std::max_element(row, row + kCodewords) - mins[s]);
    offset += mins[s];
  }
  const uint32_t cap = QuantizedLut::entry_cap(layout.padded_subspaces());
  q.scale = range > 0.f ? static_cast<float>(cap) / range : 1.f;
  q.offset = static_cast<float>(offset);
  for (size_t s = 0; s < m; ++s)
    for (size_t k = 0; k < kCodewords; ++k) {
      float v = std::nearbyint((lut[s * kCodewords + k] - mins[s]) * q.scale);
      q.table[s * kCodewords + k] = static_cast<uint8_t>(std::clamp(v, 0.f, static_cast<float>(cap)));
    }
  return q;
}

}  // namespace anisoscan
