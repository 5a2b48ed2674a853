// FastScan: approximate distances of 4-bit PQ codes from a uint8 lookup table, computed
// 32 (AVX2) or 64 (AVX-512) codes at a time with byte shuffles, accumulated in uint16.
// Each instruction-set level lives in its own file; this header is the one dispatch point.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "aligned_vector.h"
#include "fastscan_layout.h"
#include "fastscan_lut.h"

namespace anisoscan {

enum class SimdLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const char* simd_level_name(SimdLevel level);
SimdLevel parse_simd_level(const std::string& name);

// Best level this CPU supports.
SimdLevel detect_simd_level();

// The level searches use: ANISOSCAN_SIMD=scalar|avx2|avx512 forces one (an error if the CPU
// lacks it), otherwise the detected one.
SimdLevel active_simd_level();

// The rule behind active_simd_level, for a given request (null or empty: none) and CPU.
SimdLevel resolve_simd_level(const char* forced, SimdLevel supported);

// Receives every vector whose quantized score is below the current limit, in increasing
// index order, and answers the new limit (65536 admits everything, 0 ends the scan).
class ScanSink {
 public:
  virtual ~ScanSink() = default;
  virtual uint32_t push(size_t index, uint16_t score) = 0;
};

// Outputs go to caller storage, so that a search allocates nothing per partition once its
// first table is built.
struct FastScanKernel {
  // Queries a SIMD kernel scans per pass over the codes (their accumulators stay in registers).
  static constexpr size_t kQueriesPerPass = 4;

  SimdLevel level;
  // quantize_lut (fastscan_lut.h) with this level's instructions: the same bytes, scale, offset.
  void (*quantize_lut)(const float* lut, size_t num_subspaces, QuantizedLut& out);
  // Rearranges a quantized table [padded sub-spaces][16] into the kernel's register order;
  // `out` holds prepared_lut_bytes(num_subspaces).
  void (*prepare_lut)(const uint8_t* table, size_t num_subspaces, uint8_t* out);
  // Scans n vectors of packed codes (FastScanLayout) for nq queries at once: query j has
  // prepared table luts[j], starts at limits[j] and feeds sinks[j] (distinct sinks). Each
  // code block is loaded once per kQueriesPerPass queries; each sink sees exactly what a
  // scan of its query alone would give it.
  void (*scan)(const uint8_t* const* luts, size_t nq, size_t num_subspaces, const uint8_t* codes, size_t n,
               uint32_t* limits, ScanSink* const* sinks);

  // Bytes per sub-space pair of a prepared table: 32 where it is the quantized table itself.
  size_t prepared_bytes_per_pair;

  size_t prepared_lut_bytes(size_t num_subspaces) const {
    return FastScanLayout{num_subspaces}.num_pairs() * prepared_bytes_per_pair;
  }
  void scan_one(const uint8_t* lut, size_t num_subspaces, const uint8_t* codes, size_t n, uint32_t limit,
                ScanSink& sink) const {
    ScanSink* sinks[] = {&sink};
    scan(&lut, 1, num_subspaces, codes, n, &limit, sinks);
  }
};

const FastScanKernel& fastscan_kernel(SimdLevel level);

// Per-ISA kernels (defined in fastscan_<isa>.cc).
const FastScanKernel& fastscan_kernel_scalar();
const FastScanKernel& fastscan_kernel_avx2();
const FastScanKernel& fastscan_kernel_avx512();

}  // namespace anisoscan
