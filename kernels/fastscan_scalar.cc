// The scalar reference every SIMD kernel must match exactly.
#include "fastscan.h"

namespace anisoscan {

namespace {

AlignedVector<uint8_t> prepare_lut(const uint8_t* table, size_t m) {
  FastScanLayout layout{m};
  return AlignedVector<uint8_t>(table, table + layout.padded_subspaces() * 16);
}

void scan(const uint8_t* lut, size_t m, const uint8_t* codes, size_t n, uint32_t limit,
          ScanSink& sink) {
  FastScanLayout layout{m};
  for (size_t v = 0; v < n && limit > 0; ++v) {
    uint32_t score = 0;
    for (size_t s = 0; s < m; ++s) score += lut[s * 16 + layout.get(codes, v, s)];
    if (score < limit) limit = sink.push(v, static_cast<uint16_t>(score));
  }
}

}  // namespace

const FastScanKernel& fastscan_kernel_scalar() {
  static const FastScanKernel kernel{SimdLevel::kScalar, prepare_lut, scan};
  return kernel;
}

}  // namespace anisoscan
