#include "index_file.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ivf_index.h"

namespace anisoscan {

namespace {

constexpr char kMagic[8] = {'A', 'N', 'I', 'S', 'O', 'S', 'C', 'N'};
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8;

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

constexpr size_t kAlign = 64;

class Writer {
 public:
  template <typename T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  // Count, zero padding to a 64-byte file offset, then the elements.
  template <typename T>
  void put_array(const T* data, size_t n) {
    put<uint64_t>(n);
    bytes.resize(bytes.size() + (kAlign - (kHeaderBytes + bytes.size()) % kAlign) % kAlign, 0);
    const auto* p = reinterpret_cast<const uint8_t*>(data);
    bytes.insert(bytes.end(), p, p + n * sizeof(T));
  }
  std::vector<uint8_t> bytes;
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, size_t align, const std::string& path)
      : begin_(data), p_(data), end_(data + size), align_(align), path_(path) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, p_, sizeof(T));
    p_ += sizeof(T);
    return value;
  }
  uint64_t peek_count() const {
    Reader copy = *this;
    return copy.get<uint64_t>();
  }
  // The elements of the next array, in place; its count must equal `expected`.
  template <typename T>
  const T* array(size_t expected) {
    uint64_t n = get<uint64_t>();
    if (n != expected) fail("section length " + std::to_string(n) + " != expected " + std::to_string(expected));
    if (align_ > 1) {
      size_t offset = kHeaderBytes + static_cast<size_t>(p_ - begin_);
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
    if (expected) std::memcpy(v.data(), array<T>(expected), expected * sizeof(T));
    else array<T>(0);
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
  const uint8_t* begin_;
  const uint8_t* p_;
  const uint8_t* end_;
  size_t align_;
  const std::string& path_;
};

// The whole file, either mapped or read into memory.
struct FileBytes {
  std::shared_ptr<const MappedFile> mapping;
  std::vector<uint8_t> buffer;
  const uint8_t* data = nullptr;
  size_t size = 0;
};

FileBytes open_file(const std::string& path, bool mmap) {
  FileBytes f;
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

void IndexFile::write(const IvfIndex& index, const std::string& path) {
  const IndexParams& ip = index.params_;
  Writer w;
  w.put<uint64_t>(ip.dim);
  w.put<uint32_t>(static_cast<uint32_t>(ip.metric));
  w.put<uint64_t>(ip.nlist);
  w.put<uint8_t>(ip.with_raw_data);
  w.put<uint64_t>(ip.training_sample_size);
  w.put<int32_t>(ip.kmeans_iters);
  w.put<uint64_t>(ip.seed);
  w.put<uint64_t>(ip.pq.sub_dim);
  w.put<double>(ip.pq.anisotropic_threshold);
  w.put<uint8_t>(ip.pq.exact_eta);
  w.put<uint8_t>(ip.pq.anisotropic_codebooks);
  w.put<int32_t>(ip.pq.iterations);
  w.put<uint8_t>(ip.by_residual);
  w.put<uint8_t>(index.trained_);
  if (index.trained_) {
    w.put_array(index.centers_.data(), index.centers_.size());
    w.put_array(index.pq_.codebooks().data(), index.pq_.codebooks().size());
    for (const auto& part : index.partitions_) {
      w.put_array(part.ids(), part.size());
      w.put_array(part.codes(), index.layout_.bytes_for(part.size()));
      w.put_array(part.raw(), ip.with_raw_data ? part.size() * ip.dim : 0);
    }
  }

  Writer file;
  file.bytes.reserve(kHeaderBytes + w.bytes.size() + 4);
  file.bytes.insert(file.bytes.end(), kMagic, kMagic + 8);
  file.put<uint32_t>(kFormatVersion);
  file.put<uint32_t>(0);
  file.put<uint64_t>(w.bytes.size());
  file.bytes.insert(file.bytes.end(), w.bytes.begin(), w.bytes.end());
  file.put<uint32_t>(crc32(file.bytes.data(), file.bytes.size()));  // header and payload

  write_durably(path, file.bytes);
}

IvfIndex IndexFile::read(const std::string& path, bool mmap, bool verify_checksum) {
  FileBytes file = open_file(path, mmap);
  Reader header(file.data, file.size, 1, path);
  if (file.size < kHeaderBytes || std::memcmp(file.data, kMagic, 8) != 0)
    header.fail("wrong magic: not written by anisoscan");
  Reader h(file.data + 8, kHeaderBytes - 8, 1, path);
  const uint32_t version = h.get<uint32_t>();
  const uint32_t reserved = h.get<uint32_t>();
  const uint64_t payload = h.get<uint64_t>();
  if (version < 1 || version > kFormatVersion)
    header.fail("format version " + std::to_string(version) + "; this build reads versions 1 to " +
                std::to_string(kFormatVersion) + ": upgrade anisoscan or rebuild the index");
  if (file.size != kHeaderBytes + payload + 4)
    header.fail("size " + std::to_string(file.size) + " bytes, header says " +
                std::to_string(kHeaderBytes + payload + 4) + " (truncated?)");
  if (reserved != 0) header.fail("reserved header field is not zero (corrupted)");
  const uint8_t* body = file.data + kHeaderBytes;
  if (verify_checksum) {
    uint32_t stored;
    std::memcpy(&stored, body + payload, 4);
    // Since version 4 the checksum covers the header too; before, the payload alone.
    const uint32_t computed = version >= 4 ? crc32(file.data, kHeaderBytes + payload) : crc32(body, payload);
    if (computed != stored) header.fail("checksum mismatch (corrupted)");
  }
  // Version 1 has no alignment padding, so its arrays are copied rather than mapped.
  const bool in_place = mmap && version >= 2;

  Reader r(body, payload, version >= 2 ? kAlign : 1, path);
  IndexParams ip;
  ip.dim = r.get<uint64_t>();
  uint32_t metric = r.get<uint32_t>();
  if (metric > 2) r.fail("unknown metric code");
  ip.metric = static_cast<Metric>(metric);
  ip.nlist = r.get<uint64_t>();
  ip.with_raw_data = r.get<uint8_t>();
  ip.training_sample_size = r.get<uint64_t>();
  ip.kmeans_iters = r.get<int32_t>();
  ip.seed = r.get<uint64_t>();
  ip.pq.sub_dim = r.get<uint64_t>();
  ip.pq.anisotropic_threshold = r.get<double>();
  ip.pq.exact_eta = r.get<uint8_t>();
  ip.pq.anisotropic_codebooks = r.get<uint8_t>();
  ip.pq.iterations = r.get<int32_t>();
  ip.by_residual = version >= 3 ? r.get<uint8_t>() != 0 : true;  // earlier versions knew only residual codes
  if (ip.dim == 0 || ip.dim > (1u << 20) || ip.nlist == 0 || ip.nlist > 65536) r.fail("implausible parameters");
  std::unique_ptr<IvfIndex> index;
  try {
    index = std::make_unique<IvfIndex>(ip);
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("bad parameters: ") + e.what());
  }
  index->trained_ = r.get<uint8_t>();
  if (index->trained_) {
    const size_t d = ip.dim;
    index->centers_ = r.copy_array<float>(ip.nlist * d);
    index->derive_center_tables();
    index->pq_.set_codebooks(r.copy_array<float>(index->pq_.codebooks().size()));
    index->partitions_.resize(ip.nlist);
    for (auto& part : index->partitions_) {
      const uint64_t n = r.peek_count();
      if (n > payload / 8) r.fail("implausible partition size");
      const int64_t* ids = r.array<int64_t>(n);
      const uint8_t* codes = r.array<uint8_t>(index->layout_.bytes_for(n));
      const float* raw = r.array<float>(ip.with_raw_data ? n * d : 0);
      part.view(ids, codes, ip.with_raw_data && n ? raw : nullptr, n);
      if (!in_place) part.own(index->layout_, d);
    }
    if (in_place) index->mapping_ = file.mapping;
  }
  if (!r.done()) r.fail("trailing bytes in payload");
  return std::move(*index);
}


}  // namespace anisoscan
