#include "half_panels.h"

#include <cmath>
#include <cstring>

#include "distances.h"
#include "fastscan.h"

namespace anisoscan {

uint16_t half_from_float(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;  // NaN
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;  // 65520 and up round to infinity
  if (magnitude < 0x38800000u)  // below 2^-14: a multiple of 2^-24, rounded to nearest even
    return sign | static_cast<uint16_t>(std::nearbyint(std::fabs(value) * 16777216.f));
  // Rebias the exponent (127 -> 15) and round the mantissa from 23 to 10 bits, ties to even;
  // a carry moves into the exponent, as it should.
  const uint32_t rounded = magnitude + 0xFFFu + ((magnitude >> 13) & 1u);
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

float float_from_half(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16, exponent = (half >> 10) & 0x1Fu,
                 mantissa = half & 0x3FFu;
  if (exponent == 0) {
    const float v = static_cast<float>(mantissa) * (1.f / 16777216.f);
    return sign ? -v : v;
  }
  const uint32_t bits = sign | (exponent == 31 ? 0x7F800000u : (exponent + 112) << 23) | (mantissa << 13);
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

HalfPanels::HalfPanels(MatrixView<const float> rows) : bounds_(rows.rows) {
  const size_t d = rows.cols;
  // Either product's rounding, any order, d terms and the products themselves: at most
  // (d + 2) * 2^-24 * sum |q_t c_t| <= that times ||q|| ||c|| (Cauchy-Schwarz).
  const double rounding = static_cast<double>(d + 2) * std::ldexp(1.0, -24);
  std::vector<float> halves(rows.rows * d);
  usable_ = true;
  for (size_t j = 0; j < rows.rows; ++j) {
    double err = 0.0, norm = 0.0, half_norm = 0.0;
    for (size_t t = 0; t < d; ++t) {
      const float c = rows.row(j)[t], h = float_from_half(half_from_float(c));
      halves[j * d + t] = h;
      err += (static_cast<double>(c) - h) * (static_cast<double>(c) - h);
      norm += static_cast<double>(c) * c;
      half_norm += static_cast<double>(h) * h;
    }
    const double bound = std::sqrt(err) + rounding * (std::sqrt(norm) + std::sqrt(half_norm));
    bounds_[j] = static_cast<float>(bound * 1.001);  // rounded up, with room for the float rounding
    usable_ = usable_ && std::isfinite(bounds_[j]);
  }
  const std::vector<float> panels = to_panels({halves.data(), rows.rows, d});
  panels_.resize(panels.size());
  for (size_t i = 0; i < panels.size(); ++i) panels_[i] = half_from_float(panels[i]);  // exact: already halves
}

void half_panel_products_scalar(const float* x, size_t d, const uint16_t* panels, size_t ny, float* out) {
  for (size_t j = 0; j < ny; ++j) {
    const uint16_t* column = panels + (j / kPanelRows) * kPanelRows * d + j % kPanelRows;
    float sum = 0.f;
    for (size_t t = 0; t < d; ++t) sum = std::fma(x[t], float_from_half(column[t * kPanelRows]), sum);
    out[j] = sum;
  }
}

HalfPanelProducts half_panel_products() {
#if defined(ANISOSCAN_X86_KERNELS)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  if (has && active_simd_level() != SimdLevel::kScalar) return half_panel_products_avx2;
#endif
  return nullptr;
}

}  // namespace anisoscan
