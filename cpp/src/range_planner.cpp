// Interval sets and range splitting for multi-connection downloads.

#include "modelagent/range_planner.hpp"

#include <algorithm>

namespace modelagent {

uint64_t IntervalSet::add(uint64_t begin, uint64_t end) {
  if (begin >= end) return 0;
  uint64_t newly = end - begin;
  for (auto o = intervals_.lower_bound(begin) == intervals_.begin() ? intervals_.begin()
                                                                    : std::prev(intervals_.lower_bound(begin));
       o != intervals_.end() && o->first < end; ++o) {
    uint64_t lo = std::max(o->first, begin), hi = std::min(o->second, end);
    if (hi > lo) newly -= hi - lo;
  }
  auto it = intervals_.upper_bound(begin);
  if (it != intervals_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= begin) {
      begin = prev->first;
      end = std::max(end, prev->second);
      it = intervals_.erase(prev);
    }
  }
  while (it != intervals_.end() && it->first <= end) {
    end = std::max(end, it->second);
    it = intervals_.erase(it);
  }
  intervals_.emplace(begin, end);
  return newly;
}

bool IntervalSet::covers(uint64_t begin, uint64_t end) const {
  if (begin >= end) return true;
  return contiguous_end(begin) >= end;
}

uint64_t IntervalSet::contiguous_end(uint64_t from) const {
  auto it = intervals_.upper_bound(from);
  if (it == intervals_.begin()) return from;
  --it;
  return it->second > from ? it->second : from;
}

uint64_t IntervalSet::total() const {
  uint64_t t = 0;
  for (const auto& [b, e] : intervals_) t += e - b;
  return t;
}

std::vector<ByteRange> IntervalSet::gaps(uint64_t size) const {
  std::vector<ByteRange> out;
  uint64_t pos = 0;
  for (const auto& [b, e] : intervals_) {
    if (b >= size) break;
    if (b > pos) out.push_back({pos, b});
    pos = std::max(pos, e);
  }
  if (pos < size) out.push_back({pos, size});
  return out;
}

std::vector<ByteRange> IntervalSet::ranges() const {
  std::vector<ByteRange> out;
  for (const auto& [b, e] : intervals_) out.push_back({b, e});
  return out;
}

uint64_t effective_chunk_size(uint64_t file_size, uint64_t chunk_size, int connections_per_file) {
  chunk_size = std::max<uint64_t>(chunk_size, 1);
  if (connections_per_file <= 1) return chunk_size;
  // Several ranges per connection: when the last ranges of a file run alone, on a slow link, they
  // are short, so the file does not wait long on a few connections while the others idle.
  uint64_t pieces = static_cast<uint64_t>(connections_per_file) * kRangesPerConnection;
  uint64_t share = (file_size + pieces - 1) / pieces;
  constexpr uint64_t kMiB = 1ull << 20;
  share = (share + kMiB - 1) / kMiB * kMiB;
  return std::min(chunk_size, std::max(share, std::min(kMinRangeSize, chunk_size)));
}

std::vector<ByteRange> plan_ranges(uint64_t file_size, uint64_t chunk, const IntervalSet& done) {
  std::vector<ByteRange> out;
  chunk = std::max<uint64_t>(chunk / kRangeAlignment * kRangeAlignment, kRangeAlignment);
  for (const auto& gap : done.gaps(file_size)) {
    // Ranges start on aligned offsets (refetching up to 4 KiB before a gap) so that every buffer of a
    // range can be written with direct I/O.
    uint64_t begin = gap.begin / kRangeAlignment * kRangeAlignment;
    if (!out.empty()) begin = std::max(begin, out.back().end);
    for (uint64_t b = begin; b < gap.end; b += chunk) out.push_back({b, std::min(gap.end, b + chunk)});
  }
  return out;
}

}  // namespace modelagent
