#include "distances.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "multiversion.h"
#include "parallel.h"
#include "vector_types.h"

namespace anisoscan {

ANISOSCAN_MULTIVERSION
float dot(const float* a, const float* b, size_t d) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (size_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

ANISOSCAN_MULTIVERSION
float l2_sq(const float* a, const float* b, size_t d) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (size_t i = 0; i < d; ++i) {
    float t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

std::vector<float> to_panels(MatrixView<const float> y) {
  std::vector<float> panels(panel_count(y.rows) * kPanelRows * y.cols, 0.f);
  for (size_t j = 0; j < y.rows; ++j) {
    float* panel = panels.data() + (j / kPanelRows) * kPanelRows * y.cols;
    for (size_t t = 0; t < y.cols; ++t) panel[t * kPanelRows + j % kPanelRows] = y.row(j)[t];
  }
  return panels;
}

// R rows of x against W columns of one panel (`panel` points at the first), over dimensions
// [t0, t1): R x W sums held in registers, starting from out's partial sums (zero at t0 = 0).
// Always inlined, so that each multi-versioned caller compiles it for its own ISA.
template <size_t R, size_t W>
[[gnu::always_inline]] static inline void panel_tile(const float* x, size_t d, size_t t0, size_t t1,
                                                     const float* panel, float* out, size_t out_stride) {
  float sums[R][W];
  for (size_t r = 0; r < R; ++r)
    for (size_t j = 0; j < W; ++j) sums[r][j] = t0 == 0 ? 0.f : out[r * out_stride + j];
  for (size_t t = t0; t < t1; ++t) {
    const float* column = panel + t * kPanelRows;
    for (size_t r = 0; r < R; ++r) {
      const float xt = x[r * d + t];
#pragma omp simd
      for (size_t j = 0; j < W; ++j) sums[r][j] += xt * column[j];
    }
  }
  for (size_t r = 0; r < R; ++r)
    for (size_t j = 0; j < W; ++j) out[r * out_stride + j] = sums[r][j];
}

// Rows [begin, end), a multiple of R, in tiles of R rows x W columns of one panel.
template <size_t R, size_t W>
[[gnu::always_inline]] static inline void row_tiles(MatrixView<const float> x, size_t begin, size_t end, size_t t0,
                                                    size_t t1, const float* panel, float* out, size_t stride) {
  static_assert(kPanelRows % W == 0);
  for (size_t c = 0; c < kPanelRows; c += W)
    for (size_t i = begin; i < end; i += R)
      panel_tile<R, W>(x.row(i), x.cols, t0, t1, panel + c, out + i * stride + c, stride);
}

// Tiles of R rows x W panel columns, a slice of kSliceDims dimensions at a time so that the
// panel's slice (64 x 64 floats, 16 KB) stays in L1 while every row tile passes over it; each
// output keeps the same order of additions as one pass over all of d. The last rows (fewer
// than R) take tiles of 3 or 2 rows x 32 columns or 1 row x 64, which keep at least 8 sums
// in flight on AVX2: a lone row with W = 16 would wait on each addition's latency.
template <size_t R, size_t W>
[[gnu::always_inline]] static inline void panel_tiles(MatrixView<const float> x, const float* panels, size_t ny,
                                                      float* out) {
  static_assert(R <= 6, "the last rows are covered by at most one 3-row tile and one smaller");
  constexpr size_t kSliceDims = 64;
  const size_t d = x.cols, stride = panel_count(ny) * kPanelRows, full = x.rows / R * R;
  for (size_t b = 0; b < panel_count(ny); ++b)
    for (size_t t0 = 0; t0 < d; t0 += kSliceDims) {
      const size_t t1 = std::min(d, t0 + kSliceDims);
      const float* panel = panels + b * kPanelRows * d;
      float* o = out + b * kPanelRows;
      row_tiles<R, W>(x, 0, full, t0, t1, panel, o, stride);
      size_t i = full;
      if (x.rows - i >= 3) {
        row_tiles<3, kPanelRows / 2>(x, i, i + 3, t0, t1, panel, o, stride);
        i += 3;
      }
      if (x.rows - i == 2) row_tiles<2, kPanelRows / 2>(x, i, i + 2, t0, t1, panel, o, stride);
      if (x.rows - i == 1) row_tiles<1, kPanelRows>(x, i, i + 1, t0, t1, panel, o, stride);
    }
}

// The main tile fits the register file: 4 x 64 sums take 16 of AVX-512's 32 registers. With
// 16 registers (AVX2), 6 x 16 takes 12, with 2 panel loads and 6 broadcasts per 12
// multiply-adds; 3 x 32 (4 loads and 3 broadcasts) measured about 10% slower on this
// project's AMD EPYC.
static_assert(kProductRows % 4 == 0 && kProductRows % 6 == 0, "passes of whole main tiles");

ANISOSCAN_MULTIVERSION
void inner_products_panels(MatrixView<const float> x, const float* panels, size_t ny, float* out) {
  if (has_32_vector_registers())
    panel_tiles<4, kPanelRows>(x, panels, ny, out);
  else
    panel_tiles<6, kPanelRows / 4>(x, panels, ny, out);
}

// Lanes of a and b (b's numbered 8-15) picked by I: a shuffle each compiler spells its way.
template <int... I>
[[gnu::always_inline]] static inline Float8 pick(Float8 a, Float8 b) {
#if defined(__clang__)
  return __builtin_shufflevector(a, b, I...);
#else
  using Lanes = int32_t __attribute__((vector_size(32)));
  return __builtin_shuffle(a, b, Lanes{I...});
#endif
}

// Eight rows' next eight floats, transposed in registers: after it, v[u][i] is row i's
// element u (unpack, 64-bit shuffle, then 128-bit halves: AVX's three-stage transpose).
[[gnu::always_inline]] static inline void transpose8(Float8 (&v)[8]) {
  Float8 t[8], s[8];
  for (size_t i = 0; i < 8; i += 2) {
    t[i] = pick<0, 8, 1, 9, 4, 12, 5, 13>(v[i], v[i + 1]);
    t[i + 1] = pick<2, 10, 3, 11, 6, 14, 7, 15>(v[i], v[i + 1]);
  }
  for (size_t i = 0; i < 8; i += 4)
    for (size_t h = 0; h < 2; ++h) {
      s[i + 2 * h] = pick<0, 1, 8, 9, 4, 5, 12, 13>(t[i + h], t[i + h + 2]);
      s[i + 2 * h + 1] = pick<2, 3, 10, 11, 6, 7, 14, 15>(t[i + h], t[i + h + 2]);
    }
  for (size_t u = 0; u < 4; ++u) {
    v[u] = pick<0, 1, 2, 3, 8, 9, 10, 11>(s[u], s[u + 4]);
    v[u + 4] = pick<4, 5, 6, 7, 12, 13, 14, 15>(s[u], s[u + 4]);
  }
}

// G groups of 8 rows (`r`: 8 G row pointers), their products in dimension order. The groups'
// chains are independent, so G of them hide the multiply-add latency that one would wait on.
template <size_t G>
[[gnu::always_inline]] static inline void row_groups(const float* x, size_t d, const float* const* r, Float8* sums) {
  constexpr size_t kLanes = 8;
  for (size_t h = 0; h < G; ++h) sums[h] = Float8{};
  size_t t = 0;
  for (; t + kLanes <= d; t += kLanes)
    for (size_t h = 0; h < G; ++h) {
      Float8 v[kLanes];
      for (size_t i = 0; i < kLanes; ++i) v[i] = *reinterpret_cast<const Float8*>(r[h * kLanes + i] + t);
      transpose8(v);
      for (size_t u = 0; u < kLanes; ++u) sums[h] += x[t + u] * v[u];
    }
  for (; t < d; ++t)
    for (size_t h = 0; h < G; ++h) {
      Float8 column;
      for (size_t i = 0; i < kLanes; ++i) column[i] = r[h * kLanes + i][t];
      sums[h] += x[t] * column;
    }
}

// The file reassociates float sums (-fassociative-math, for reductions); this function must
// not: each lane's additions stay in dimension order, as in a panel lane.
#if defined(__clang__)
#define ANISOSCAN_IN_ORDER_SUMS
#else
#define ANISOSCAN_IN_ORDER_SUMS [[gnu::optimize("no-associative-math")]]
#endif
ANISOSCAN_MULTIVERSION ANISOSCAN_IN_ORDER_SUMS
void inner_products_rows(const float* x, const float* rows, size_t d, const uint32_t* which, size_t m, float* out) {
#if defined(__clang__)
#pragma clang fp reassociate(off)
#endif
  constexpr size_t kLanes = 8, kGroups = 4;
  for (size_t first = 0; first < m; first += kLanes * kGroups) {
    const size_t count = std::min(kLanes * kGroups, m - first), groups = (count + kLanes - 1) / kLanes;
    const float* r[kLanes * kGroups];
    for (size_t i = 0; i < kLanes * groups; ++i) r[i] = rows + which[first + std::min(i, count - 1)] * d;  // extra lanes repeat
    Float8 sums[kGroups];
    switch (groups) {
      case 1: row_groups<1>(x, d, r, sums); break;
      case 2: row_groups<2>(x, d, r, sums); break;
      case 3: row_groups<3>(x, d, r, sums); break;
      default: row_groups<4>(x, d, r, sums); break;
    }
    for (size_t i = 0; i < count; ++i) out[first + i] = sums[i / kLanes][i % kLanes];
  }
}

std::vector<float> row_norms_sq(MatrixView<const float> x) {
  std::vector<float> n(x.rows);
  for (size_t i = 0; i < x.rows; ++i) n[i] = dot(x.row(i), x.row(i), x.cols);
  return n;
}

void normalize_rows(MatrixView<float> x) {
  for (size_t i = 0; i < x.rows; ++i) {
    float* r = x.row(i);
    float n = std::sqrt(dot(r, r, x.cols));
    if (n > 0.f)
      for (size_t t = 0; t < x.cols; ++t) r[t] /= n;
  }
}

// The first index of the smallest internal distance, given a row's inner products with the
// centers (overwritten with the distances); best receives that distance. Two passes that
// vectorize: the distances and their minimum, then the chunk where it first occurs.
ANISOSCAN_MULTIVERSION
static int32_t nearest_center(float* __restrict ip, const float* __restrict center_terms, size_t n, bool spherical,
                              float& best) {
  float lowest = std::numeric_limits<float>::infinity();  // a local: `best` might alias ip
#pragma omp simd reduction(min : lowest)
  for (size_t c = 0; c < n; ++c) {  // L2 up to the constant ||x||^2: ||c||^2 - 2<x,c>; spherical: -<x,c> / ||c||
    const float dist = assignment_distance(ip[c], center_terms[c], spherical);
    ip[c] = dist;
    lowest = dist < lowest ? dist : lowest;
  }
  constexpr size_t kChunk = 16;  // find the chunk holding it without a branch per element
  size_t arg = 0;
  for (; arg + kChunk <= n; arg += kChunk) {
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (size_t c = arg; c < arg + kChunk; ++c) hit |= ip[c] == lowest;
    if (hit) break;
  }
  while (arg + 1 < n && !(ip[arg] == lowest)) ++arg;
  best = lowest;
  return static_cast<int32_t>(arg);
}

void assign_nearest(MatrixView<const float> x, MatrixView<const float> centers, bool spherical,
                    int32_t* assignment, float* distance, int threads) {
  assign_nearest_panels(x, to_panels(centers).data(), assignment_terms(centers, spherical).data(), centers.rows,
                        spherical, assignment, distance, threads);
}

std::vector<float> assignment_terms(MatrixView<const float> centers, bool spherical) {
  std::vector<float> terms = row_norms_sq(centers);
  if (spherical)
    for (float& t : terms) t = t > 0.f ? 1.f / std::sqrt(t) : 0.f;
  return terms;
}

void assign_nearest_panels(MatrixView<const float> x, const float* panels, const float* center_terms,
                           size_t ncenters, bool spherical, int32_t* assignment, float* distance, int threads) {
  const size_t stride = panel_count(ncenters) * kPanelRows;
  parallel_for(x.rows, threads, kProductRows, [&](size_t begin, size_t end, int) {
    std::vector<float> ip(kProductRows * stride);
    for (size_t b = begin; b < end; b += kProductRows) {
      size_t nb = std::min(kProductRows, end - b);
      inner_products_panels({x.row(b), nb, x.cols}, panels, ncenters, ip.data());
      for (size_t i = 0; i < nb; ++i) {
        float best;
        assignment[b + i] = nearest_center(ip.data() + i * stride, center_terms, ncenters, spherical, best);
        if (distance) {
          const float* xi = x.row(b + i);
          distance[b + i] = spherical ? best : std::max(0.f, best + dot(xi, xi, x.cols));
        }
      }
    }
  });
}

}  // namespace anisoscan
