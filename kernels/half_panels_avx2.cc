// The AVX2 kernel of half_panels.h: compiled with -mavx2 -mfma -mf16c, called only where the
// CPU has them.
#include <immintrin.h>

#include <algorithm>

#include "distances.h"
#include "half_panels.h"

namespace anisoscan {

// A panel's 64 sums in 8 registers for the whole of d: each lane a chain of fused
// multiply-adds in dimension order, as the scalar reference computes it.
void half_panel_products_avx2(const float* x, size_t d, const uint16_t* panels, size_t ny, float* out) {
  static_assert(kPanelRows == 64, "8 registers of 8 lanes per panel");
  for (size_t b = 0; b * kPanelRows < ny; ++b) {
    const uint16_t* panel = panels + b * kPanelRows * d;
    __m256 sums[8];
    for (auto& s : sums) s = _mm256_setzero_ps();
    for (size_t t = 0; t < d; ++t) {
      const __m256 xt = _mm256_broadcast_ss(x + t);
      const uint16_t* column = panel + t * kPanelRows;
      for (int r = 0; r < 8; ++r) {
        const __m128i h = _mm_load_si128(reinterpret_cast<const __m128i*>(column + 8 * r));
        sums[r] = _mm256_fmadd_ps(xt, _mm256_cvtph_ps(h), sums[r]);
      }
    }
    alignas(32) float lanes[kPanelRows];
    for (int r = 0; r < 8; ++r) _mm256_store_ps(lanes + 8 * r, sums[r]);
    const size_t count = std::min(kPanelRows, ny - b * kPanelRows);
    for (size_t j = 0; j < count; ++j) out[b * kPanelRows + j] = lanes[j];
  }
}

}  // namespace anisoscan
