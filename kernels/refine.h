// The re-rank copy of each vector (with_raw_data): how a row is stored, and the distance a
// query gets from a stored row. FP32 keeps the vector as given (exact re-ranking); SQ8 keeps
// one byte per dimension, x_j ~ lo_j + scale_j * c_j, with lo and scale per dimension from
// the training sample (values outside its range are clamped): a quarter of the memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "array_view.h"
#include "metric.h"
#include "params.h"

namespace anisoscan {

class RefineCodec {
 public:
  RefineCodec() = default;
  RefineCodec(RefineType type, size_t dim) : type_(type), dim_(dim) {}

  RefineType type() const { return type_; }
  size_t row_bytes() const { return type_ == RefineType::kSQ8 ? dim_ : dim_ * sizeof(float); }
  // Exact: decode() gives back the vector as added.
  bool exact() const { return type_ == RefineType::kFP32; }

  // SQ8: lo and scale from the sample's range per dimension. FP32: nothing to learn.
  void train(MatrixView<const float> sample);
  void encode(const float* x, uint8_t* out) const;
  void decode(const uint8_t* row, float* out) const;

  // What a query needs to score stored rows: for SQ8, the query folded into the
  // per-dimension scales, so that a row costs one pass over its bytes.
  struct Query {
    const float* q = nullptr;  // FP32: the query
    std::vector<float> weights;  // SQ8, IP: q_j * scale_j; L2: scale_j
    std::vector<float> shifted;  // SQ8, L2: q_j - lo_j
    float bias = 0.f;           // SQ8, IP: <q, lo>
  };
  void prepare(const float* q, Metric metric, Query& out) const;
  // The internal distance (metric.h: smaller is closer) from a prepared query to a row.
  float distance(const Query& query, Metric metric, const uint8_t* row) const;

  // Per-dimension offset and scale (SQ8), stored in index files.
  const std::vector<float>& lo() const { return lo_; }
  const std::vector<float>& scale() const { return scale_; }
  void set_ranges(std::vector<float> lo, std::vector<float> scale);

 private:
  RefineType type_ = RefineType::kFP32;
  size_t dim_ = 0;
  std::vector<float> lo_, scale_;
};

}  // namespace anisoscan
