// The on-disk format of an IvfIndex (little-endian), version 4:
//   "ANISOSCN"  8-byte magic
//   u32         format version
//   u32         reserved, 0
//   u64         payload length in bytes
//   payload     parameters, centers, codebooks, then each partition's ids, codes, raw vectors;
//               each array is a u64 element count followed by its elements, which start
//               on a 64-byte boundary of the file (zero padding before them)
//   u32         CRC-32 (IEEE) of everything before it: header and payload
// Version 3 is version 4 with the CRC over the payload alone. Version 2 also lacks the
// by_residual parameter (its codes are residual); version 1 also lacks the padding. All are
// still read (version 1 by copying, not mapping).
// Files are written to a temporary name and renamed into place, so a crash never leaves a
// half-written index under the final name. A file of version 2 or later can be memory-mapped:
// the arrays are used in place and copied only when a partition changes.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace anisoscan {

class IvfIndex;

// A file that cannot be read back as an index: the message names the file and the reason.
class IndexFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writing an index file failed in the operating system (disk full, permissions, ...):
// error_number is the errno, so that callers can tell a full disk from other failures.
class IndexFileWriteError : public std::runtime_error {
 public:
  IndexFileWriteError(int error_number, const std::string& what)
      : std::runtime_error(what), error_number_(error_number) {}
  int error_number() const { return error_number_; }

 private:
  int error_number_;
};

// A read-only memory mapping of a whole file, unmapped when the last user lets go.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class IndexFile {
 public:
  static constexpr uint32_t kFormatVersion = 4;
  static void write(const IvfIndex& index, const std::string& path);
  static IvfIndex read(const std::string& path, bool mmap, bool verify_checksum);
  static size_t mapped_bytes(const std::shared_ptr<const MappedFile>& mapping) {
    return mapping ? mapping->size() : 0;
  }
};

}  // namespace anisoscan
