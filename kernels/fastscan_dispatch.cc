#include <cstdlib>
#include <stdexcept>

#include "fastscan.h"

namespace anisoscan {

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar: return "scalar";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx512: return "avx512";
  }
  return "?";
}

SimdLevel parse_simd_level(const std::string& name) {
  if (name == "scalar") return SimdLevel::kScalar;
  if (name == "avx2") return SimdLevel::kAvx2;
  if (name == "avx512") return SimdLevel::kAvx512;
  throw std::invalid_argument("ANISOSCAN_SIMD: unknown level '" + name +
                              "'; use scalar, avx2 or avx512 (or unset it to auto-detect)");
}

SimdLevel detect_simd_level() {
#if defined(ANISOSCAN_X86_KERNELS)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) return SimdLevel::kAvx512;
  if (__builtin_cpu_supports("avx2")) return SimdLevel::kAvx2;
#endif
  return SimdLevel::kScalar;
}

SimdLevel active_simd_level() { return resolve_simd_level(std::getenv("ANISOSCAN_SIMD"), detect_simd_level()); }

SimdLevel resolve_simd_level(const char* forced, SimdLevel best) {
  if (forced == nullptr || *forced == '\0') return best;
  SimdLevel level = parse_simd_level(forced);
  if (static_cast<int>(level) > static_cast<int>(best))
    throw std::runtime_error(std::string("ANISOSCAN_SIMD=") + forced + ": this CPU supports at most '" +
                             simd_level_name(best) + "'; unset it or choose a lower level");
  return level;
}

const FastScanKernel& fastscan_kernel(SimdLevel level) {
  switch (level) {
#if defined(ANISOSCAN_X86_KERNELS)
    case SimdLevel::kAvx512: return fastscan_kernel_avx512();
    case SimdLevel::kAvx2: return fastscan_kernel_avx2();
#endif
    default: return fastscan_kernel_scalar();
  }
}

}  // namespace anisoscan
