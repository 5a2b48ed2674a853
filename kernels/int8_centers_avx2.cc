// The AVX2 kernel of int8_centers.h: compiled with -mavx2, called only where the CPU has it.
#include <immintrin.h>

#include <cstring>

#include "distances.h"
#include "int8_centers.h"

namespace anisoscan {

static_assert(kPanelRows == 64 && kInt8Group == 4, "a group of a panel is 8 registers of 8 centers x 4 bytes");

namespace {

// One query's 4 codes of group g, in every 32-bit lane.
__m256i broadcast_group(const uint8_t* codes, size_t g) {
  int32_t quad;
  std::memcpy(&quad, codes + g * kInt8Group, sizeof quad);
  return _mm256_set1_epi32(quad);
}

// Products of the query's bytes with the centers' byte by byte, adjacent ones added into 16
// bits (vpmaddubsw: each sum within 16002, int8_centers.h).
__m256i pairs(__m256i q, const int8_t* centers) {
  return _mm256_maddubs_epi16(q, _mm256_load_si256(reinterpret_cast<const __m256i*>(centers)));
}

// Adds 16-bit sums to `acc`, adjacent ones added into 32 bits (vpmaddwd by ones).
__m256i widen_add(__m256i acc, __m256i sums16) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(sums16, _mm256_set1_epi16(1)));
}

// Adds to `acc` the products of groups g and g + 1 (both when `two`) with the 32 bytes of
// centers at `centers` in group g; group g + 1's are `step` bytes on.
__m256i add_groups(__m256i acc, const uint8_t* codes, size_t g, bool two, const int8_t* centers, size_t step) {
  __m256i s = pairs(broadcast_group(codes, g), centers);
  if (two) s = _mm256_add_epi16(s, pairs(broadcast_group(codes, g + 1), centers + step));
  return widen_add(acc, s);
}

// One query against a whole panel: its 64 sums in 8 registers (8 independent chains; two
// groups' 512 bytes per step, as streaming the panels is what bounds one query).
void panel_row(const uint8_t* codes, size_t dims, const int8_t* panel, int32_t* sums) {
  constexpr size_t kStep = kPanelRows * kInt8Group;
  const size_t groups = dims / kInt8Group;
  __m256i acc[8];
  for (auto& a : acc) a = _mm256_setzero_si256();
  for (size_t g = 0; g < groups; g += 2)
    for (size_t r = 0; r < 8; ++r)
      acc[r] = add_groups(acc[r], codes, g, g + 1 < groups, panel + g * kStep + 32 * r, kStep);
  for (size_t r = 0; r < 8; ++r) _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + 8 * r), acc[r]);
}

// Four queries against 16 centers of a panel (from `column`): 8 sums registers, each pair of
// groups' center registers used four times, so that multiplies, not loads, bound a block.
void panel_tile(const uint8_t* codes, size_t dims, const int8_t* panel, size_t column, int32_t* sums,
                size_t stride) {
  constexpr size_t kRows = 4, kStep = kPanelRows * kInt8Group;
  const size_t groups = dims / kInt8Group;
  __m256i acc[kRows][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_si256();
  for (size_t g = 0; g < groups; g += 2) {
    const int8_t* group = panel + g * kStep + column * kInt8Group;
    const bool two = g + 1 < groups;
    for (size_t i = 0; i < kRows; ++i) {
      acc[i][0] = add_groups(acc[i][0], codes + i * dims, g, two, group, kStep);
      acc[i][1] = add_groups(acc[i][1], codes + i * dims, g, two, group + 32, kStep);
    }
  }
  for (size_t i = 0; i < kRows; ++i)
    for (size_t h = 0; h < 2; ++h)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + i * stride + column + 8 * h), acc[i][h]);
}

}  // namespace

// Whole groups of four queries take tiles that share each load of the centers; the rest,
// and a query alone, stream each panel once with all 64 sums in registers.
void int8_panel_products_avx2(const uint8_t* codes, size_t rows, size_t dims, const int8_t* panels, size_t ny,
                              int32_t* sums) {
  const size_t stride = panel_count(ny) * kPanelRows, tiled = rows / 4 * 4;
  for (size_t b = 0; b < panel_count(ny); ++b) {
    const int8_t* panel = panels + b * kPanelRows * dims;
    for (size_t column = 0; column < kPanelRows; column += 16)
      for (size_t i = 0; i < tiled; i += 4)
        panel_tile(codes + i * dims, dims, panel, column, sums + i * stride + b * kPanelRows, stride);
    for (size_t i = tiled; i < rows; ++i) panel_row(codes + i * dims, dims, panel, sums + i * stride + b * kPanelRows);
  }
}

}  // namespace anisoscan
