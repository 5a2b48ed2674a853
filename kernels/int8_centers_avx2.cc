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

// Adds a group's products to `acc`: the query's bytes times the centers' byte by byte,
// adjacent products added into 16 bits (vpmaddubsw, which cannot saturate here), then into
// 32 (vpmaddwd by ones).
__m256i add_group(__m256i acc, __m256i q, __m256i centers) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(q, centers), _mm256_set1_epi16(1)));
}

// One query against a whole panel: its 64 sums in 8 registers (8 independent chains; a
// group's 256 bytes per step, as streaming the panels is what bounds one query).
void panel_row(const uint8_t* codes, size_t dims, const int8_t* panel, int32_t* sums) {
  __m256i acc[8];
  for (auto& a : acc) a = _mm256_setzero_si256();
  for (size_t g = 0; g < dims / kInt8Group; ++g) {
    const __m256i q = broadcast_group(codes, g);
    const int8_t* group = panel + g * kPanelRows * kInt8Group;
    for (size_t r = 0; r < 8; ++r)
      acc[r] = add_group(acc[r], q, _mm256_load_si256(reinterpret_cast<const __m256i*>(group + 32 * r)));
  }
  for (size_t r = 0; r < 8; ++r) _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + 8 * r), acc[r]);
}

// Four queries against 16 centers of a panel (from `column`): 8 sums registers, each group's
// two center registers used four times, so that multiplies, not loads, bound a block.
void panel_tile(const uint8_t* codes, size_t dims, const int8_t* panel, size_t column, int32_t* sums,
                size_t stride) {
  constexpr size_t kRows = 4;
  __m256i acc[kRows][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_si256();
  for (size_t g = 0; g < dims / kInt8Group; ++g) {
    const int8_t* group = panel + (g * kPanelRows + column) * kInt8Group;
    const __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(group));
    const __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(group + 32));
    for (size_t i = 0; i < kRows; ++i) {
      const __m256i q = broadcast_group(codes + i * dims, g);
      acc[i][0] = add_group(acc[i][0], q, c0);
      acc[i][1] = add_group(acc[i][1], q, c1);
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
