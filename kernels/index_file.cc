#include "index_file.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <type_traits>
#include <vector>

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

class Writer {
 public:
  template <typename T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  template <typename Vec>
  void put_array(const Vec& v) {
    put<uint64_t>(v.size());
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    bytes.insert(bytes.end(), p, p + v.size() * sizeof(typename Vec::value_type));
  }
  std::vector<uint8_t> bytes;
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& path) : p_(data), end_(data + size), path_(path) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, p_, sizeof(T));
    p_ += sizeof(T);
    return value;
  }
  template <typename T, typename Vec = std::vector<T>>
  Vec get_array(size_t expected) {
    uint64_t n = get<uint64_t>();
    if (n != expected) fail("section length " + std::to_string(n) + " != expected " + std::to_string(expected));
    need(n * sizeof(T));
    Vec v(n);
    std::memcpy(v.data(), p_, n * sizeof(T));
    p_ += n * sizeof(T);
    return v;
  }
  bool done() const { return p_ == end_; }
  [[noreturn]] void fail(const std::string& why) const {
    throw IndexFileError(path_ + ": not a valid anisoscan index file (" + why + ")");
  }

 private:
  void need(size_t n) const {
    if (static_cast<size_t>(end_ - p_) < n) fail("payload ends early");
  }
  const uint8_t* p_;
  const uint8_t* end_;
  const std::string& path_;
};

}  // namespace

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
  w.put<uint8_t>(index.trained_);
  if (index.trained_) {
    w.put_array(index.centers_);
    w.put_array(index.pq_.codebooks());
    for (const auto& part : index.partitions_) {
      w.put_array(part.ids);
      w.put_array(part.codes);
      w.put_array(part.raw);
    }
  }

  std::vector<uint8_t> file;
  file.reserve(kHeaderBytes + w.bytes.size() + 4);
  file.insert(file.end(), kMagic, kMagic + 8);
  Writer header;
  header.put<uint32_t>(kFormatVersion);
  header.put<uint32_t>(0);
  header.put<uint64_t>(w.bytes.size());
  file.insert(file.end(), header.bytes.begin(), header.bytes.end());
  file.insert(file.end(), w.bytes.begin(), w.bytes.end());
  Writer trailer;
  trailer.put<uint32_t>(crc32(w.bytes.data(), w.bytes.size()));
  file.insert(file.end(), trailer.bytes.begin(), trailer.bytes.end());

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IndexFileError(path + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw IndexFileError(path + ": write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw IndexFileError(path + ": cannot move the written file into place");
  }
}

IvfIndex IndexFile::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IndexFileError(path + ": cannot open (missing or unreadable)");
  std::vector<uint8_t> file(static_cast<size_t>(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(file.data()), static_cast<std::streamsize>(file.size()));
  if (!in) throw IndexFileError(path + ": read failed");
  Reader header(file.data(), file.size(), path);
  if (file.size() < kHeaderBytes || std::memcmp(file.data(), kMagic, 8) != 0)
    header.fail("wrong magic: not written by anisoscan");
  Reader h(file.data() + 8, kHeaderBytes - 8, path);
  uint32_t version = h.get<uint32_t>();
  h.get<uint32_t>();
  uint64_t payload = h.get<uint64_t>();
  if (version != kFormatVersion)
    header.fail("format version " + std::to_string(version) + "; this build reads version " +
                std::to_string(kFormatVersion) + ", rebuild the index or upgrade anisoscan");
  if (file.size() != kHeaderBytes + payload + 4)
    header.fail("size " + std::to_string(file.size()) + " bytes, header says " + std::to_string(kHeaderBytes + payload + 4) +
                " (truncated?)");
  const uint8_t* body = file.data() + kHeaderBytes;
  uint32_t stored;
  std::memcpy(&stored, body + payload, 4);
  if (crc32(body, payload) != stored) header.fail("checksum mismatch (corrupted)");

  Reader r(body, payload, path);
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
  std::unique_ptr<IvfIndex> index;
  try {
    index = std::make_unique<IvfIndex>(ip);
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("bad parameters: ") + e.what());
  }
  index->trained_ = r.get<uint8_t>();
  if (index->trained_) {
    const size_t d = ip.dim;
    index->centers_ = r.get_array<float>(ip.nlist * d);
    index->derive_center_tables();
    index->pq_.set_codebooks(r.get_array<float>(index->pq_.codebooks().size()));
    index->partitions_.resize(ip.nlist);
    for (auto& part : index->partitions_) {
      uint64_t n;
      {
        Reader peek = r;
        n = peek.get<uint64_t>();
        if (n > payload) r.fail("implausible partition size");
      }
      part.ids = r.get_array<int64_t>(n);
      part.codes = r.get_array<uint8_t, AlignedVector<uint8_t>>(index->layout_.bytes_for(n));
      part.raw = r.get_array<float>(ip.with_raw_data ? n * d : 0);
      index->count_ += n;
    }
  }
  if (!r.done()) r.fail("trailing bytes in payload");
  return std::move(*index);
}

void IvfIndex::save(const std::string& path) const { IndexFile::write(*this, path); }

IvfIndex IvfIndex::load(const std::string& path) { return IndexFile::read(path); }

}  // namespace anisoscan
