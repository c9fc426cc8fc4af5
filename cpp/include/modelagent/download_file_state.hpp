#pragma once
// Engine internals: which bytes of one partial file are written, and the content hash that follows the
// contiguous written prefix. Bytes are hashed exactly once: from the receive buffer when it lands at
// the hash position (always the case for a single-connection file), otherwise read back from the page
// cache once the gap before them is filled.

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "modelagent/digest.hpp"
#include "modelagent/download_workers.hpp"
#include "modelagent/partial_file.hpp"
#include "modelagent/range_planner.hpp"

namespace modelagent {

class StreamingVerifier {
 public:
  // size may be kUnknownSize; then git-blob SHA-1 (which hashes the size first) is computed in finish().
  StreamingVerifier(PartialFile& file, const ExpectedDigest& expected, uint64_t size);

  // Bytes already on disk from an earlier run (resume); hashed later by read-back.
  void mark_present(const IntervalSet& present);
  // Records that `b` was written to the partial file and advances the hash as far as possible.
  // Returns how many of its bytes were not written before. Thread-safe.
  uint64_t on_written(const std::shared_ptr<Buffer>& b);

  struct Result {
    uint64_t size = 0;
    std::string hex;      // computed digest; "" for DigestKind::None
    bool complete = false;  // every byte of [0, size) written
    bool matches = false;   // digest equals the expected one
  };
  // Call after the last write: hashes what is left (read-back) and returns the verdict.
  Result finish(uint64_t final_size);

  IntervalSet written() const;
  uint64_t hashed() const;

 private:
  void advance(std::unique_lock<std::mutex>& lock);

  PartialFile& file_;
  ExpectedDigest expected_;
  uint64_t size_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  IntervalSet written_;
  std::unique_ptr<ContentHasher> hasher_;
  uint64_t hash_pos_ = 0;
  bool hashing_ = false;
  std::map<uint64_t, std::shared_ptr<Buffer>> retained_;  // written, not yet hashed, kept in memory
};

}  // namespace modelagent
