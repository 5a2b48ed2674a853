// Where each id is stored (hnswlib's label lookup, made compact): an open-addressing table with
// linear probing whose slots hold only a packed (partition, offset) and a few bits of the id's
// hash. The key is read back from the partition's id array, so a slot costs 8 bytes and the
// table stays under ~12 bytes per id; the hash bits spare that read (a cache miss) for all but
// about one in 16K of the other ids met along a probe.
// Every call takes the partitions as they are now: the caller keeps the two in step.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "partition.h"

namespace anisoscan {

struct Location {
  uint32_t partition;
  uint32_t offset;
};

class IdMap {
 public:
  // Indexes every id of the partitions [first, last) (ids there are distinct).
  void rebuild(const std::vector<Partition>& parts, size_t first, size_t last);
  std::optional<Location> find(int64_t id, const std::vector<Partition>& parts) const;
  // Requests the table's cache line where a find of `id` starts: many finds overlap their misses.
  void prefetch(int64_t id) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[home(mix(id))]);
  }
  // `id` must be absent and already stored at `at`.
  void insert(int64_t id, Location at, const std::vector<Partition>& parts);
  // `id` must be present; the partitions must still hold it where the map says.
  void erase(int64_t id, const std::vector<Partition>& parts);
  // Points a present id at a new place (before the partitions move it there).
  void relocate(int64_t id, Location to, const std::vector<Partition>& parts);
  size_t size() const { return size_; }
  size_t memory_bytes() const { return slots_.capacity() * sizeof(uint64_t); }

  // A slot: 1 (taken) | 14 bits of the id's hash | partition (17 bits) | offset (32 bits).
  static constexpr int kPartitionBits = 17;

 private:
  static constexpr uint64_t kEmpty = 0, kTaken = uint64_t{1} << 63;
  static constexpr int kTagShift = 32 + kPartitionBits;
  static constexpr uint64_t kTagMask = (uint64_t{1} << (63 - kTagShift)) - 1;
  static uint64_t mix(int64_t id);
  static uint64_t tag(uint64_t hash) { return hash & kTagMask; }
  static uint64_t pack(Location at, uint64_t hash);
  static Location unpack(uint64_t slot) {
    return {static_cast<uint32_t>(slot >> 32) & ((1u << kPartitionBits) - 1), static_cast<uint32_t>(slot)};
  }
  static int64_t key(uint64_t slot, const std::vector<Partition>& parts) {
    Location at = unpack(slot);
    return parts[at.partition].ids()[at.offset];
  }
  size_t home(uint64_t hash) const;
  // The slot holding `id`, or the empty slot where it would go.
  size_t probe(int64_t id, uint64_t hash, const std::vector<Partition>& parts) const;
  void grow(const std::vector<Partition>& parts);

  std::vector<uint64_t> slots_;
  size_t size_ = 0;
};

}  // namespace anisoscan
