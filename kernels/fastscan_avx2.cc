// AVX2 kernel: 32 vectors x 2 sub-spaces per 32-byte load, two vpshufb lookups per load.
// Compiled with -mavx2 for this file only; called only when the CPU has AVX2.
#include <immintrin.h>

#include <cstring>

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

// Reduces 8 registers to one whose lane i is the reduction of register i's 8 lanes: three
// levels, each pairing registers and halving the lanes left per row (7 reductions in all
// instead of 3 per register). min and max are exact, so the order does not matter.
template <typename Op>
__m256 reduce_8_rows(const __m256 v[8], Op op) {
  __m256 p[4], q[2];
  for (int i = 0; i < 4; ++i)  // p[i]: 4 partials of row 2i, then 4 of row 2i+1
    p[i] = op(_mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x20), _mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x31));
  for (int i = 0; i < 2; ++i)  // 128-bit lane L of q[i]: 2 partials of row 4i+L, then 2 of row 4i+2+L
    q[i] = op(_mm256_shuffle_ps(p[2 * i], p[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
              _mm256_shuffle_ps(p[2 * i], p[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // Lane 4L + j holds row 2j + L: back to row order.
  const __m256 t = op(_mm256_shuffle_ps(q[0], q[1], _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm256_shuffle_ps(q[0], q[1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm256_permutevar8x32_ps(t, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// One table row (16 floats) as two 8-float halves.
struct Avx2Row {
  static void minmax(const float* row, float& lo, float& hi) {
    const __m256 a = _mm256_loadu_ps(row), b = _mm256_loadu_ps(row + 8);
    lo = horizontal_min(_mm256_min_ps(a, b));
    hi = horizontal_max(_mm256_max_ps(a, b));
  }
  static void minmax_rows(const float* lut, size_t m, float* lo, float* hi) {
    size_t s = 0;
    for (; s + 8 <= m; s += 8) {
      __m256 low[8], high[8];  // each row's halves folded: 8 partial minima, 8 maxima
      for (int i = 0; i < 8; ++i) {
        const __m256 a = _mm256_loadu_ps(lut + (s + i) * kCodewords), b = _mm256_loadu_ps(lut + (s + i) * kCodewords + 8);
        low[i] = _mm256_min_ps(a, b);
        high[i] = _mm256_max_ps(a, b);
      }
      _mm256_storeu_ps(lo + s, reduce_8_rows(low, [](__m256 a, __m256 b) { return _mm256_min_ps(a, b); }));
      _mm256_storeu_ps(hi + s, reduce_8_rows(high, [](__m256 a, __m256 b) { return _mm256_max_ps(a, b); }));
    }
    for (; s < m; ++s) minmax(lut + s * kCodewords, lo[s], hi[s]);
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

// The quantized table as it is, 16 bytes per sub-space: the scan broadcasts each row to both
// 128-bit lanes as it loads it. Tables then take half the memory and cache, which blocks of
// queries, each visit reading its query's table, gain by (mpnet batched: up to +10%); a table
// already in L1 scans a little slower (one query per call: within noise end to end).
void prepare_lut(const uint8_t* table, size_t m, uint8_t* out) {
  std::memcpy(out, table, FastScanLayout{m}.padded_subspaces() * kCodewords);
}

// accumulate_lookups from a pair's 32 bytes in the form above.
inline void accumulate_rows(const uint8_t* rows32, __m256i lo, __m256i hi, __m256i& acc, __m256i& acc_odd) {
  auto row = [](const uint8_t* p) { return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
  accumulate_lookups(row(rows32), row(rows32 + 16), lo, hi, acc, acc_odd);
}

struct Avx2Scan {
  template <size_t Q>
  static void group(const uint8_t* const* luts, size_t m, const uint8_t* codes, size_t n, uint32_t* limits,
                    ScanSink* const* sinks) {
    FastScanLayout layout{m};
    const uint8_t* last = n ? codes + layout.bytes_for(n) - 1 : codes;  // prefetch_codes_ahead's bound
    for (size_t b = 0; b * 32 < n && any_open<Q>(limits); ++b) {
      const uint8_t* block = layout.block(codes, b);
      __m256i acc[Q], acc_odd[Q];
      for (size_t j = 0; j < Q; ++j) acc[j] = acc_odd[j] = _mm256_setzero_si256();
      for (size_t p = 0; p < layout.num_pairs(); ++p) {
        if (p % 2 == 0) prefetch_codes_ahead(FastScanLayout::pair_codes(block, p), last);  // a line: two pairs
        __m256i lo, hi;
        split_nibbles(FastScanLayout::pair_codes(block, p), lo, hi);
        for (size_t j = 0; j < Q; ++j) accumulate_rows(luts[j] + p * 32, lo, hi, acc[j], acc_odd[j]);
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
  static const FastScanKernel kernel{SimdLevel::kAvx2, quantize_table, prepare_lut, scan, 32};
  return kernel;
}

}  // namespace anisoscan
