#include "anisotropic_pq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "distances.h"
#include "kmeans.h"
#include "multiversion.h"
#include "parallel.h"
#include "vector_types.h"

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
    parallel_for(n, params.threads, 1024, [&](size_t b, size_t e, int) {
      EtaCache eta_of(params, pq.dim());
      for (size_t i = b; i < e; ++i) {
        std::copy(yv.row(i), yv.row(i) + yv.cols, y.begin() + i * D);
        const float* xi = xv.row(i);
        double norm = std::sqrt(static_cast<double>(dot(xi, xi, xv.cols)));
        if (norm > 0.0)
          for (size_t t = 0; t < xv.cols; ++t) u[i * D + t] = static_cast<float>(xi[t] / norm);
        eta[i] = eta_of(norm);
      }
    });
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

// The smallest of 16 values as a tree of vector minimums: a minimum is exact, so its order
// does not change the value. (A chain of 16 scalar minimums had cost the quantizer's
// assignment most of its time.)
[[gnu::always_inline]] inline double minimum(const Double4 (&v)[4]) {
  const Double4 low01 = v[1] < v[0] ? v[1] : v[0], low23 = v[3] < v[2] ? v[3] : v[2];
  const Double4 low = low23 < low01 ? low23 : low01;
  return std::min(std::min(low[0], low[1]), std::min(low[2], low[3]));
}
[[gnu::always_inline]] inline float minimum(const Float8 (&v)[2]) {
  const Float8 low = v[1] < v[0] ? v[1] : v[0];
  return std::min(std::min(std::min(low[0], low[1]), std::min(low[2], low[3])),
                  std::min(std::min(low[4], low[5]), std::min(low[6], low[7])));
}

// Where `value` first occurs, without a branch per value. (Inputs are finite: the API refuses
// other values, so the minimum is always found.)
template <class T>
[[gnu::always_inline]] inline size_t first_index_of(const T (&v)[kCodewords], T value) {
  size_t at = kCodewords;
  for (size_t k = kCodewords; k-- > 0;) at = v[k] == value ? k : at;
  return at;
}

}  // namespace

// All 16 codewords of a sub-space at once, from the transposed codebooks.
ANISOSCAN_MULTIVERSION
void ProductQuantizer::nearest_codes(const float* y, uint8_t* codes) const {
  for (size_t s = 0; s < m_; ++s) {
    Float8 dist[2] = {};
    for (size_t t = 0; t < sub_dim_; ++t) {
      const float yt = y[s * sub_dim_ + t];
      const Float8* c = reinterpret_cast<const Float8*>(coordinate_of_codewords(s, t));
      for (size_t j = 0; j < 2; ++j) dist[j] += (yt - c[j]) * (yt - c[j]);
    }
    float all[kCodewords];  // the first codeword at the minimum: a strict-less scan's answer
    std::memcpy(all, dist, sizeof all);
    codes[s] = static_cast<uint8_t>(first_index_of(all, minimum(dist)));
  }
}

ANISOSCAN_MULTIVERSION
void ProductQuantizer::refine_codes(const float* y, const float* u, double eta, int max_rounds, uint8_t* codes,
                                    std::vector<double>& scratch) const {
  if (eta <= 1.0) return;  // plain loss: nearest codes are already optimal
  const size_t ds = sub_dim_;
  const double w = eta - 1.0;
  // Every codeword's share of ||r||^2 and of <r, u>, per sub-space ([s][sq 16, pr 16]): fixed
  // while y, u and the codebooks are, so the rounds below only add them up.
  constexpr size_t kStride = 2 * kCodewords;
  scratch.resize(m_ * kStride);
  double norm_sq = 0.0, par = 0.0;  // ||r||^2 and <r, u> of the current codes
  for (size_t s = 0; s < m_; ++s) {
    double* sq = scratch.data() + s * kStride;
    double* pr = sq + kCodewords;
    for (size_t t = 0; t < ds; ++t) {
      const double yt = y[s * ds + t], ut = u[s * ds + t];
      const float* c = coordinate_of_codewords(s, t);
      for (size_t k = 0; k < kCodewords; ++k) {
        const double v = yt - c[k];
        sq[k] = (t ? sq[k] : 0.0) + v * v;  // not zeroed first: a fill here compiled to rep stos
        pr[k] = (t ? pr[k] : 0.0) + v * ut;
      }
    }
    norm_sq += sq[codes[s]];
    par += pr[codes[s]];
  }
  for (int round = 0; round < max_rounds; ++round) {
    bool changed = false;
    for (size_t s = 0; s < m_; ++s) {
      const double* sq = scratch.data() + s * kStride;
      const double* pr = sq + kCodewords;
      const double base_sq = norm_sq - sq[codes[s]], base_par = par - pr[codes[s]];
      // The current code keeps its place on a tie: its loss is the running total, exactly.
      const double current = norm_sq + w * par * par;
      Double4 loss[4];  // in registers
      for (size_t j = 0; j < 4; ++j) {
        const Double4 p = base_par + reinterpret_cast<const Double4*>(pr)[j];
        loss[j] = base_sq + reinterpret_cast<const Double4*>(sq)[j] + w * p * p;
        const Index4 k = Index4{0, 1, 2, 3} + static_cast<int64_t>(4 * j);
        loss[j] = k == static_cast<int64_t>(codes[s]) ? current : loss[j];
      }
      // Most steps keep their code, so where the minimum lies is looked for only when it wins.
      const double low = minimum(loss);
      if (low < current) {
        double all[kCodewords];
        std::memcpy(all, loss, sizeof all);
        const size_t best_k = first_index_of(all, low);
        changed = true;
        codes[s] = static_cast<uint8_t>(best_k);
        norm_sq = base_sq + sq[best_k];
        par = base_par + pr[best_k];
      }
    }
    if (!changed) break;
  }
}

namespace {

// Rows per partial sum. Sums are taken per fixed block of rows and added in block order, so
// training gives the same codebooks whatever the thread count.
constexpr size_t kRowBlock = 4096;

size_t row_blocks(size_t n) { return (n + kRowBlock - 1) / kRowBlock; }

// fn(block, begin, end) for every block of rows [begin, end), blocks spread over the threads.
template <class Fn>
void for_row_blocks(size_t n, int threads, Fn&& fn) {
  parallel_for(row_blocks(n), threads, 1, [&](size_t bb, size_t be, int) {
    for (size_t blk = bb; blk < be; ++blk) fn(blk, blk * kRowBlock, std::min(n, (blk + 1) * kRowBlock));
  });
}

// Sub-spaces whose floats fill one 64-byte cache line: copying a group of them out of every
// row reads whole lines, where a single sub-space would use 8 bytes of each.
size_t subspace_group(size_t sub_dim) { return std::max<size_t>(1, 16 / sub_dim); }

// One sub-space's weighted least squares, A c = b per codeword, as sums over rows.
struct CodewordSums {
  std::vector<double> A, b;
  std::vector<size_t> count;
  explicit CodewordSums(size_t ds) : A(kCodewords * ds * ds, 0.0), b(kCodewords * ds, 0.0), count(kCodewords, 0) {}
  void add(const CodewordSums& o) {
    for (size_t j = 0; j < A.size(); ++j) A[j] += o.A[j];
    for (size_t j = 0; j < b.size(); ++j) b[j] += o.b[j];
    for (size_t k = 0; k < kCodewords; ++k) count[k] += o.count[k];
  }
};

}  // namespace

void ProductQuantizer::update_codebooks(const Workspace& ws, const std::vector<uint8_t>& codes, int threads) {
  const size_t n = ws.n, ds = sub_dim_, blocks = row_blocks(n);
  std::vector<double> par(n, 0.0);  // <r, u> of each row under the current codebooks
  parallel_for(n, threads, 1024, [&](size_t b, size_t e, int) {
    for (size_t i = b; i < e; ++i)
      for (size_t s = 0; s < m_; ++s) {
        const float* c = codeword(s, codes[i * m_ + s]);
        for (size_t t = 0; t < ds; ++t) {
          const size_t j = s * ds + t;
          const double r = ws.yrow(i)[j] - c[t];
          par[i] += r * ws.urow(i)[j];
        }
      }
  });
  // Gauss-Seidel over sub-spaces: each codeword solves a ds x ds weighted least squares
  // (A c = b) with every other sub-space held fixed. A group of sub-spaces at a time is copied
  // out of the rows ([n][group * ds]) so that each pass streams it; residuals are recomputed
  // from y and the codebooks (as floats, as they were first computed), not stored.
  const size_t group = subspace_group(ds);
  std::vector<float> y, u, old(kCodewords * ds);
  std::vector<uint8_t> code;
  std::vector<CodewordSums> partial(blocks, CodewordSums(ds));
  for (size_t s0 = 0; s0 < m_; s0 += group) {
    const size_t g = std::min(group, m_ - s0), w = g * ds;
    y.resize(n * w);
    u.resize(n * w);
    code.resize(n * g);
    parallel_for(n, threads, 1024, [&](size_t b, size_t e, int) {
      for (size_t i = b; i < e; ++i) {
        std::copy_n(ws.yrow(i) + s0 * ds, w, y.begin() + i * w);
        std::copy_n(ws.urow(i) + s0 * ds, w, u.begin() + i * w);
        std::copy_n(codes.begin() + i * m_ + s0, g, code.begin() + i * g);
      }
    });
    for (size_t j = 0; j < g; ++j) {
      const size_t s = s0 + j;
      std::copy_n(codebooks_.begin() + s * kCodewords * ds, kCodewords * ds, old.begin());
      for_row_blocks(n, threads, [&](size_t blk, size_t begin, size_t end) {
        CodewordSums& sums = partial[blk];
        std::fill(sums.A.begin(), sums.A.end(), 0.0);
        std::fill(sums.b.begin(), sums.b.end(), 0.0);
        std::fill(sums.count.begin(), sums.count.end(), 0);
        for (size_t i = begin; i < end; ++i) {
          const size_t k = code[i * g + j];
          const float* ys = y.data() + i * w + j * ds;
          const float* us = u.data() + i * w + j * ds;
          const float* c = old.data() + k * ds;
          double wt = ws.eta[i] - 1.0, rs_par = 0.0, ys_par = 0.0;
          for (size_t t = 0; t < ds; ++t) {
            const double r = ys[t] - c[t];
            rs_par += r * us[t];
            ys_par += static_cast<double>(ys[t]) * us[t];
          }
          const double rest = par[i] - rs_par;
          double* Ak = sums.A.data() + k * ds * ds;
          double* bk = sums.b.data() + k * ds;
          ++sums.count[k];
          for (size_t a = 0; a < ds; ++a) {
            bk[a] += ys[a] + wt * us[a] * (ys_par + rest);
            for (size_t c2 = 0; c2 < ds; ++c2) Ak[a * ds + c2] += wt * us[a] * us[c2];
          }
        }
      });
      CodewordSums total(ds);
      for (const CodewordSums& sums : partial) total.add(sums);
      for (size_t k = 0; k < kCodewords; ++k) {
        if (total.count[k] == 0) continue;
        double* Ak = total.A.data() + k * ds * ds;
        double* bk = total.b.data() + k * ds;
        for (size_t a = 0; a < ds; ++a) Ak[a * ds + a] += static_cast<double>(total.count[k]);
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
      if (s + 1 == m_) break;  // par is not read again
      parallel_for(n, threads, 1024, [&](size_t b, size_t e, int) {
        for (size_t i = b; i < e; ++i) {
          const size_t k = code[i * g + j];
          const float* ys = y.data() + i * w + j * ds;
          const float* us = u.data() + i * w + j * ds;
          const float* before = old.data() + k * ds;
          const float* c = codeword(s, k);
          for (size_t t = 0; t < ds; ++t) {
            const double v = static_cast<double>(ys[t]) - c[t], r = ys[t] - before[t];
            par[i] += (v - r) * us[t];
          }
        }
      });
    }
  }
}

double ProductQuantizer::mean_loss(const Workspace& ws, const uint8_t* codes, int threads) const {
  std::vector<double> partial(row_blocks(ws.n), 0.0);
  for_row_blocks(ws.n, threads, [&](size_t blk, size_t begin, size_t end) {
    std::vector<float> rec(ws.D, 0.f);
    for (size_t i = begin; i < end; ++i) {
      decode(codes + i * m_, rec.data());
      double sq = 0.0, par = 0.0;
      for (size_t j = 0; j < ws.D; ++j) {
        double v = static_cast<double>(ws.yrow(i)[j]) - rec[j];
        sq += v * v;
        par += v * ws.urow(i)[j];
      }
      partial[blk] += sq + (ws.eta[i] - 1.0) * par * par;
    }
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return ws.n ? total / ws.n : 0.0;
}

double ProductQuantizer::mean_loss(MatrixView<const float> y, MatrixView<const float> x,
                                   const uint8_t* codes, const PQTrainParams& params) const {
  return mean_loss(Workspace(*this, y, x, params), codes, params.threads);
}

void ProductQuantizer::train(MatrixView<const float> y, MatrixView<const float> x, const PQTrainParams& params,
                             std::vector<double>* loss_history) {
  if (y.rows == 0) throw std::invalid_argument("vectors: cannot train on an empty set");
  Workspace ws(*this, y, x, params);
  const size_t n = ws.n, ds = sub_dim_;

  // Plain k-means per sub-space to start; fewer than 16 points repeat codewords. (A start from
  // fewer rows, 256 or 1024 per codeword, cost up to 0.005 codes-only recall on mpnet and glove.)
  const size_t k = std::min(kCodewords, n);
  const size_t group = subspace_group(ds);
  parallel_for(m_, params.threads, 1, [&](size_t b, size_t e, int) {
    std::vector<float> block(n * group * ds), slice(n * ds);
    for (size_t s = b; s < e; ++s) {
      const size_t at = (s - b) % group, w = std::min(group, e - (s - at)) * ds;
      if (at == 0)
        for (size_t i = 0; i < n; ++i) std::copy_n(ws.yrow(i) + s * ds, w, block.begin() + i * w);
      for (size_t i = 0; i < n; ++i) std::copy_n(block.begin() + i * w + at * ds, ds, slice.begin() + i * ds);
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
  parallel_for(n, params.threads, 1024, [&](size_t b, size_t e, int) {
    for (size_t i = b; i < e; ++i) nearest_codes(ws.yrow(i), codes.data() + i * m_);
  });
  const auto record_loss = [&] {
    if (loss_history) loss_history->push_back(mean_loss(ws, codes.data(), params.threads));
  };
  record_loss();
  bool anisotropic = std::any_of(ws.eta.begin(), ws.eta.end(), [](double e) { return e > 1.0; });
  if (!anisotropic) return;

  for (int it = 0; it < params.iterations; ++it) {
    parallel_for(n, params.threads, 1024, [&](size_t b, size_t e, int) {
      std::vector<double> scratch;
      for (size_t i = b; i < e; ++i)
        refine_codes(ws.yrow(i), ws.urow(i), ws.eta[i], params.max_assign_rounds, codes.data() + i * m_, scratch);
    });
    record_loss();
    if (!params.anisotropic_codebooks) break;  // assignment-only: codebooks stay k-means
    update_codebooks(ws, codes, params.threads);
    derive_transposed();
    record_loss();
  }
}

void ProductQuantizer::encode(MatrixView<const float> y, MatrixView<const float> x,
                              const PQTrainParams& params, uint8_t* codes) const {
  parallel_for(y.rows, params.threads, 1024, [&](size_t b, size_t e, int) {
    const size_t D = padded_dim();
    std::vector<float> yp(D, 0.f), up(D, 0.f);
    std::vector<double> scratch;
    EtaCache eta_of(params, dim_);
    for (size_t i = b; i < e; ++i) {
      std::copy(y.row(i), y.row(i) + dim_, yp.begin());
      const float* xi = x.row(i);
      double norm = std::sqrt(static_cast<double>(dot(xi, xi, dim_)));
      for (size_t t = 0; t < dim_; ++t) up[t] = norm > 0 ? static_cast<float>(xi[t] / norm) : 0.f;
      uint8_t* c = codes + i * m_;
      nearest_codes(yp.data(), c);
      refine_codes(yp.data(), up.data(), eta_of(norm), params.max_assign_rounds, c, scratch);
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
