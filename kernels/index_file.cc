#include "index_file.h"

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace anisoscan {

namespace {

constexpr char kMagic[8] = {'A', 'N', 'I', 'S', 'O', 'S', 'C', 'N'};

// CRC-32 (IEEE 802.3), slicing by 8 bytes: fast enough that loading stays I/O-bound.
uint32_t crc32(const uint8_t* data, size_t n) {
  static const auto tables = [] {
    std::array<std::array<uint32_t, 256>, 8> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, data + i, 4);
    std::memcpy(&hi, data + i + 4, 4);
    lo ^= c;
    c = tables[7][lo & 0xFF] ^ tables[6][(lo >> 8) & 0xFF] ^ tables[5][(lo >> 16) & 0xFF] ^ tables[4][lo >> 24] ^
        tables[3][hi & 0xFF] ^ tables[2][(hi >> 8) & 0xFF] ^ tables[1][(hi >> 16) & 0xFF] ^ tables[0][hi >> 24];
  }
  for (; i < n; ++i) c = tables[0][(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

IndexFileReader::Bytes read_whole(const std::string& path, bool mmap) {
  IndexFileReader::Bytes f;
  if (mmap) {
    f.mapping = std::make_shared<const MappedFile>(path);
    f.data = f.mapping->data();
    f.size = f.mapping->size();
    return f;
  }
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IndexFileError(path + ": cannot open (missing or unreadable)");
  f.buffer.resize(static_cast<size_t>(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(f.buffer.data()), static_cast<std::streamsize>(f.buffer.size()));
  if (!in) throw IndexFileError(path + ": read failed");
  f.data = f.buffer.data();
  f.size = f.buffer.size();
  return f;
}

// Writes bytes to a temporary file, fsyncs it, renames it over `path`, then fsyncs the
// directory: after a crash the path holds the old file or the whole new one, never a part.
void write_durably(const std::string& path, const std::vector<uint8_t>& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int e = errno;
    throw IndexFileWriteError(e, path + ": cannot open for writing: " + std::strerror(e));
  }
  size_t done = 0;
  int error = 0;
  while (done < bytes.size() && !error) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno != EINTR) error = errno;
    if (n > 0) done += static_cast<size_t>(n);
  }
  if (!error && ::fsync(fd) != 0) error = errno;
  ::close(fd);
  if (error) {
    ::unlink(tmp.c_str());
    throw IndexFileWriteError(error, path + ": write failed: " + std::strerror(error));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = errno;
    ::unlink(tmp.c_str());
    throw IndexFileWriteError(error, path + ": cannot move the written file into place: " + std::strerror(error));
  }
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw IndexFileError(path + ": cannot open (missing or unreadable)");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    throw IndexFileError(path + ": not a valid anisoscan index file (empty or unreadable)");
  }
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw IndexFileError(path + ": cannot memory-map the file");
  data_ = static_cast<const uint8_t*>(p);
  size_ = static_cast<size_t>(st.st_size);
}

MappedFile::~MappedFile() { ::munmap(const_cast<uint8_t*>(data_), size_); }

void IndexFileWriter::finish(const std::string& path) const {
  IndexFileWriter file;
  file.bytes_.reserve(kIndexFileHeaderBytes + bytes_.size() + 4);
  file.bytes_.insert(file.bytes_.end(), kMagic, kMagic + 8);
  file.put<uint32_t>(kIndexFileVersion);
  file.put<uint32_t>(0);
  file.put<uint64_t>(bytes_.size());
  file.bytes_.insert(file.bytes_.end(), bytes_.begin(), bytes_.end());
  file.put<uint32_t>(crc32(file.bytes_.data(), file.bytes_.size()));  // header and payload
  write_durably(path, file.bytes_);
}

IndexFileReader::IndexFileReader(const std::string& path, bool mmap, bool verify_checksum)
    : path_(path), file_(read_whole(path, mmap)) {
  if (file_.size < kIndexFileHeaderBytes || std::memcmp(file_.data, kMagic, 8) != 0)
    fail("wrong magic: not written by anisoscan");
  uint32_t reserved;
  uint64_t payload;
  std::memcpy(&version_, file_.data + 8, 4);
  std::memcpy(&reserved, file_.data + 12, 4);
  std::memcpy(&payload, file_.data + 16, 8);
  if (version_ < 1 || version_ > kIndexFileVersion)
    fail("format version " + std::to_string(version_) + "; this build reads versions 1 to " +
         std::to_string(kIndexFileVersion) + ": upgrade anisoscan or rebuild the index");
  if (file_.size != kIndexFileHeaderBytes + payload + 4)
    fail("size " + std::to_string(file_.size) + " bytes, header says " +
         std::to_string(kIndexFileHeaderBytes + payload + 4) + " (truncated?)");
  if (reserved != 0) fail("reserved header field is not zero (corrupted)");
  const uint8_t* body = file_.data + kIndexFileHeaderBytes;
  if (verify_checksum) {
    uint32_t stored;
    std::memcpy(&stored, body + payload, 4);
    // Since version 4 the checksum covers the header too; before, the payload alone.
    const uint32_t computed =
        version_ >= 4 ? crc32(file_.data, kIndexFileHeaderBytes + payload) : crc32(body, payload);
    if (computed != stored) fail("checksum mismatch (corrupted)");
  }
  begin_ = p_ = body;
  end_ = body + payload;
  align_ = version_ >= 2 ? kIndexFileAlign : 1;  // version 1 has no alignment padding
}

}  // namespace anisoscan
