// AVX-512BW kernel: 32 vectors x 4 sub-spaces per 64-byte load. The layout is the same as
// for AVX2; the two 256-bit halves of each accumulator cover adjacent sub-space pairs and
// are folded together once per block.
#include <immintrin.h>

#include "fastscan.h"
#include "fastscan_simd_common.h"

namespace anisoscan {

namespace {

// Per group of two pairs (2g, 2g+1), 128 bytes: lanes [t4g, t4g, t4g+2, t4g+2] for the low
// nibbles, then [t4g+1, t4g+1, t4g+3, t4g+3] for the high ones. An odd last pair uses the
// AVX2 form.
AlignedVector<uint8_t> prepare_lut(const uint8_t* table, size_t m) {
  FastScanLayout layout{m};
  const size_t pairs = layout.num_pairs(), groups = pairs / 2;
  AlignedVector<uint8_t> out(groups * 128 + (pairs % 2) * 64);
  for (size_t g = 0; g < groups; ++g) {
    uint8_t a[64], c[64];
    broadcast_pair_avx2(table, 2 * g, a);
    broadcast_pair_avx2(table, 2 * g + 1, c);
    uint8_t* o = out.data() + g * 128;
    std::memcpy(o, a, 32);           // low nibbles of pair 2g
    std::memcpy(o + 32, c, 32);      // low nibbles of pair 2g+1
    std::memcpy(o + 64, a + 32, 32); // high nibbles of pair 2g
    std::memcpy(o + 96, c + 32, 32); // high nibbles of pair 2g+1
  }
  if (pairs % 2) broadcast_pair_avx2(table, pairs - 1, out.data() + groups * 128);
  return out;
}

void scan(const uint8_t* lut, size_t m, const uint8_t* codes, size_t n, uint32_t limit,
          ScanSink& sink) {
  FastScanLayout layout{m};
  const size_t pairs = layout.num_pairs(), groups = pairs / 2;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m256i low4_256 = _mm256_set1_epi8(0x0F);
  for (size_t b = 0; b * 32 < n && limit > 0; ++b) {
    const uint8_t* block = layout.block(codes, b);
    __m512i acc = _mm512_setzero_si512(), acc_odd = _mm512_setzero_si512();
    for (size_t g = 0; g < groups; ++g) {
      __m512i c = _mm512_loadu_si512(FastScanLayout::pair_codes(block, 2 * g));
      __m512i lo = _mm512_and_si512(c, low4);
      __m512i hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), low4);
      __m512i r0 = _mm512_shuffle_epi8(_mm512_loadu_si512(lut + g * 128), lo);
      __m512i r1 = _mm512_shuffle_epi8(_mm512_loadu_si512(lut + g * 128 + 64), hi);
      acc = _mm512_add_epi16(acc, _mm512_add_epi16(r0, r1));
      acc_odd = _mm512_add_epi16(acc_odd, _mm512_add_epi16(_mm512_srli_epi16(r0, 8), _mm512_srli_epi16(r1, 8)));
    }
    __m256i acc256 = _mm256_add_epi16(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
    __m256i odd256 = _mm256_add_epi16(_mm512_castsi512_si256(acc_odd), _mm512_extracti64x4_epi64(acc_odd, 1));
    if (pairs % 2) {
      const uint8_t* tail_lut = lut + groups * 128;
      __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(FastScanLayout::pair_codes(block, pairs - 1)));
      __m256i lo = _mm256_and_si256(c, low4_256);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4_256);
      __m256i r0 = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tail_lut)), lo);
      __m256i r1 = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tail_lut + 32)), hi);
      acc256 = _mm256_add_epi16(acc256, _mm256_add_epi16(r0, r1));
      odd256 = _mm256_add_epi16(odd256, _mm256_add_epi16(_mm256_srli_epi16(r0, 8), _mm256_srli_epi16(r1, 8)));
    }
    limit = finish_block(acc256, odd256, n, b, limit, sink);
  }
}

}  // namespace

const FastScanKernel& fastscan_kernel_avx512() {
  static const FastScanKernel kernel{SimdLevel::kAvx512, prepare_lut, scan};
  return kernel;
}

}  // namespace anisoscan
