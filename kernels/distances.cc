#include "distances.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "multiversion.h"
#include "parallel.h"

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

// Four y rows per pass so that each x element is loaded once per four dot products.
ANISOSCAN_MULTIVERSION
static void inner_products_tile(const float* xi, const float* y0, const float* y1, const float* y2,
                                const float* y3, size_t d, float* out4) {
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (size_t t = 0; t < d; ++t) {
    s0 += xi[t] * y0[t];
    s1 += xi[t] * y1[t];
    s2 += xi[t] * y2[t];
    s3 += xi[t] * y3[t];
  }
  out4[0] = s0;
  out4[1] = s1;
  out4[2] = s2;
  out4[3] = s3;
}

void inner_products(MatrixView<const float> x, MatrixView<const float> y, float* out) {
  const size_t d = x.cols;
  constexpr size_t kRowBlock = 64;  // keeps a y block in L1/L2 while x rows stream by
  for (size_t j0 = 0; j0 < y.rows; j0 += kRowBlock) {
    size_t j1 = std::min(y.rows, j0 + kRowBlock);
    for (size_t i = 0; i < x.rows; ++i) {
      const float* xi = x.row(i);
      float* o = out + i * y.rows;
      size_t j = j0;
      for (; j + 4 <= j1; j += 4)
        inner_products_tile(xi, y.row(j), y.row(j + 1), y.row(j + 2), y.row(j + 3), d, o + j);
      for (; j < j1; ++j) o[j] = dot(xi, y.row(j), d);
    }
  }
}

std::vector<float> to_panels(MatrixView<const float> y) {
  std::vector<float> panels(panel_count(y.rows) * kPanelRows * y.cols, 0.f);
  for (size_t j = 0; j < y.rows; ++j) {
    float* panel = panels.data() + (j / kPanelRows) * kPanelRows * y.cols;
    for (size_t t = 0; t < y.cols; ++t) panel[t * kPanelRows + j % kPanelRows] = y.row(j)[t];
  }
  return panels;
}

ANISOSCAN_MULTIVERSION
void inner_products_panels(const float* q, const float* panels, size_t d, size_t ny, float* out) {
  for (size_t b = 0; b < panel_count(ny); ++b) {
    const float* panel = panels + b * kPanelRows * d;
    float sums[kPanelRows] = {};
    for (size_t t = 0; t < d; ++t) {
      const float qt = q[t];
#pragma omp simd
      for (size_t j = 0; j < kPanelRows; ++j) sums[j] += qt * panel[t * kPanelRows + j];
    }
    for (size_t j = 0; j < kPanelRows; ++j) out[b * kPanelRows + j] = sums[j];
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

void assign_nearest(MatrixView<const float> x, MatrixView<const float> centers, bool spherical,
                    int32_t* assignment, float* distance, int threads) {
  std::vector<float> center_norms = row_norms_sq(centers);
  constexpr size_t kBatch = 256;
  parallel_for(x.rows, threads, kBatch, [&](size_t begin, size_t end, int) {
    std::vector<float> ip(kBatch * centers.rows);
    for (size_t b = begin; b < end; b += kBatch) {
      size_t nb = std::min(kBatch, end - b);
      inner_products({x.row(b), nb, x.cols}, centers, ip.data());
      for (size_t i = 0; i < nb; ++i) {
        const float* row = ip.data() + i * centers.rows;
        float best = std::numeric_limits<float>::infinity();
        int32_t arg = 0;
        for (size_t c = 0; c < centers.rows; ++c) {
          // L2 up to the constant ||x||^2: ||c||^2 - 2<x,c>.
          float v = spherical ? -row[c] : center_norms[c] - 2.f * row[c];
          if (v < best) {
            best = v;
            arg = static_cast<int32_t>(c);
          }
        }
        assignment[b + i] = arg;
        if (distance) {
          const float* xi = x.row(b + i);
          distance[b + i] = spherical ? best : std::max(0.f, best + dot(xi, xi, x.cols));
        }
      }
    }
  });
}

}  // namespace anisoscan
