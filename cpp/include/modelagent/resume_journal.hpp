#pragma once
// The resume journal of a partial file ("<name>.partial.journal"): an append-only sequence of fixed-size,
// checksummed records. The first names what is being downloaded (an identity hash and the size); each
// later one marks a byte range whose data was made durable before the record was written. A torn or
// corrupt tail (a crash mid-append) is ignored and cut off, so only whole, checked records count.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>

#include "modelagent/range_planner.hpp"

namespace modelagent {

class ResumeJournal {
 public:
  // The finished ranges recorded in the journal at `path`, or nullopt when it is missing, unreadable,
  // or was written for another identity or size (then the partial file must not be trusted).
  static std::optional<IntervalSet> load(const std::filesystem::path& path, uint64_t identity, uint64_t size);

  // Opens the journal for appending. fresh=true starts a new journal (header only); otherwise the
  // valid prefix of the existing one is kept and anything after it truncated.
  ResumeJournal(const std::filesystem::path& path, uint64_t identity, uint64_t size, bool fresh);
  ~ResumeJournal();
  ResumeJournal(const ResumeJournal&) = delete;
  ResumeJournal& operator=(const ResumeJournal&) = delete;

  // Appends one record and makes it durable (fdatasync).
  void append(uint64_t begin, uint64_t end);
  const std::filesystem::path& path() const { return path_; }

  // Deletes the journal file (after the partial file was committed or discarded).
  static void remove(const std::filesystem::path& path);

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

// 64-bit FNV-1a, used for journal identities and record checksums.
uint64_t fnv1a64(std::string_view data, uint64_t seed = 1469598103934665603ull);

}  // namespace modelagent
