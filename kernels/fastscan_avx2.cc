// AVX2 kernel: 32 vectors x 2 sub-spaces per 32-byte load, two vpshufb lookups per load.
// Compiled with -mavx2 for this file only; called only when the CPU has AVX2.
#include <immintrin.h>

#include "fastscan.h"
#include "fastscan_simd_common.h"

namespace anisoscan {

namespace {

// Per pair p, 64 bytes: table 2p in both 128-bit lanes, then table 2p+1 in both lanes.
AlignedVector<uint8_t> prepare_lut(const uint8_t* table, size_t m) {
  FastScanLayout layout{m};
  AlignedVector<uint8_t> out(layout.num_pairs() * 64);
  for (size_t p = 0; p < layout.num_pairs(); ++p) broadcast_pair_avx2(table, p, out.data() + p * 64);
  return out;
}

void scan(const uint8_t* lut, size_t m, const uint8_t* codes, size_t n, uint32_t limit,
          ScanSink& sink) {
  FastScanLayout layout{m};
  const size_t pairs = layout.num_pairs();
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (size_t b = 0; b * 32 < n && limit > 0; ++b) {
    const uint8_t* block = layout.block(codes, b);
    __m256i acc = _mm256_setzero_si256(), acc_odd = _mm256_setzero_si256();
    for (size_t p = 0; p < pairs; ++p) {
      __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(FastScanLayout::pair_codes(block, p)));
      __m256i lo = _mm256_and_si256(c, low4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4);
      __m256i r0 = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + p * 64)), lo);
      __m256i r1 = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + p * 64 + 32)), hi);
      // acc sums whole 16-bit lanes (even byte + 256 * odd byte); acc_odd sums odd bytes.
      acc = _mm256_add_epi16(acc, _mm256_add_epi16(r0, r1));
      acc_odd = _mm256_add_epi16(acc_odd, _mm256_add_epi16(_mm256_srli_epi16(r0, 8), _mm256_srli_epi16(r1, 8)));
    }
    limit = finish_block(acc, acc_odd, n, b, limit, sink);
  }
}

}  // namespace

const FastScanKernel& fastscan_kernel_avx2() {
  static const FastScanKernel kernel{SimdLevel::kAvx2, prepare_lut, scan};
  return kernel;
}

}  // namespace anisoscan
