// The AVX2 kernel of int8_centers.h: compiled with -mavx2, called only where the CPU has it.
#include <immintrin.h>

#include <cstring>

#include "distances.h"
#include "int8_centers.h"

namespace anisoscan {

static_assert(kPanelRows == 64 && kInt8Group == 4, "a group of a panel is 8 registers of 8 centers x 4 bytes");

// A panel's 64 sums in 8 registers (8 independent chains; a group's 256 bytes per step, as
// streaming the panels is what bounds one query). Per group: the query's 4 bytes broadcast,
// multiplied with the centers' byte by byte, adjacent products added into 16 bits
// (vpmaddubsw, which cannot saturate here), then into 32 (vpmaddwd by ones).
void int8_panel_products_avx2(const uint8_t* codes, size_t dims, const int8_t* panels, size_t ny, int32_t* sums) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (size_t b = 0; b * kPanelRows < ny; ++b) {
    const int8_t* panel = panels + b * kPanelRows * dims;
    __m256i acc[8];
    for (auto& a : acc) a = _mm256_setzero_si256();
    for (size_t g = 0; g < dims / kInt8Group; ++g) {
      int32_t quad;
      std::memcpy(&quad, codes + g * kInt8Group, sizeof quad);
      const __m256i q = _mm256_set1_epi32(quad);
      const int8_t* group = panel + g * kPanelRows * kInt8Group;
      for (size_t r = 0; r < 8; ++r) {
        const __m256i c = _mm256_load_si256(reinterpret_cast<const __m256i*>(group + 32 * r));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(q, c), ones));
      }
    }
    for (size_t r = 0; r < 8; ++r)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + b * kPanelRows + 8 * r), acc[r]);
  }
}

}  // namespace anisoscan
