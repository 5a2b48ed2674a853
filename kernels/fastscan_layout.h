// The one definition of the FastScan code layout, used by packing and by every kernel.
//
// Vectors are stored in blocks of 32. Sub-spaces are taken in pairs (2p, 2p+1); for pair p
// a block holds 32 bytes, byte i belonging to vector i of the block:
//   low nibble = code of sub-space 2p, high nibble = code of sub-space 2p+1.
// So one 32-byte load gives 32 vectors' codes for two sub-spaces, ready for vpshufb. An
// odd sub-space count is padded with a zero code whose lookup-table row is all zeros.
#pragma once

#include <cstddef>
#include <cstdint>

namespace anisoscan {

constexpr size_t kCodewords = 16;  // 4-bit codes: 16 codewords per sub-space, one nibble each

struct FastScanLayout {
  static constexpr size_t kBlockVectors = 32;

  size_t num_subspaces = 0;

  size_t num_pairs() const { return (num_subspaces + 1) / 2; }
  size_t padded_subspaces() const { return 2 * num_pairs(); }
  size_t block_bytes() const { return kBlockVectors * num_pairs(); }
  static size_t num_blocks(size_t n) { return (n + kBlockVectors - 1) / kBlockVectors; }
  size_t bytes_for(size_t n) const { return num_blocks(n) * block_bytes(); }

  // Block b of the packed codes, and within a block the 32 bytes of sub-space pair `pair`.
  const uint8_t* block(const uint8_t* codes, size_t b) const { return codes + b * block_bytes(); }
  static const uint8_t* pair_codes(const uint8_t* block, size_t pair) { return block + pair * kBlockVectors; }

  // Byte of `codes` that holds vector `v`'s codes for sub-space pair `pair`.
  size_t byte_offset(size_t v, size_t pair) const {
    return (v / kBlockVectors) * block_bytes() + pair * kBlockVectors + v % kBlockVectors;
  }

  uint8_t get(const uint8_t* codes, size_t v, size_t s) const {
    return (codes[byte_offset(v, s / 2)] >> (4 * (s & 1))) & 0x0F;
  }

  void set(uint8_t* codes, size_t v, size_t s, uint8_t code) const {
    uint8_t& byte = codes[byte_offset(v, s / 2)];
    const int shift = 4 * static_cast<int>(s & 1);
    byte = static_cast<uint8_t>((byte & ~(0x0F << shift)) | ((code & 0x0F) << shift));
  }

  // Writes rows of one-code-per-byte `codes` [n, num_subspaces] as vectors first..first+n-1.
  void pack(const uint8_t* codes, size_t n, size_t first, uint8_t* packed) const {
    for (size_t i = 0; i < n; ++i)
      for (size_t s = 0; s < num_subspaces; ++s) set(packed, first + i, s, codes[i * num_subspaces + s]);
  }
};

}  // namespace anisoscan
