// AVX-512BW kernel: 32 vectors x 4 sub-spaces per 64-byte load. The layout is the same as
// for AVX2; the two 256-bit halves of each accumulator cover adjacent sub-space pairs and
// are folded together once per block.
#include <immintrin.h>

#include "fastscan.h"
#include "fastscan_simd_common.h"

namespace anisoscan {

namespace {

// Reduces 16 registers to one whose lane i is the reduction of register i's 16 lanes: four
// levels, each pairing registers and halving the lanes left per row (15 reductions in all
// instead of 4 per register). min and max are exact, so the order does not matter.
template <typename Op>
__m512 reduce_16_rows(__m512 v[16], Op op) {
  __m512 p[8], q[4], r[2];
  for (int i = 0; i < 8; ++i)  // p[i]: 8 partials of row 2i, then 8 of row 2i+1
    p[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)  // q[i]: 128-bit lanes hold 4 partials of rows 4i .. 4i+3
    q[i] = op(_mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0x88), _mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)  // lane L of r[i]: 2 partials of row 8i+L, then 2 of row 8i+4+L
    r[i] = op(_mm512_shuffle_ps(q[2 * i], q[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
              _mm512_shuffle_ps(q[2 * i], q[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // Lane 4L + j holds row 4j + L: transpose back to row order.
  const __m512 t = op(_mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i row_order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(row_order, t);
}

// One table row (16 floats) is one register.
struct Avx512Row {
  static void minmax(const float* row, float& lo, float& hi) {
    const __m512 v = _mm512_loadu_ps(row);
    lo = _mm512_reduce_min_ps(v);
    hi = _mm512_reduce_max_ps(v);
  }
  static void minmax_rows(const float* lut, size_t m, float* lo, float* hi) {
    size_t s = 0;
    for (; s + 16 <= m; s += 16) {
      __m512 v[16];
      for (int i = 0; i < 16; ++i) v[i] = _mm512_loadu_ps(lut + (s + i) * kCodewords);
      _mm512_storeu_ps(lo + s, reduce_16_rows(v, [](__m512 a, __m512 b) { return _mm512_min_ps(a, b); }));
      _mm512_storeu_ps(hi + s, reduce_16_rows(v, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); }));
    }
    for (; s < m; ++s) minmax(lut + s * kCodewords, lo[s], hi[s]);
  }
  static void quantize(const float* row, float lo, float scale, float top, uint8_t* out) {
    __m512 x = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(row), _mm512_set1_ps(lo)), _mm512_set1_ps(scale));
    x = _mm512_min_ps(_mm512_add_ps(x, _mm512_set1_ps(0.5f)), _mm512_set1_ps(top));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(x)));
  }
};

void quantize_table(const float* lut, size_t m, QuantizedLut& out) { quantize_lut_rows<Avx512Row>(lut, m, out); }

// Per group of two pairs (2g, 2g+1), 128 bytes: lanes [t4g, t4g, t4g+2, t4g+2] for the low
// nibbles, then [t4g+1, t4g+1, t4g+3, t4g+3] for the high ones. An odd last pair takes 64
// bytes: each of its rows in both 128-bit lanes.
void prepare_lut(const uint8_t* table, size_t m, uint8_t* out) {
  FastScanLayout layout{m};
  const size_t pairs = layout.num_pairs(), groups = pairs / 2;
  for (size_t g = 0; g < groups; ++g) {
    uint8_t* o = out + g * 128;
    broadcast_row(table, 4 * g, o);           // low nibbles of pair 2g
    broadcast_row(table, 4 * g + 2, o + 32);  // low nibbles of pair 2g+1
    broadcast_row(table, 4 * g + 1, o + 64);  // high nibbles of pair 2g
    broadcast_row(table, 4 * g + 3, o + 96);  // high nibbles of pair 2g+1
  }
  if (pairs % 2) broadcast_pair_avx2(table, pairs - 1, out + groups * 128);
}

struct Avx512Scan {
  template <size_t Q>
  static void group(const uint8_t* const* luts, size_t m, const uint8_t* codes, size_t n, uint32_t* limits,
                    ScanSink* const* sinks) {
    FastScanLayout layout{m};
    const size_t pairs = layout.num_pairs(), groups = pairs / 2;
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const uint8_t* last = n ? codes + layout.bytes_for(n) - 1 : codes;  // prefetch_codes_ahead's bound
    for (size_t b = 0; b * 32 < n && any_open<Q>(limits); ++b) {
      const uint8_t* block = layout.block(codes, b);
      __m512i acc[Q], acc_odd[Q];
      for (size_t j = 0; j < Q; ++j) acc[j] = acc_odd[j] = _mm512_setzero_si512();
      for (size_t g = 0; g < groups; ++g) {
        prefetch_codes_ahead(FastScanLayout::pair_codes(block, 2 * g), last);  // a line: this group's
        const __m512i c = _mm512_loadu_si512(FastScanLayout::pair_codes(block, 2 * g));
        const __m512i lo = _mm512_and_si512(c, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), low4);
        for (size_t j = 0; j < Q; ++j) {
          const __m512i pair = _mm512_add_epi8(_mm512_shuffle_epi8(_mm512_loadu_si512(luts[j] + g * 128), lo),
                                               _mm512_shuffle_epi8(_mm512_loadu_si512(luts[j] + g * 128 + 64), hi));
          acc[j] = _mm512_add_epi16(acc[j], pair);  // as accumulate_lookups
          acc_odd[j] = _mm512_add_epi16(acc_odd[j], _mm512_srli_epi16(pair, 8));
        }
      }
      __m256i tail_lo = _mm256_setzero_si256(), tail_hi = _mm256_setzero_si256();
      if (pairs % 2) split_nibbles(FastScanLayout::pair_codes(block, pairs - 1), tail_lo, tail_hi);
      for (size_t j = 0; j < Q; ++j) {
        __m256i a = _mm256_add_epi16(_mm512_castsi512_si256(acc[j]), _mm512_extracti64x4_epi64(acc[j], 1));
        __m256i o = _mm256_add_epi16(_mm512_castsi512_si256(acc_odd[j]), _mm512_extracti64x4_epi64(acc_odd[j], 1));
        if (pairs % 2) accumulate_pair(luts[j] + groups * 128, tail_lo, tail_hi, a, o);
        if (limits[j] > 0) limits[j] = finish_block(a, o, n, b, limits[j], *sinks[j]);
      }
    }
  }
};

void scan(const uint8_t* const* luts, size_t nq, size_t m, const uint8_t* codes, size_t n, uint32_t* limits,
          ScanSink* const* sinks) {
  scan_in_groups<Avx512Scan>(luts, nq, m, codes, n, limits, sinks);
}

}  // namespace

const FastScanKernel& fastscan_kernel_avx512() {
  static const FastScanKernel kernel{SimdLevel::kAvx512, quantize_table, prepare_lut, scan, 64};
  return kernel;
}

}  // namespace anisoscan
