#include "int8_centers.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "distances.h"
#include "fastscan.h"
#include "multiversion.h"

namespace anisoscan {

namespace {

// Rounds values / scale to integers in [-levels, levels] (all zero for a zero or subnormal
// scale) and answers ||values - scale * those||, computed in double.
double quantize(const float* values, size_t d, int levels, float scale, int* out) {
  const bool zero = !(scale >= std::numeric_limits<float>::min());
  double err = 0.0;
  for (size_t t = 0; t < d; ++t) {
    const int v = zero ? 0 : static_cast<int>(std::clamp(std::nearbyint(values[t] / scale), -float(levels), float(levels)));
    out[t] = v;
    const double diff = static_cast<double>(values[t]) - static_cast<double>(scale) * v;
    err += diff * diff;
  }
  return std::sqrt(err);
}

float largest_magnitude(const float* values, size_t d) {
  float m = 0.f;
  for (size_t t = 0; t < d; ++t) m = std::max(m, std::fabs(values[t]));
  return m;
}

double norm(const float* values, size_t d) {
  double s = 0.0;
  for (size_t t = 0; t < d; ++t) s += static_cast<double>(values[t]) * values[t];
  return std::sqrt(s);
}

constexpr double kRoundUp = 1.001;  // room for the float rounding of the bounds' own arithmetic

// The float at or above x: a bound stored in float never falls below its value in double
// (rounding to nearest could, by up to half a unit, which a subnormal would not absorb).
float float_at_least(double x) {
  const float f = static_cast<float>(x);
  return static_cast<double>(f) < x ? std::nextafter(f, std::numeric_limits<float>::infinity()) : f;
}

}  // namespace

// Vectorized: it runs once per query (the reductions' order differs from a serial loop's by
// far less than kRoundUp allows).
ANISOSCAN_MULTIVERSION
Int8Query quantize_query(const float* q, size_t d, uint8_t* codes) {
  float largest = 0.f;
#pragma omp simd reduction(max : largest)
  for (size_t t = 0; t < d; ++t) largest = std::fabs(q[t]) > largest ? std::fabs(q[t]) : largest;
  Int8Query out;
  out.scale = largest / kQueryLevels;
  const float inverse = out.scale >= std::numeric_limits<float>::min() ? 1.f / out.scale : 0.f;  // else all zero
  const float top = kQueryLevels;
  double err = 0.0, norm_sq = 0.0;
#pragma omp simd reduction(+ : err, norm_sq)
  for (size_t t = 0; t < d; ++t) {
    float v = std::nearbyint(q[t] * inverse);
    v = v > top ? top : (v < -top ? -top : v);
    codes[t] = static_cast<uint8_t>(static_cast<int>(v) + kQueryOffset);
    const double diff = static_cast<double>(q[t]) - static_cast<double>(out.scale) * v;
    err += diff * diff;
    norm_sq += static_cast<double>(q[t]) * q[t];
  }
  for (size_t t = d; t < int8_dims(d); ++t) codes[t] = kQueryOffset;
  out.error = float_at_least(std::sqrt(err) * kRoundUp);
  out.norm = float_at_least(std::sqrt(norm_sq) * kRoundUp);
  return out;
}

Int8Centers::Int8Centers(MatrixView<const float> centers)
    : panels_(panel_count(centers.rows) * kPanelRows * int8_dims(centers.cols), 0),
      scales_(centers.rows),
      errors_(centers.rows),
      norms_(centers.rows),
      code_sums_(centers.rows),
      dims_(int8_dims(centers.cols)) {
  const size_t d = centers.cols;
  // The float products that rank exactly round too: at most g sum |q_t c_t| with
  // g = n u / (1 - n u), n = d + 2 operations, u = 2^-24 (Higham), which is at most g ||q|| ||c||
  // (Cauchy-Schwarz).
  const double nu = static_cast<double>(d + 2) * std::ldexp(1.0, -24), rounding = nu / (1.0 - nu);
  std::vector<int> v(d);
  usable_ = dims_ * kLargestQueryCode * kCenterLevels < static_cast<size_t>(std::numeric_limits<int32_t>::max());
  for (size_t j = 0; j < centers.rows; ++j) {
    const float* c = centers.row(j);
    scales_[j] = largest_magnitude(c, d) / kCenterLevels;
    const double err = quantize(c, d, kCenterLevels, scales_[j], v.data());
    double hat = 0.0;
    int32_t sum = 0;
    int8_t* lanes = panels_.data() + (j / kPanelRows) * kPanelRows * dims_ + (j % kPanelRows) * kInt8Group;
    for (size_t t = 0; t < d; ++t) {
      lanes[(t / kInt8Group) * kPanelRows * kInt8Group + t % kInt8Group] = static_cast<int8_t>(v[t]);
      sum += v[t];
      hat += std::pow(static_cast<double>(scales_[j]) * v[t], 2);
    }
    code_sums_[j] = sum;
    const double c_norm = norm(c, d);
    errors_[j] = float_at_least((err + rounding * c_norm) * kRoundUp);
    norms_[j] = float_at_least(std::sqrt(hat) * kRoundUp);
    largest_norm_ = std::max(largest_norm_, float_at_least(c_norm * kRoundUp));
    usable_ = usable_ && nu < 0.5 && std::isfinite(errors_[j]) && std::isfinite(norms_[j]) &&
              std::isfinite(largest_norm_);
  }
}

void int8_panel_products_scalar(const uint8_t* codes, size_t rows, size_t dims, const int8_t* panels, size_t ny,
                                int32_t* sums) {
  const size_t stride = panel_count(ny) * kPanelRows;
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < ny; ++j) {
      const int8_t* lanes = panels + (j / kPanelRows) * kPanelRows * dims + (j % kPanelRows) * kInt8Group;
      const uint8_t* q = codes + i * dims;
      int32_t s = 0;
      for (size_t t = 0; t < dims; ++t) s += q[t] * lanes[(t / kInt8Group) * kPanelRows * kInt8Group + t % kInt8Group];
      sums[i * stride + j] = s;
    }
}

Int8PanelProducts int8_panel_products() {
#if defined(ANISOSCAN_X86_KERNELS)
  static const bool has = __builtin_cpu_supports("avx2");
  if (has && active_simd_level() != SimdLevel::kScalar) return int8_panel_products_avx2;
#endif
  return nullptr;
}

}  // namespace anisoscan
