// The on-disk format of an IvfIndex (little-endian):
//   "ANISOSCN"  8-byte magic
//   u32         format version (kFormatVersion)
//   u32         reserved, 0
//   u64         payload length in bytes
//   payload     parameters, centers, codebooks, then each partition's ids, codes, raw vectors
//   u32         CRC-32 (IEEE) of the payload
// Files are written to a temporary name and renamed into place, so a crash never leaves a
// half-written index under the final name.
#pragma once

#include <stdexcept>
#include <string>

namespace anisoscan {

class IvfIndex;

// A file that cannot be read back as an index: the message names the file and the reason.
class IndexFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class IndexFile {
 public:
  static constexpr uint32_t kFormatVersion = 1;
  static void write(const IvfIndex& index, const std::string& path);
  static IvfIndex read(const std::string& path);
};

}  // namespace anisoscan
