// Pieces shared by the SIMD kernels: table broadcasting and the candidate drain loop.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "fastscan.h"

namespace anisoscan {

// Everything here is `static`: each kernel's translation unit keeps its own copy, compiled
// for its ISA, which the linker can never hand to code running on a lesser CPU.

// 32 bytes: table row s in both 128-bit lanes, as vpshufb looks up within each lane.
static inline void broadcast_row(const uint8_t* table, size_t s, uint8_t* out) {
  const __m128i row = _mm_loadu_si128(reinterpret_cast<const __m128i*>(table + s * 16));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_broadcastsi128_si256(row));
}

// 64 bytes for pair p: row 2p broadcast, then row 2p+1 broadcast.
static inline void broadcast_pair_avx2(const uint8_t* table, size_t p, uint8_t* out) {
  broadcast_row(table, 2 * p, out);
  broadcast_row(table, 2 * p + 1, out + 32);
}

// Adds one pair's lookups for 32 vectors: lo/hi are the codes' low and high nibbles, row_lo
// and row_hi the pair's two table rows, each in both 128-bit lanes. The two lookups add in
// bytes (a pair's entries stay within 255: QuantizedLut), then acc sums whole 16-bit lanes
// (even byte + 256 * odd byte) and acc_odd the odd bytes alone.
static inline void accumulate_lookups(__m256i row_lo, __m256i row_hi, __m256i lo, __m256i hi, __m256i& acc,
                                      __m256i& acc_odd) {
  const __m256i pair = _mm256_add_epi8(_mm256_shuffle_epi8(row_lo, lo), _mm256_shuffle_epi8(row_hi, hi));
  acc = _mm256_add_epi16(acc, pair);
  acc_odd = _mm256_add_epi16(acc_odd, _mm256_srli_epi16(pair, 8));
}

// The same from a pair's 64 prepared bytes (broadcast_pair_avx2).
static inline void accumulate_pair(const uint8_t* lut64, __m256i lo, __m256i hi, __m256i& acc, __m256i& acc_odd) {
  accumulate_lookups(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut64)),
                     _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut64 + 32)), lo, hi, acc, acc_odd);
}

// How far ahead of the scan a kernel requests a partition's codes, one cache line per call of
// prefetch_codes_ahead. The hardware prefetcher is slow to catch a stream as short as a
// partition (~14 KB at 768-d); asking 1 KB ahead gave one query per call +8% (mpnet SOAR, the
// medians of alternating builds), and batched scans the same.
constexpr size_t kCodesAheadBytes = 1024;

// Requests the line kCodesAheadBytes past `at`, or the codes' last line (`last`) near their end.
static inline void prefetch_codes_ahead(const uint8_t* at, const uint8_t* last) {
  const uint8_t* ahead = at + kCodesAheadBytes;
  _mm_prefetch(reinterpret_cast<const char*>(ahead < last ? ahead : last), _MM_HINT_T0);
}

// The low and high nibbles of 32 bytes of codes.
static inline void split_nibbles(const uint8_t* codes32, __m256i& lo, __m256i& hi) {
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes32));
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  lo = _mm256_and_si256(c, low4);
  hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4);
}

// Bits 0..count-1 set (count capped at 32): the real vectors of a possibly partial block.
static inline uint32_t valid_mask(size_t count) {
  return count >= 32 ? 0xFFFFFFFFu : ((1u << count) - 1u);
}

// Pushes the vectors whose bit is set, lowest first; scores[0][j] is vector 2j's score and
// scores[1][j] vector 2j+1's. Rechecks each against the limit as it tightens, so the sink
// sees exactly the sequence the scalar reference produces.
static inline uint32_t drain_candidates(uint32_t mask, const uint16_t (*scores)[16], size_t first,
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

// A kernel's scan over any number of queries, kQueriesPerPass at a time: Scan::group<Q>
// scans Q queries in one pass over the codes.
template <typename Scan>
static inline void scan_in_groups(const uint8_t* const* luts, size_t nq, size_t m, const uint8_t* codes, size_t n,
                                  uint32_t* limits, ScanSink* const* sinks) {
  static_assert(FastScanKernel::kQueriesPerPass == 4, "the cases below cover 1..4 queries per pass");
  for (size_t j = 0; j < nq; j += 4) {
    switch (nq - j) {
      case 1: Scan::template group<1>(luts + j, m, codes, n, limits + j, sinks + j); break;
      case 2: Scan::template group<2>(luts + j, m, codes, n, limits + j, sinks + j); break;
      case 3: Scan::template group<3>(luts + j, m, codes, n, limits + j, sinks + j); break;
      default: Scan::template group<4>(luts + j, m, codes, n, limits + j, sinks + j); break;
    }
  }
}

template <size_t Q>
static inline bool any_open(const uint32_t* limits) {
  for (size_t j = 0; j < Q; ++j)
    if (limits[j] > 0) return true;
  return false;
}

}  // namespace anisoscan
