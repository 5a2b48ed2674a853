#include "anisotropic_threshold.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "anisotropic_pq.h"
#include "distances.h"
#include "parallel.h"

namespace anisoscan {

namespace {

// Rows that play queries and rows they are scored against: enough for eta to settle
// (mpnet: 3.89 / 4.16 / 4.08 at 10K / 20K / 40K partners), at ~0.3 s for d=768 on 2 cores.
constexpr size_t kQueries = 1000;
constexpr size_t kPartners = 10000;
// ScaNN's recommended threshold for unit-norm inner products: the default's ceiling.
constexpr double kInnerProductThreshold = 0.2;
// The anisotropic threshold is an absolute score, so for L2 (any scale) its default follows
// the data's norms. Measured on bigann-10k (SIFT, norms ~509), codes-only recall@10 at
// nprobe 74 of 230: 0.778 plain PQ, 0.790 at 0.1 x the mean norm, 0.789 at 0.2 x, 0.781
// at 0.5 x.
constexpr double kL2RelativeThreshold = 0.1;
// The neighbour whose score sets the pairs that count: a top-10 is decided among about the
// best 100, its rivals included. Measured optimum eta against this estimate (codes-only
// recall): mpnet ~3 / 2.6, GloVe ~6 / 5.8, a rank-12 synthetic set ~6 / 12; the tenth
// neighbour's score instead gave 3.9, 6.0 and 34.
constexpr size_t kNeighbourRank = 100;

double mean_norm(MatrixView<const float> x) {
  double sum = 0;
  for (size_t i = 0; i < x.rows; ++i) {
    double s = 0;
    for (size_t j = 0; j < x.cols; ++j) s += static_cast<double>(x.row(i)[j]) * x.row(i)[j];
    sum += std::sqrt(s);
  }
  return x.rows ? sum / static_cast<double>(x.rows) : 0.0;
}

}  // namespace

MeasuredEta measure_eta(MatrixView<const float> sample, const float* centers, const int32_t* assign,
                        size_t data_rows, int threads) {
  const size_t ns = sample.rows, d = sample.cols;
  const size_t nq = std::min(kQueries, ns), np = std::min(kPartners, ns);
  if (np < 2) return {};
  // Rows spread evenly over the sample (itself a random pick); a row is never its own partner.
  std::vector<size_t> qrow(nq), prow(np);
  for (size_t i = 0; i < nq; ++i) qrow[i] = i * ns / nq;
  for (size_t j = 0; j < np; ++j) prow[j] = j * ns / np;
  std::vector<float> queries(nq * d), partners(np * d);
  for (size_t i = 0; i < nq; ++i) std::copy_n(sample.row(qrow[i]), d, queries.data() + i * d);
  for (size_t j = 0; j < np; ++j) std::copy_n(sample.row(prow[j]), d, partners.data() + j * d);
  const std::vector<float> panels = to_panels({partners.data(), np, d});
  const size_t stride = panel_count(np) * kPanelRows;
  std::vector<float> scores(nq * stride);
  parallel_for(nq, threads, kProductRows, [&](size_t b, size_t e, int) {
    inner_products_panels({queries.data() + b * d, e - b, d}, panels.data(), np, scores.data() + b * stride);
  });
  for (size_t i = 0; i < nq; ++i) {
    const auto self = std::lower_bound(prow.begin(), prow.end(), qrow[i]);
    if (self != prow.end() && *self == qrow[i])
      scores[i * stride + static_cast<size_t>(self - prow.begin())] = -std::numeric_limits<float>::infinity();
  }

  // The k-th neighbour among all rows is about the (k * np / rows)-th among the partners.
  const double expected = static_cast<double>(kNeighbourRank) * np / std::max(data_rows, ns);
  const size_t rank = std::clamp<size_t>(static_cast<size_t>(std::lround(expected)), 1, np - 1);
  std::vector<float> kth(nq), row(np);
  for (size_t i = 0; i < nq; ++i) {
    std::copy_n(scores.data() + i * stride, np, row.data());
    std::nth_element(row.begin(), row.begin() + (rank - 1), row.end(), std::greater<float>());
    kth[i] = row[rank - 1];
  }
  std::nth_element(kth.begin(), kth.begin() + nq / 2, kth.end());
  MeasuredEta out;
  out.pair_score = kth[nq / 2];

  // Each partner's norm and its residual r = x - c split along x (a) and across it (b), once:
  // a pair's score across is then <q, r - a x/|x|> / b, with <q, r> = <q, x> - <q, c>.
  std::vector<double> norm(np), a(np), b(np);
  std::vector<float> residual(d);
  for (size_t j = 0; j < np; ++j) {
    const float* x = partners.data() + j * d;
    const float* c = centers + static_cast<size_t>(assign[prow[j]]) * d;
    for (size_t t = 0; t < d; ++t) residual[t] = x[t] - c[t];
    norm[j] = std::sqrt(static_cast<double>(dot(x, x, d)));
    a[j] = norm[j] > 0.0 ? dot(residual.data(), x, d) / norm[j] : 0.0;
    const double b2 = static_cast<double>(dot(residual.data(), residual.data(), d)) - a[j] * a[j];
    b[j] = b2 > 0.0 ? std::sqrt(b2) : 0.0;
  }
  double along = 0.0, across = 0.0;
  for (size_t i = 0; i < nq; ++i) {
    const float* q = queries.data() + i * d;
    for (size_t j = 0; j < np; ++j) {
      const float score = scores[i * stride + j];
      if (!(score >= out.pair_score) || norm[j] == 0.0 || b[j] == 0.0) continue;
      const float* c = centers + static_cast<size_t>(assign[prow[j]]) * d;
      const double par = score / norm[j], perp = (score - dot(q, c, d) - a[j] * par) / b[j];
      along += par * par;
      across += perp * perp;
      ++out.pairs;
    }
  }
  if (out.pairs > 0 && across > 0.0) out.eta = along / across;
  return out;
}

double threshold_for_eta(double eta, double norm, size_t dim, bool exact) {
  if (!(eta > 1.0) || !(norm > 0.0) || dim < 2) return 0.0;
  // eta rises with T up to T -> norm (and is 1 at T >= norm, where no score reaches it).
  double lo = 0.0, hi = norm * (1.0 - 1e-9);
  if (anisotropic_eta(norm, hi, dim, exact) <= eta) return hi;
  for (int i = 0; i < 50; ++i) {
    const double mid = 0.5 * (lo + hi);
    (anisotropic_eta(norm, mid, dim, exact) < eta ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double default_threshold(Metric metric, MatrixView<const float> sample, const float* centers, const int32_t* assign,
                         size_t data_rows, bool exact_eta, int threads) {
  const double norm = mean_norm(sample);
  if (metric == Metric::kL2) return kL2RelativeThreshold * norm;
  const double eta = measure_eta(sample, centers, assign, data_rows, threads).eta;
  return std::min(kInnerProductThreshold, threshold_for_eta(eta, norm, sample.cols, exact_eta));
}

}  // namespace anisoscan
