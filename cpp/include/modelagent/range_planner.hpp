#pragma once
// Byte-range bookkeeping for the download engine: sets of finished intervals and the split of what is
// still missing into ranges that connections can fetch independently.

#include <cstdint>
#include <map>
#include <vector>

namespace modelagent {

struct ByteRange {
  uint64_t begin = 0;
  uint64_t end = 0;  // exclusive
  uint64_t size() const { return end - begin; }
  bool operator==(const ByteRange& o) const { return begin == o.begin && end == o.end; }
};

// Disjoint, coalesced half-open intervals.
class IntervalSet {
 public:
  // Adds [begin, end) and returns how many of those bytes were not covered before.
  uint64_t add(uint64_t begin, uint64_t end);
  void clear() { intervals_.clear(); }
  bool empty() const { return intervals_.empty(); }
  bool covers(uint64_t begin, uint64_t end) const;
  // End of the covered run that contains `from` (== from when `from` is not covered).
  uint64_t contiguous_end(uint64_t from) const;
  uint64_t total() const;
  // The uncovered parts of [0, size).
  std::vector<ByteRange> gaps(uint64_t size) const;
  std::vector<ByteRange> ranges() const;

 private:
  std::map<uint64_t, uint64_t> intervals_;  // begin -> end
};

inline constexpr uint64_t kMinRangeSize = 8ull << 20;
inline constexpr uint64_t kRangeAlignment = 4096;

// Range size for a file: large enough that a range is worth a request (kMinRangeSize), small enough
// that connections_per_file connections get kRangesPerConnection ranges each, never above chunk_size.
inline constexpr uint64_t kRangesPerConnection = 4;
uint64_t effective_chunk_size(uint64_t file_size, uint64_t chunk_size, int connections_per_file);

// Splits the gaps of `done` within [0, file_size) into ranges of at most `chunk` bytes (rounded down to
// a multiple of kRangeAlignment), in order. Ranges start on kRangeAlignment boundaries, so a range
// may begin up to 4 KiB before its gap.
std::vector<ByteRange> plan_ranges(uint64_t file_size, uint64_t chunk, const IntervalSet& done);

}  // namespace modelagent
