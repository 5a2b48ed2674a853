#include "partition.h"

#include <algorithm>

namespace anisoscan {

void Partition::view(const int64_t* ids, const uint8_t* codes, const uint8_t* raw, size_t n) {
  owned_ids_ = {};
  owned_codes_ = {};
  owned_raw_ = {};
  ids_ = ids;
  codes_ = codes;
  raw_ = raw;
  size_ = n;
  mapped_ = true;
}

void Partition::own(const FastScanLayout& layout, size_t row_bytes) {
  if (!mapped_) return;
  owned_ids_.assign(ids_, ids_ + size_);
  owned_codes_.assign(codes_, codes_ + layout.bytes_for(size_));
  if (raw_) owned_raw_.assign(raw_, raw_ + size_ * row_bytes);
  mapped_ = false;
  refresh_views();
}

void Partition::refresh_views() {
  ids_ = owned_ids_.data();
  codes_ = owned_codes_.data();
  raw_ = owned_raw_.empty() ? nullptr : owned_raw_.data();
}

void Partition::reserve(const FastScanLayout& layout, size_t total, size_t row_bytes) {
  own(layout, row_bytes);
  owned_ids_.reserve(total);
  owned_codes_.reserve(layout.bytes_for(total));
  owned_raw_.reserve(total * row_bytes);
  refresh_views();
}

void Partition::append(const FastScanLayout& layout, int64_t id, const uint8_t* codes, const uint8_t* raw,
                       size_t row_bytes) {
  own(layout, row_bytes);
  owned_ids_.push_back(id);
  owned_codes_.resize(layout.bytes_for(size_ + 1), 0);
  layout.pack(codes, 1, size_, owned_codes_.data());
  if (raw) owned_raw_.insert(owned_raw_.end(), raw, raw + row_bytes);
  ++size_;
  refresh_views();
}

void Partition::swap_remove(const FastScanLayout& layout, size_t i, size_t row_bytes) {
  own(layout, row_bytes);
  const size_t last = size_ - 1;
  if (i != last) {
    owned_ids_[i] = owned_ids_[last];
    for (size_t s = 0; s < layout.num_subspaces; ++s)
      layout.set(owned_codes_.data(), i, s, layout.get(owned_codes_.data(), last, s));
    if (!owned_raw_.empty())
      std::copy(owned_raw_.begin() + last * row_bytes, owned_raw_.begin() + (last + 1) * row_bytes,
                owned_raw_.begin() + i * row_bytes);
  }
  // Clear the vacated slot so padding codes stay zero, then drop it.
  for (size_t s = 0; s < layout.num_subspaces; ++s) layout.set(owned_codes_.data(), last, s, 0);
  owned_ids_.pop_back();
  owned_codes_.resize(layout.bytes_for(last));
  if (!owned_raw_.empty()) owned_raw_.resize(last * row_bytes);
  size_ = last;
  refresh_views();
}

void Partition::shrink() {
  if (mapped_) return;
  owned_ids_.shrink_to_fit();
  owned_codes_.shrink_to_fit();
  owned_raw_.shrink_to_fit();
  refresh_views();
}

}  // namespace anisoscan
