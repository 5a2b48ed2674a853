#include "id_map.h"

#include <stdexcept>

namespace anisoscan {

namespace {

// Capacity for n ids at a load of at most 0.8, rounded up to a multiple of 64.
size_t capacity_for(size_t n) { return ((n + n / 4 + 64) + 63) / 64 * 64; }

}  // namespace

uint64_t IdMap::mix(int64_t id) {  // splitmix64's finalizer: ids are often sequential
  uint64_t x = static_cast<uint64_t>(id);
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t IdMap::pack(Location at, uint64_t hash) {
  if (at.partition >> kPartitionBits) throw std::logic_error("IdMap: partition index beyond 17 bits");
  return kTaken | tag(hash) << kTagShift | uint64_t{at.partition} << 32 | at.offset;
}

size_t IdMap::home(uint64_t hash) const {
  // Lemire's multiply-shift maps the hash's high bits onto any table size without a division;
  // the tag takes its low bits.
  return static_cast<size_t>((static_cast<unsigned __int128>(hash) * slots_.size()) >> 64);
}

size_t IdMap::probe(int64_t id, uint64_t hash, const std::vector<Partition>& parts) const {
  const uint64_t want = tag(hash);
  size_t i = home(hash);
  while (slots_[i] != kEmpty && ((slots_[i] >> kTagShift & kTagMask) != want || key(slots_[i], parts) != id))
    i = i + 1 == slots_.size() ? 0 : i + 1;
  return i;
}

void IdMap::rebuild(const std::vector<Partition>& parts, size_t first, size_t last) {
  size_t n = 0;
  for (size_t p = first; p < last; ++p) n += parts[p].size();
  slots_.assign(capacity_for(n), kEmpty);
  size_ = 0;
  for (size_t p = first; p < last; ++p)
    for (size_t i = 0; i < parts[p].size(); ++i)
      insert(parts[p].ids()[i], {static_cast<uint32_t>(p), static_cast<uint32_t>(i)}, parts);
}

std::optional<Location> IdMap::find(int64_t id, const std::vector<Partition>& parts) const {
  if (slots_.empty()) return std::nullopt;
  uint64_t slot = slots_[probe(id, mix(id), parts)];
  if (slot == kEmpty) return std::nullopt;
  return unpack(slot);
}

void IdMap::insert(int64_t id, Location at, const std::vector<Partition>& parts) {
  if ((size_ + 1) * 5 > slots_.size() * 4) grow(parts);
  const uint64_t hash = mix(id);
  size_t i = probe(id, hash, parts);
  if (slots_[i] != kEmpty) throw std::logic_error("IdMap::insert: id already present");
  slots_[i] = pack(at, hash);
  ++size_;
}

void IdMap::relocate(int64_t id, Location to, const std::vector<Partition>& parts) {
  const uint64_t hash = mix(id);
  size_t i = probe(id, hash, parts);
  if (slots_[i] == kEmpty) throw std::logic_error("IdMap::relocate: id absent");
  slots_[i] = pack(to, hash);
}

void IdMap::erase(int64_t id, const std::vector<Partition>& parts) {
  size_t hole = probe(id, mix(id), parts);
  if (slots_[hole] == kEmpty) throw std::logic_error("IdMap::erase: id absent");
  // Backward-shift deletion: pull later entries of the run into the hole when the hole lies
  // cyclically between their home and their slot, so no tombstones build up.
  const size_t cap = slots_.size();
  for (size_t j = hole + 1 == cap ? 0 : hole + 1; slots_[j] != kEmpty; j = j + 1 == cap ? 0 : j + 1) {
    size_t h = home(mix(key(slots_[j], parts)));
    bool movable = hole <= j ? (h <= hole || h > j) : (h <= hole && h > j);
    if (movable) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = kEmpty;
  --size_;
}

void IdMap::grow(const std::vector<Partition>& parts) {
  std::vector<uint64_t> old = std::move(slots_);
  slots_.assign(capacity_for(2 * size_ + 64), kEmpty);
  for (uint64_t slot : old)
    if (slot != kEmpty) {
      const int64_t id = key(slot, parts);
      slots_[probe(id, mix(id), parts)] = slot;
    }
}

}  // namespace anisoscan
