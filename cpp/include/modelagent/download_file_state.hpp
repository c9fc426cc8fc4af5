#pragma once
// Engine internals: which bytes of one partial file are written, and the content hash that follows the
// contiguous written prefix. Bytes are hashed exactly once: from the receive buffer when it lands at
// the hash position (always the case for a single-connection file), otherwise read back from the page
// cache once the gap before them is filled.

#include <atomic>
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
  // retain_budget, shared by all files of a run, bounds how many buffers may be kept in memory for
  // hashing (each kept buffer takes one, returned when it is hashed); null means no bound. Without a
  // bound, buffers kept for several files could hold the whole buffer pool while the ranges that
  // would let them be hashed wait for a free buffer.
  StreamingVerifier(PartialFile& file, const ExpectedDigest& expected, uint64_t size,
                    std::atomic<long>* retain_budget = nullptr);
  ~StreamingVerifier();

  // Bytes already on disk from an earlier run (resume); hashed later by read-back.
  void mark_present(const IntervalSet& present);
  // Records that `b` was written to the partial file (keeping it in memory when it is near the hash
  // position). Adds to *newly how many of its bytes were not written before. Returns true when the
  // caller must run hash_pass() (on any thread): no pass is running and the hash can advance.
  bool record_written(const std::shared_ptr<Buffer>& b, uint64_t* newly);
  // Hashes forward through the contiguous written prefix until it reaches a gap or has hashed
  // `budget` bytes. Continue: stopped for the budget, call again. FinishDue: a try_finish() came
  // while this pass ran; call try_finish() now.
  enum class Pass { Done, Continue, FinishDue };
  Pass hash_pass(uint64_t budget);
  // True when a transfer at `pos` of the range starting at `range_begin` is so far ahead of the hash
  // that it should wait: the range continues the hashed prefix (so its buffers will be hashed from
  // memory) but is more than the retain window ahead of it.
  bool too_far_ahead(uint64_t range_begin, uint64_t pos) const;

  struct Result {
    uint64_t size = 0;
    std::string hex;      // computed digest; "" for DigestKind::None
    bool complete = false;  // every byte of [0, size) written
    bool matches = false;   // digest equals the expected one
  };
  // Call after the last write: hashes what is left (read-back) and returns the verdict. While a
  // hash_pass() is running or due it returns nullopt at once (a worker never waits for work queued
  // behind it) and that pass reports FinishDue when it ends.
  std::optional<Result> try_finish(uint64_t final_size);

  IntervalSet written() const;
  uint64_t hashed() const;

  // Buffers this far ahead of the hash position stay in memory until hashed.
  static constexpr uint64_t kRetainWindow = 32ull << 20;

 private:
  bool can_advance() const;
  void retain(const std::shared_ptr<Buffer>& b);
  void forget(std::map<uint64_t, std::shared_ptr<Buffer>>::iterator it);
  // Returns true when it stopped because `budget` bytes were hashed.
  bool advance(std::unique_lock<std::mutex>& lock, uint64_t budget);

  PartialFile& file_;
  ExpectedDigest expected_;
  uint64_t size_;
  mutable std::mutex mu_;
  IntervalSet written_;
  std::unique_ptr<ContentHasher> hasher_;
  uint64_t hash_pos_ = 0;
  bool hashing_ = false;
  bool finish_due_ = false;
  std::map<uint64_t, std::shared_ptr<Buffer>> retained_;  // written, not yet hashed, kept in memory
  std::atomic<long>* retain_budget_;
};

}  // namespace modelagent
