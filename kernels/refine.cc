#include "refine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "distances.h"
#include "multiversion.h"

namespace anisoscan {

void RefineCodec::train(MatrixView<const float> sample) {
  if (type_ != RefineType::kSQ8) return;
  std::vector<float> lo(dim_, 0.f), hi(dim_, 0.f);
  if (sample.rows) {
    std::copy(sample.row(0), sample.row(0) + dim_, lo.begin());
    std::copy(sample.row(0), sample.row(0) + dim_, hi.begin());
  }
  for (size_t i = 1; i < sample.rows; ++i)
    for (size_t j = 0; j < dim_; ++j) {
      lo[j] = std::min(lo[j], sample.row(i)[j]);
      hi[j] = std::max(hi[j], sample.row(i)[j]);
    }
  std::vector<float> scale(dim_);
  for (size_t j = 0; j < dim_; ++j) scale[j] = hi[j] > lo[j] ? (hi[j] - lo[j]) / 255.f : 1.f;
  set_ranges(std::move(lo), std::move(scale));
}

void RefineCodec::set_ranges(std::vector<float> lo, std::vector<float> scale) {
  if (lo.size() != dim_ || scale.size() != dim_) throw std::invalid_argument("refine ranges: one per dimension");
  lo_ = std::move(lo);
  scale_ = std::move(scale);
}

void RefineCodec::encode(const float* x, uint8_t* out) const {
  if (type_ == RefineType::kFP32) {
    std::memcpy(out, x, dim_ * sizeof(float));
    return;
  }
  for (size_t j = 0; j < dim_; ++j) {
    const float c = std::nearbyint((x[j] - lo_[j]) / scale_[j]);
    out[j] = static_cast<uint8_t>(std::clamp(c, 0.f, 255.f));
  }
}

void RefineCodec::decode(const uint8_t* row, float* out) const {
  if (type_ == RefineType::kFP32) {
    std::memcpy(out, row, dim_ * sizeof(float));
    return;
  }
  for (size_t j = 0; j < dim_; ++j) out[j] = lo_[j] + scale_[j] * static_cast<float>(row[j]);
}

void RefineCodec::prepare(const float* q, Metric metric, Query& out) const {
  out.q = q;
  if (type_ == RefineType::kFP32) return;
  out.weights.resize(dim_);
  if (metric == Metric::kL2) {
    out.shifted.resize(dim_);
    for (size_t j = 0; j < dim_; ++j) {
      out.shifted[j] = q[j] - lo_[j];
      out.weights[j] = scale_[j];
    }
    return;
  }
  double bias = 0;
  for (size_t j = 0; j < dim_; ++j) {
    out.weights[j] = q[j] * scale_[j];
    bias += static_cast<double>(q[j]) * lo_[j];
  }
  out.bias = static_cast<float>(bias);
}

ANISOSCAN_MULTIVERSION
float RefineCodec::distance(const Query& query, Metric metric, const uint8_t* row) const {
  if (type_ == RefineType::kFP32) return internal_distance(metric, query.q, reinterpret_cast<const float*>(row), dim_);
  const float* w = query.weights.data();
  float sum = 0.f;
  if (metric == Metric::kL2) {
    const float* s = query.shifted.data();
#pragma omp simd reduction(+ : sum)
    for (size_t j = 0; j < dim_; ++j) {
      const float diff = s[j] - w[j] * static_cast<float>(row[j]);
      sum += diff * diff;
    }
    return sum;
  }
#pragma omp simd reduction(+ : sum)
  for (size_t j = 0; j < dim_; ++j) sum += w[j] * static_cast<float>(row[j]);
  return -(query.bias + sum);
}

}  // namespace anisoscan
