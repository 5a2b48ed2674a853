#include "anisotropic_pq.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "distances.h"
#include "kmeans.h"
#include "multiversion.h"
#include "parallel.h"

namespace anisoscan {

namespace {

// J(k) = integral_0^alpha (sin(theta) / sin(alpha))^k dtheta, by Simpson's rule. Scaling by
// sin(alpha)^k keeps the integrand in [0, 1] so large k cannot underflow.
double scaled_sin_power_integral(double k, double alpha) {
  constexpr int kIntervals = 8192;
  const double h = alpha / kIntervals, sa = std::sin(alpha);
  double sum = 0.0;
  for (int i = 0; i <= kIntervals; ++i) {
    double theta = i * h;
    double f = theta == 0.0 ? 0.0 : std::exp(k * std::log(std::sin(theta) / sa));
    sum += f * (i == 0 || i == kIntervals ? 1.0 : (i % 2 ? 4.0 : 2.0));
  }
  return sum * h / 3.0;
}

// eta per data point. The exact form costs an integral, so it is tabulated once over
// t = T / ||x|| in [0, 1) and interpolated; eta is smooth there except as t -> 1, where the
// last interval is evaluated directly.
class EtaCache {
 public:
  EtaCache(const PQTrainParams& params, size_t dim) : params_(params), dim_(dim) {}

  double operator()(double norm) {
    const double T = params_.anisotropic_threshold;
    if (!params_.exact_eta || T <= 0.0 || norm <= T) return anisotropic_eta(norm, T, dim_, params_.exact_eta);
    const double pos = T / norm * kGrid;
    const size_t i = static_cast<size_t>(pos);
    if (i + 1 >= kGrid) return anisotropic_eta(norm, T, dim_, true);
    const double f = pos - i;
    return std::max(1.0, at(i) * (1.0 - f) + at(i + 1) * f);
  }

 private:
  // eta at t = j / kGrid (norm = T * kGrid / j), computed on first use: unit-norm data
  // touches two entries.
  double at(size_t j) {
    if (table_.empty()) table_.assign(kGrid, -1.0);
    if (table_[j] < 0.0)
      table_[j] = j == 0 ? 1.0 : anisotropic_eta(params_.anisotropic_threshold * kGrid / j,
                                                 params_.anisotropic_threshold, dim_, true);
    return table_[j];
  }

  static constexpr size_t kGrid = 1024;
  const PQTrainParams& params_;
  size_t dim_;
  std::vector<double> table_;
};

}  // namespace

double anisotropic_eta(double norm, double threshold, size_t dim, bool exact) {
  if (threshold <= 0.0 || norm <= threshold || dim < 2) return 1.0;
  const double t = threshold / norm, d = static_cast<double>(dim);
  if (!exact) return std::max(1.0, (d - 1.0) * t * t / (1.0 - t * t));
  const double alpha = std::acos(t), sa = std::sin(alpha);
  // I(d-2) / I(d) with I(k) = sin(alpha)^k J(k).
  double ratio = scaled_sin_power_integral(d - 2.0, alpha) /
                 (scaled_sin_power_integral(d, alpha) * sa * sa);
  return std::max(1.0, (d - 1.0) * (ratio - 1.0));
}

// Zero-padded copies of y and of the unit direction of x, plus each row's eta.
struct ProductQuantizer::Workspace {
  size_t n = 0, D = 0;
  std::vector<float> y, u;
  std::vector<double> eta;

  Workspace(const ProductQuantizer& pq, MatrixView<const float> yv, MatrixView<const float> xv,
            const PQTrainParams& params)
      : n(yv.rows), D(pq.padded_dim()), y(n * D, 0.f), u(n * D, 0.f), eta(n, 1.0) {
    EtaCache eta_of(params, pq.dim());
    for (size_t i = 0; i < n; ++i) {
      std::copy(yv.row(i), yv.row(i) + yv.cols, y.begin() + i * D);
      const float* xi = xv.row(i);
      double norm = std::sqrt(static_cast<double>(dot(xi, xi, xv.cols)));
      if (norm > 0.0)
        for (size_t t = 0; t < xv.cols; ++t) u[i * D + t] = static_cast<float>(xi[t] / norm);
      eta[i] = eta_of(norm);
    }
  }
  const float* yrow(size_t i) const { return y.data() + i * D; }
  const float* urow(size_t i) const { return u.data() + i * D; }
};

ProductQuantizer::ProductQuantizer(size_t dim, size_t sub_dim)
    : dim_(dim), sub_dim_(sub_dim), m_((dim + sub_dim - 1) / sub_dim) {
  if (dim == 0) throw std::invalid_argument("dim: must be positive");
  if (sub_dim == 0 || sub_dim > kMaxSubDim || sub_dim > dim)
    throw std::invalid_argument("sub_dim: must be in [1, min(dim, 16)]");
  codebooks_.assign(m_ * kCodewords * sub_dim_, 0.f);
  derive_transposed();
}

void ProductQuantizer::derive_transposed() {
  codebooks_t_.resize(codebooks_.size());
  for (size_t s = 0; s < m_; ++s)
    for (size_t k = 0; k < kCodewords; ++k)
      for (size_t t = 0; t < sub_dim_; ++t) codebooks_t_[(s * sub_dim_ + t) * kCodewords + k] = codeword(s, k)[t];
}

void ProductQuantizer::set_codebooks(std::vector<float> codebooks) {
  if (codebooks.size() != m_ * kCodewords * sub_dim_)
    throw std::invalid_argument("codebooks: wrong size for this quantizer");
  codebooks_ = std::move(codebooks);
  derive_transposed();
}

namespace {

// The lowest k holding the smallest of 16 values, without a branch per value: the minimum
// first (vectorized), then where it first occurs. The same answer as a strict-less scan.
template <class T>
size_t first_minimum(const T (&v)[kCodewords]) {
  T low = v[0];
  for (size_t k = 1; k < kCodewords; ++k) low = std::min(low, v[k]);
  size_t at = kCodewords;
  for (size_t k = kCodewords; k-- > 0;) at = v[k] == low ? k : at;
  return at;
}

}  // namespace

// All 16 codewords of a sub-space at once, from the transposed codebooks.
ANISOSCAN_MULTIVERSION
void ProductQuantizer::nearest_codes(const float* y, uint8_t* codes) const {
  for (size_t s = 0; s < m_; ++s) {
    float dist[kCodewords] = {};
    for (size_t t = 0; t < sub_dim_; ++t) {
      const float yt = y[s * sub_dim_ + t];
      const float* c = coordinate_of_codewords(s, t);
      for (size_t k = 0; k < kCodewords; ++k) dist[k] += (yt - c[k]) * (yt - c[k]);
    }
    codes[s] = static_cast<uint8_t>(first_minimum(dist));
  }
}

ANISOSCAN_MULTIVERSION
void ProductQuantizer::refine_codes(const float* y, const float* u, double eta, int max_rounds,
                                    uint8_t* codes) const {
  if (eta <= 1.0) return;  // plain loss: nearest codes are already optimal
  const size_t D = padded_dim(), ds = sub_dim_;
  const double w = eta - 1.0;
  std::vector<double> r(D);
  double norm_sq = 0.0, par = 0.0;  // ||r||^2 and <r, u>
  for (size_t s = 0; s < m_; ++s)
    for (size_t t = 0; t < ds; ++t) {
      double v = y[s * ds + t] - codeword(s, codes[s])[t];
      r[s * ds + t] = v;
      norm_sq += v * v;
      par += v * u[s * ds + t];
    }
  for (int round = 0; round < max_rounds; ++round) {
    bool changed = false;
    for (size_t s = 0; s < m_; ++s) {
      const float* ys = y + s * ds;
      const float* us = u + s * ds;
      double old_sq = 0.0, old_par = 0.0;
      for (size_t t = 0; t < ds; ++t) {
        old_sq += r[s * ds + t] * r[s * ds + t];
        old_par += r[s * ds + t] * us[t];
      }
      const double base_sq = norm_sq - old_sq, base_par = par - old_par;
      // Every codeword's share of ||r||^2 and <r, u>, 16 at a time (transposed codebooks).
      double sq[kCodewords] = {}, pr[kCodewords] = {};
      for (size_t t = 0; t < ds; ++t) {
        const double yt = ys[t], ut = us[t];
        const float* c = coordinate_of_codewords(s, t);
        for (size_t k = 0; k < kCodewords; ++k) {
          const double v = yt - c[k];
          sq[k] += v * v;
          pr[k] += v * ut;
        }
      }
      double loss[kCodewords];
      for (size_t k = 0; k < kCodewords; ++k) {
        const double p = base_par + pr[k];
        loss[k] = base_sq + sq[k] + w * p * p;
      }
      // The current code keeps its place on a tie: its loss is the running total, exactly.
      const double current = norm_sq + w * par * par;
      loss[codes[s]] = current;
      const size_t best_k = first_minimum(loss);
      if (loss[best_k] < current) {
        const double best_sq = sq[best_k], best_par = pr[best_k];
        changed = true;
        codes[s] = static_cast<uint8_t>(best_k);
        for (size_t t = 0; t < ds; ++t) r[s * ds + t] = static_cast<double>(ys[t]) - codeword(s, best_k)[t];
        norm_sq = base_sq + best_sq;
        par = base_par + best_par;
      }
    }
    if (!changed) break;
  }
}

void ProductQuantizer::update_codebooks(const Workspace& ws, const std::vector<uint8_t>& codes) {
  const size_t n = ws.n, ds = sub_dim_, slice = n * ds;
  // Sub-space-major copies of y, u and the codes: each pass below then streams one
  // sub-space's slice instead of striding across every row. Residuals are recomputed from y
  // and the codebooks (as floats, as they were first computed), not stored.
  std::vector<float> y(m_ * slice), u(m_ * slice);
  std::vector<uint8_t> code(m_ * n);
  std::vector<double> par(n, 0.0);  // <r, u> of each row under the current codebooks
  for (size_t i = 0; i < n; ++i)
    for (size_t s = 0; s < m_; ++s) {
      code[s * n + i] = codes[i * m_ + s];
      const float* c = codeword(s, codes[i * m_ + s]);
      for (size_t t = 0; t < ds; ++t) {
        const size_t j = s * ds + t, at = s * slice + i * ds + t;
        y[at] = ws.yrow(i)[j];
        u[at] = ws.urow(i)[j];
        const double r = y[at] - c[t];
        par[i] += r * u[at];
      }
    }
  // Gauss-Seidel over sub-spaces: each codeword solves a ds x ds weighted least squares
  // (A c = b) with every other sub-space held fixed.
  std::vector<double> A(kCodewords * ds * ds), b(kCodewords * ds);
  std::vector<size_t> count(kCodewords);
  std::vector<float> old(kCodewords * ds);
  for (size_t s = 0; s < m_; ++s) {
    const float* ys_all = y.data() + s * slice;
    const float* us_all = u.data() + s * slice;
    const uint8_t* ks = code.data() + s * n;
    std::copy(codebooks_.begin() + s * kCodewords * ds, codebooks_.begin() + (s + 1) * kCodewords * ds, old.begin());
    std::fill(A.begin(), A.end(), 0.0);
    std::fill(b.begin(), b.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    for (size_t i = 0; i < n; ++i) {
      const size_t k = ks[i];
      const float* us = us_all + i * ds;
      const float* ys = ys_all + i * ds;
      const float* c = old.data() + k * ds;
      double w = ws.eta[i] - 1.0, rs_par = 0.0, ys_par = 0.0;
      for (size_t t = 0; t < ds; ++t) {
        const double r = ys[t] - c[t];
        rs_par += r * us[t];
        ys_par += static_cast<double>(ys[t]) * us[t];
      }
      double rest = par[i] - rs_par;
      double* Ak = A.data() + k * ds * ds;
      double* bk = b.data() + k * ds;
      ++count[k];
      for (size_t a = 0; a < ds; ++a) {
        bk[a] += ys[a] + w * us[a] * (ys_par + rest);
        for (size_t c2 = 0; c2 < ds; ++c2) Ak[a * ds + c2] += w * us[a] * us[c2];
      }
    }
    for (size_t k = 0; k < kCodewords; ++k) {
      if (count[k] == 0) continue;
      double* Ak = A.data() + k * ds * ds;
      double* bk = b.data() + k * ds;
      for (size_t a = 0; a < ds; ++a) Ak[a * ds + a] += static_cast<double>(count[k]);
      // A is symmetric positive definite: Gaussian elimination without pivoting is stable.
      for (size_t p = 0; p < ds; ++p)
        for (size_t q = p + 1; q < ds; ++q) {
          double f = Ak[q * ds + p] / Ak[p * ds + p];
          for (size_t c = p; c < ds; ++c) Ak[q * ds + c] -= f * Ak[p * ds + c];
          bk[q] -= f * bk[p];
        }
      float* cw = codebooks_.data() + (s * kCodewords + k) * ds;
      std::vector<double> sol(ds);
      for (size_t p = ds; p-- > 0;) {
        double v = bk[p];
        for (size_t c = p + 1; c < ds; ++c) v -= Ak[p * ds + c] * sol[c];
        sol[p] = v / Ak[p * ds + p];
        cw[p] = static_cast<float>(sol[p]);
      }
    }
    for (size_t i = 0; i < n; ++i) {
      const float* us = us_all + i * ds;
      const float* ys = ys_all + i * ds;
      const float* before = old.data() + ks[i] * ds;
      const float* c = codeword(s, ks[i]);
      for (size_t t = 0; t < ds; ++t) {
        const double v = static_cast<double>(ys[t]) - c[t], r = ys[t] - before[t];
        par[i] += (v - r) * us[t];
      }
    }
  }
}

double ProductQuantizer::mean_loss(const Workspace& ws, const uint8_t* codes) const {
  std::vector<float> rec(ws.D, 0.f);
  double total = 0.0;
  for (size_t i = 0; i < ws.n; ++i) {
    decode(codes + i * m_, rec.data());
    double sq = 0.0, par = 0.0;
    for (size_t j = 0; j < ws.D; ++j) {
      double v = static_cast<double>(ws.yrow(i)[j]) - rec[j];
      sq += v * v;
      par += v * ws.urow(i)[j];
    }
    total += sq + (ws.eta[i] - 1.0) * par * par;
  }
  return ws.n ? total / ws.n : 0.0;
}

double ProductQuantizer::mean_loss(MatrixView<const float> y, MatrixView<const float> x,
                                   const uint8_t* codes, const PQTrainParams& params) const {
  return mean_loss(Workspace(*this, y, x, params), codes);
}

std::vector<double> ProductQuantizer::train(MatrixView<const float> y, MatrixView<const float> x,
                                            const PQTrainParams& params) {
  if (y.rows == 0) throw std::invalid_argument("vectors: cannot train on an empty set");
  Workspace ws(*this, y, x, params);
  const size_t n = ws.n, ds = sub_dim_;

  // Plain k-means per sub-space to start; fewer than 16 points repeat codewords.
  const size_t k = std::min(kCodewords, n);
  parallel_for(m_, params.threads, 1, [&](size_t b, size_t e, int) {
    std::vector<float> slice(n * ds);
    for (size_t s = b; s < e; ++s) {
      for (size_t i = 0; i < n; ++i)
        std::copy(ws.yrow(i) + s * ds, ws.yrow(i) + (s + 1) * ds, slice.begin() + i * ds);
      KMeansParams kp;
      kp.k = k;
      kp.iterations = params.kmeans_iterations;
      kp.seed = params.seed + s;
      kp.threads = 1;
      std::vector<float> c = kmeans({slice.data(), n, ds}, kp);
      for (size_t j = 0; j < kCodewords; ++j)
        std::copy(c.begin() + (j % k) * ds, c.begin() + (j % k + 1) * ds,
                  codebooks_.begin() + (s * kCodewords + j) * ds);
    }
  });

  derive_transposed();
  std::vector<uint8_t> codes(n * m_);
  for (size_t i = 0; i < n; ++i) nearest_codes(ws.yrow(i), codes.data() + i * m_);
  std::vector<double> history{mean_loss(ws, codes.data())};
  bool anisotropic = std::any_of(ws.eta.begin(), ws.eta.end(), [](double e) { return e > 1.0; });
  if (!anisotropic) return history;

  for (int it = 0; it < params.iterations; ++it) {
    parallel_for(n, params.threads, 1024, [&](size_t b, size_t e, int) {
      for (size_t i = b; i < e; ++i)
        refine_codes(ws.yrow(i), ws.urow(i), ws.eta[i], params.max_assign_rounds, codes.data() + i * m_);
    });
    history.push_back(mean_loss(ws, codes.data()));
    if (!params.anisotropic_codebooks) break;  // assignment-only: codebooks stay k-means
    update_codebooks(ws, codes);
    derive_transposed();
    history.push_back(mean_loss(ws, codes.data()));
  }
  return history;
}

void ProductQuantizer::encode(MatrixView<const float> y, MatrixView<const float> x,
                              const PQTrainParams& params, uint8_t* codes) const {
  parallel_for(y.rows, params.threads, 1024, [&](size_t b, size_t e, int) {
    const size_t D = padded_dim();
    std::vector<float> yp(D, 0.f), up(D, 0.f);
    EtaCache eta_of(params, dim_);
    for (size_t i = b; i < e; ++i) {
      std::copy(y.row(i), y.row(i) + dim_, yp.begin());
      const float* xi = x.row(i);
      double norm = std::sqrt(static_cast<double>(dot(xi, xi, dim_)));
      for (size_t t = 0; t < dim_; ++t) up[t] = norm > 0 ? static_cast<float>(xi[t] / norm) : 0.f;
      uint8_t* c = codes + i * m_;
      nearest_codes(yp.data(), c);
      refine_codes(yp.data(), up.data(), eta_of(norm), params.max_assign_rounds, c);
    }
  });
}

void ProductQuantizer::decode(const uint8_t* codes, float* out) const {
  for (size_t s = 0; s < m_; ++s) {
    const float* c = codeword(s, codes[s]);
    for (size_t t = 0; t < sub_dim_ && s * sub_dim_ + t < dim_; ++t) out[s * sub_dim_ + t] = c[t];
  }
}

}  // namespace anisoscan
