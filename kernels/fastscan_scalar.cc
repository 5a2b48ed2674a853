// The scalar reference every SIMD kernel must match exactly.
#include <cstring>

#include "fastscan.h"

namespace anisoscan {

namespace {

void prepare_lut(const uint8_t* table, size_t m, uint8_t* out) {
  std::memcpy(out, table, FastScanLayout{m}.padded_subspaces() * 16);
}

void scan_query(const uint8_t* lut, size_t m, const uint8_t* codes, size_t n, uint32_t limit, ScanSink& sink) {
  FastScanLayout layout{m};
  constexpr size_t kB = FastScanLayout::kBlockVectors;
  for (size_t b = 0; b * kB < n && limit > 0; ++b) {
    const uint8_t* block = layout.block(codes, b);
    uint32_t scores[kB] = {};
    for (size_t p = 0; p < layout.num_pairs(); ++p) {
      const uint8_t* lo_table = lut + (2 * p) * 16;
      const uint8_t* hi_table = lut + (2 * p + 1) * 16;  // zeros when m is odd
      for (size_t i = 0; i < kB; ++i) {
        const uint8_t byte = FastScanLayout::pair_codes(block, p)[i];
        scores[i] += lo_table[byte & 0x0F] + hi_table[byte >> 4];
      }
    }
    const size_t count = n - b * kB < kB ? n - b * kB : kB;
    for (size_t i = 0; i < count && limit > 0; ++i)
      if (scores[i] < limit) limit = sink.push(b * kB + i, static_cast<uint16_t>(scores[i]));
  }
}

// The reference takes the queries one after another.
void scan(const uint8_t* const* luts, size_t nq, size_t m, const uint8_t* codes, size_t n, uint32_t* limits,
          ScanSink* const* sinks) {
  for (size_t j = 0; j < nq; ++j) scan_query(luts[j], m, codes, n, limits[j], *sinks[j]);
}

}  // namespace

const FastScanKernel& fastscan_kernel_scalar() {
  static const FastScanKernel kernel{SimdLevel::kScalar, quantize_lut, prepare_lut, scan, 32};
  return kernel;
}

}  // namespace anisoscan
