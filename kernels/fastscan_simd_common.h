// Pieces shared by the SIMD kernels: table broadcasting and the candidate drain loop.
#pragma once

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

}  // namespace anisoscan
