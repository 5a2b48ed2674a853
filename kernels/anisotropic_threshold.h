// The anisotropic threshold T when none is given, from the training sample.
//
// eta weighs a code's error along its vector against the error across it. The paper's
// eta(T, d) assumes queries spread evenly over all d directions; embeddings fill far fewer,
// so at d=768 ScaNN's T=0.2 gives eta ~34 where ~3 quantizes best (mpnet). For inner
// products eta is therefore measured: over pairs of training rows as close as a typical
// 100th neighbour, the mean squared score along each row's direction against the mean
// squared score along its partition residual's perpendicular part (the directions the codes
// err in). The default T is the one whose eta(T, d) at the sample's mean norm equals it, so
// the loss and its dependence on each row's norm stay as they were.
#pragma once

#include <cstddef>
#include <cstdint>

#include "array_view.h"
#include "metric.h"

namespace anisoscan {

struct MeasuredEta {
  double eta = 1.0;         // 1 when no pair qualifies: no evidence, plain PQ
  double pair_score = 0.0;  // the score a pair needs: the median 100th neighbour's
  size_t pairs = 0;
};

// Over `sample` (rows assigned to `centers` by `assign`) drawn from `data_rows` vectors.
MeasuredEta measure_eta(MatrixView<const float> sample, const float* centers, const int32_t* assign,
                        size_t data_rows, int threads);

// The T with anisotropic_eta(norm, T, dim, exact) = eta (0 for eta <= 1), by bisection:
// eta grows with T.
double threshold_for_eta(double eta, double norm, size_t dim, bool exact);

// The default. L2: 0.1 x the sample's mean norm. IP and COSINE: threshold_for_eta of the
// measured eta, at most ScaNN's 0.2 (the measurement may only soften the loss: where it
// asked for more, on isotropic synthetic clusters, recall fell).
double default_threshold(Metric metric, MatrixView<const float> sample, const float* centers, const int32_t* assign,
                         size_t data_rows, bool exact_eta, int threads);

}  // namespace anisoscan
