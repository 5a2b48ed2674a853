// The container of an index file (little-endian), version 5; IvfIndex::save defines the payload:
//   "ANISOSCN"  8-byte magic
//   u32         format version
//   u32         reserved, 0
//   u64         payload length in bytes
//   payload     values, and arrays: a u64 element count followed by the elements, which
//               start on a 64-byte boundary of the file (zero padding before them)
//   u32         CRC-32 (IEEE) of everything before it: header and payload
// Version 4 stored a fixed list of parameters where version 5 has named ones (params_file.h).
// Version 3 is version 4 with the CRC over the payload alone. Version 2 also lacks the
// by_residual parameter (its codes are residual); version 1 also lacks the padding. All are
// still read (version 1 by copying, not mapping).
// Files are written to a temporary name and renamed into place, so a crash never leaves a
// half-written index under the final name. A file of version 2 or later can be memory-mapped:
// the arrays are used in place and copied only when a partition changes.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace anisoscan {

constexpr uint32_t kIndexFileVersion = 5;
constexpr size_t kIndexFileHeaderBytes = 8 + 4 + 4 + 8;
constexpr size_t kIndexFileAlign = 64;

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

// Builds a payload in memory; finish() writes header, payload and CRC to a temporary file,
// fsyncs it, renames it over `path` and fsyncs the directory.
class IndexFileWriter {
 public:
  template <typename T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  // Count, zero padding to a 64-byte file offset, then the elements.
  template <typename T>
  void put_array(const T* data, size_t n) {
    put<uint64_t>(n);
    bytes_.resize(bytes_.size() + (kIndexFileAlign - (kIndexFileHeaderBytes + bytes_.size()) % kIndexFileAlign) %
                                      kIndexFileAlign,
                  0);
    const auto* p = reinterpret_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + n * sizeof(T));
  }
  void finish(const std::string& path) const;

 private:
  std::vector<uint8_t> bytes_;
};

// Opens an index file (mapped or read whole), checks its header and checksum, then reads the
// payload in order. Errors are IndexFileError naming the file.
class IndexFileReader {
 public:
  struct Bytes {  // the whole file, mapped or in memory
    std::shared_ptr<const MappedFile> mapping;
    std::vector<uint8_t> buffer;
    const uint8_t* data = nullptr;
    size_t size = 0;
  };

  IndexFileReader(const std::string& path, bool mmap, bool verify_checksum);
  uint32_t version() const { return version_; }
  size_t payload_bytes() const { return static_cast<size_t>(end_ - begin_); }
  // Arrays can be used where they lie: the file is mapped and aligned (version 2 and later).
  bool in_place() const { return file_.mapping && version_ >= 2; }
  const std::shared_ptr<const MappedFile>& mapping() const { return file_.mapping; }

  template <typename T>
  T get() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, p_, sizeof(T));
    p_ += sizeof(T);
    return value;
  }
  uint64_t peek_count() {
    const uint8_t* at = p_;
    uint64_t n = get<uint64_t>();
    p_ = at;
    return n;
  }
  // The elements of the next array, where they lie; its count must equal `expected`.
  template <typename T>
  const T* array(size_t expected) {
    uint64_t n = get<uint64_t>();
    if (n != expected) fail("section length " + std::to_string(n) + " != expected " + std::to_string(expected));
    if (align_ > 1) {
      size_t offset = kIndexFileHeaderBytes + static_cast<size_t>(p_ - begin_);
      size_t pad = (align_ - offset % align_) % align_;
      need(pad);
      p_ += pad;
    }
    if (n > static_cast<size_t>(end_ - p_) / sizeof(T)) fail("payload ends early (truncated?)");
    const T* out = reinterpret_cast<const T*>(p_);
    p_ += n * sizeof(T);
    return out;
  }
  template <typename T>
  std::vector<T> copy_array(size_t expected) {
    std::vector<T> v(expected);
    const T* at = array<T>(expected);
    if (expected) std::memcpy(v.data(), at, expected * sizeof(T));
    return v;
  }
  bool done() const { return p_ == end_; }
  [[noreturn]] void fail(const std::string& why) const {
    throw IndexFileError(path_ + ": not a valid anisoscan index file (" + why + ")");
  }

 private:
  void need(size_t n) const {
    if (static_cast<size_t>(end_ - p_) < n) fail("payload ends early (truncated?)");
  }
  std::string path_;
  Bytes file_;
  uint32_t version_ = 0;
  const uint8_t* begin_ = nullptr;
  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
  size_t align_ = 1;
};

}  // namespace anisoscan
