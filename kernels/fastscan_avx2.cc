// AVX2 kernel: 32 vectors x 2 sub-spaces per 32-byte load, two vpshufb lookups per load.
// Compiled with -mavx2 for this file only; called only when the CPU has AVX2.
#include <immintrin.h>

#include "fastscan.h"
#include "fastscan_simd_common.h"

namespace anisoscan {

namespace {

float horizontal_min(__m256 v) {
  __m128 x = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_min_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_min_ss(x, _mm_shuffle_ps(x, x, 1)));
}

float horizontal_max(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_max_ss(x, _mm_shuffle_ps(x, x, 1)));
}

// One table row (16 floats) as two 8-float halves.
struct Avx2Row : RowByRowMinmax<Avx2Row> {
  static void minmax(const float* row, float& lo, float& hi) {
    const __m256 a = _mm256_loadu_ps(row), b = _mm256_loadu_ps(row + 8);
    lo = horizontal_min(_mm256_min_ps(a, b));
    hi = horizontal_max(_mm256_max_ps(a, b));
  }
  static __m256i quantize_half(const float* half, float lo, float scale, float top) {
    __m256 x = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(half), _mm256_set1_ps(lo)), _mm256_set1_ps(scale));
    x = _mm256_min_ps(_mm256_add_ps(x, _mm256_set1_ps(0.5f)), _mm256_set1_ps(top));
    return _mm256_cvttps_epi32(x);
  }
  static void quantize(const float* row, float lo, float scale, float top, uint8_t* out) {
    // packus works per 128-bit lane: reorder the 64-bit quarters to restore row order.
    const __m256i words = _mm256_permute4x64_epi64(
        _mm256_packus_epi32(quantize_half(row, lo, scale, top), quantize_half(row + 8, lo, scale, top)), 0xD8);
    const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), bytes);
  }
};

void quantize_table(const float* lut, size_t m, QuantizedLut& out) { quantize_lut_rows<Avx2Row>(lut, m, out); }

// Per pair p, 64 bytes: table 2p in both 128-bit lanes, then table 2p+1 in both lanes.
void prepare_lut(const uint8_t* table, size_t m, uint8_t* out) {
  FastScanLayout layout{m};
  for (size_t p = 0; p < layout.num_pairs(); ++p) broadcast_pair_avx2(table, p, out + p * 64);
}

struct Avx2Scan {
  template <size_t Q>
  static void group(const uint8_t* const* luts, size_t m, const uint8_t* codes, size_t n, uint32_t* limits,
                    ScanSink* const* sinks) {
    FastScanLayout layout{m};
    for (size_t b = 0; b * 32 < n && any_open<Q>(limits); ++b) {
      const uint8_t* block = layout.block(codes, b);
      __m256i acc[Q], acc_odd[Q];
      for (size_t j = 0; j < Q; ++j) acc[j] = acc_odd[j] = _mm256_setzero_si256();
      for (size_t p = 0; p < layout.num_pairs(); ++p) {
        __m256i lo, hi;
        split_nibbles(FastScanLayout::pair_codes(block, p), lo, hi);
        for (size_t j = 0; j < Q; ++j) accumulate_pair(luts[j] + p * 64, lo, hi, acc[j], acc_odd[j]);
      }
      for (size_t j = 0; j < Q; ++j)
        if (limits[j] > 0) limits[j] = finish_block(acc[j], acc_odd[j], n, b, limits[j], *sinks[j]);
    }
  }
};

void scan(const uint8_t* const* luts, size_t nq, size_t m, const uint8_t* codes, size_t n, uint32_t* limits,
          ScanSink* const* sinks) {
  scan_in_groups<Avx2Scan>(luts, nq, m, codes, n, limits, sinks);
}

}  // namespace

const FastScanKernel& fastscan_kernel_avx2() {
  static const FastScanKernel kernel{SimdLevel::kAvx2, quantize_table, prepare_lut, scan};
  return kernel;
}

}  // namespace anisoscan
