// Pieces shared by the SIMD kernels: table broadcasting and the candidate drain loop.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "fastscan.h"

namespace anisoscan {

// 64 bytes for pair p: table 2p twice (one copy per 128-bit lane), then table 2p+1 twice.
inline void broadcast_pair_avx2(const uint8_t* table, size_t p, uint8_t* out) {
  std::memcpy(out, table + 2 * p * 16, 16);
  std::memcpy(out + 16, table + 2 * p * 16, 16);
  std::memcpy(out + 32, table + (2 * p + 1) * 16, 16);
  std::memcpy(out + 48, table + (2 * p + 1) * 16, 16);
}

// Bits 0..count-1 set (count capped at 32): the real vectors of a possibly partial block.
inline uint32_t valid_mask(size_t count) {
  return count >= 32 ? 0xFFFFFFFFu : ((1u << count) - 1u);
}

// Pushes the vectors whose bit is set, lowest first; scores[0][j] is vector 2j's score and
// scores[1][j] vector 2j+1's. Rechecks each against the limit as it tightens, so the sink
// sees exactly the sequence the scalar reference produces.
inline uint32_t drain_candidates(uint32_t mask, const uint16_t (*scores)[16], size_t first,
                                 uint32_t limit, ScanSink& sink) {
  while (mask != 0 && limit > 0) {
    unsigned v = static_cast<unsigned>(__builtin_ctz(mask));
    mask &= mask - 1;
    uint16_t score = scores[v & 1][v >> 1];
    if (score < limit) limit = sink.push(first + v, score);
  }
  return limit;
}

// The end of a block for both SIMD kernels: vector 2j's score is acc[j] - 256 acc_odd[j]
// (mod 2^16), vector 2j+1's is acc_odd[j]; test them against the limit, drain the passes.
// `static`: each kernel's translation unit keeps its own copy, compiled for its ISA.
static inline uint32_t finish_block(__m256i acc, __m256i acc_odd, size_t n, size_t b, uint32_t limit,
                                    ScanSink& sink) {
  const __m256i even = _mm256_sub_epi16(acc, _mm256_slli_epi16(acc_odd, 8));
  uint32_t mask = valid_mask(n - b * 32);
  if (limit <= 65535) {
    const __m256i thr = _mm256_set1_epi16(static_cast<short>(limit - 1));
    const uint32_t le_even = _mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_max_epu16(even, thr), thr));
    const uint32_t le_odd = _mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_max_epu16(acc_odd, thr), thr));
    mask &= (le_even & 0x55555555u) | (le_odd & 0xAAAAAAAAu);
  }
  if (mask == 0) return limit;
  alignas(32) uint16_t scores[2][16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(scores[0]), even);
  _mm256_store_si256(reinterpret_cast<__m256i*>(scores[1]), acc_odd);
  return drain_candidates(mask, scores, b * 32, limit, sink);
}

}  // namespace anisoscan
