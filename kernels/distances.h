// Dense float kernels used by training, assignment, exact search and re-ranking.
// Compiled once per ISA with function multi-versioning, chosen by the loader at run time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "array_view.h"
#include "metric.h"

namespace anisoscan {

float dot(const float* a, const float* b, size_t d);
float l2_sq(const float* a, const float* b, size_t d);

// Internal distance (smaller is better) of one pair under the metric; cosine assumes
// both sides are already normalized.
inline float internal_distance(Metric metric, const float* q, const float* x, size_t d) {
  return metric == Metric::kL2 ? l2_sq(q, x, d) : -dot(q, x, d);
}

// Rows stored as panels for scoring one query against many short rows (partition centers):
// panel b holds rows [b * kPanelRows, (b + 1) * kPanelRows) transposed, [d][kPanelRows],
// zero-padded. A panel's sums then stay in registers for the whole of d, with no
// horizontal sums.
constexpr size_t kPanelRows = 64;
inline size_t panel_count(size_t rows) { return (rows + kPanelRows - 1) / kPanelRows; }
std::vector<float> to_panels(MatrixView<const float> y);

// out[i * stride + j] = <x_i, y_j> for the panels of ny rows y, where stride (the room per
// row of out) is panel_count(ny) * kPanelRows.
void inner_products_panels(MatrixView<const float> x, const float* panels, size_t ny, float* out);
// Rows per pass of the product above where many rows are assigned: whole register tiles (of
// 4 and of 6 rows; a thread's last pass may be partial), few enough that their products
// with ~1,000 centers (200 KB) stay in L2.
constexpr size_t kProductRows = 48;
// out[i] = <x, row which[i] of rows [*, d]>, each summed exactly as inner_products_panels sums
// one panel lane (the same multiply-adds in dimension order, so the same bits): a few rows'
// products, read in place, that agree with the whole panel product.
void inner_products_rows(const float* x, const float* rows, size_t d, const uint32_t* which, size_t m, float* out);

// Squared norms of the rows.
std::vector<float> row_norms_sq(MatrixView<const float> x);

// Scales each row to unit length in place; zero rows stay zero.
void normalize_rows(MatrixView<float> x);

// For each row of x, the index of the nearest row of `centers` (L2), or when `spherical` of
// the center in the most similar direction (the largest <x, c> / ||c||: the centers are the
// means of their members, which the residual codes want, and a mean's length says how spread
// its members are, not how close a point is). Optionally writes the internal distance too.
void assign_nearest(MatrixView<const float> x, MatrixView<const float> centers, bool spherical,
                    int32_t* assignment, float* distance, int threads);
// The distance assign_nearest minimizes, from <x, c> and the center's assignment_terms entry.
inline float assignment_distance(float product, float term, bool spherical) {
  return spherical ? -(product * term) : term - 2.f * product;
}
// Each center's term in that distance: ||c||^2 under L2 (||x - c||^2 = ||c||^2 - 2<x, c> up to
// ||x||^2), 1 / ||c|| when spherical (0 for a zero center).
std::vector<float> assignment_terms(MatrixView<const float> centers, bool spherical);
// The same for centers held as panels (to_panels), with their assignment_terms.
void assign_nearest_panels(MatrixView<const float> x, const float* panels, const float* center_terms,
                           size_t ncenters, bool spherical, int32_t* assignment, float* distance, int threads);

}  // namespace anisoscan
