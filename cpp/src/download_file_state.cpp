// Written-byte tracking and the hash that trails the contiguous written prefix of a partial file.

#include "modelagent/download_file_state.hpp"

#include <algorithm>

namespace modelagent {

namespace {

// Buffers this far ahead of the hash position stay in memory until hashed; beyond it they are released
// after writing and read back from the page cache later, which bounds memory per file.
constexpr uint64_t kRetainWindow = 32ull << 20;
constexpr size_t kReadBackBlock = 4u << 20;

char* read_back_scratch() {
  thread_local std::unique_ptr<char[]> scratch(new char[kReadBackBlock]);
  return scratch.get();
}

}  // namespace

StreamingVerifier::StreamingVerifier(PartialFile& file, const ExpectedDigest& expected, uint64_t size)
    : file_(file), expected_(expected), size_(size) {
  bool needs_size_first = expected.kind == DigestKind::GitBlobSha1 && size == kUnknownSize;
  if (expected.kind != DigestKind::None && !needs_size_first) hasher_ = std::make_unique<ContentHasher>(expected, size);
}

void StreamingVerifier::mark_present(const IntervalSet& present) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& r : present.ranges()) written_.add(r.begin, r.end);
}

uint64_t StreamingVerifier::on_written(const std::shared_ptr<Buffer>& b) {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t begin = b->offset, end = b->offset + b->size;
  uint64_t newly = written_.add(begin, end);
  if (!hasher_) return newly;
  if (end > hash_pos_ && begin < hash_pos_ + kRetainWindow) retained_[begin] = b;
  if (hashing_) return newly;  // the thread that is hashing picks this up
  hashing_ = true;
  advance(lock);
  hashing_ = false;
  idle_.notify_all();
  return newly;
}

// Hashes forward from hash_pos_ through the contiguous written prefix. Called with hashing_ set; drops
// the lock while hashing so writers are never blocked behind it.
void StreamingVerifier::advance(std::unique_lock<std::mutex>& lock) {
  for (;;) {
    uint64_t h = hash_pos_;
    uint64_t available = written_.contiguous_end(h);
    if (available <= h) return;
    while (!retained_.empty() && retained_.begin()->first + retained_.begin()->second->size <= h) {
      retained_.erase(retained_.begin());
    }
    std::shared_ptr<Buffer> from_memory;
    auto next = retained_.upper_bound(h);
    if (next != retained_.begin()) {
      auto candidate = std::prev(next);
      if (candidate->first <= h && h < candidate->first + candidate->second->size) from_memory = candidate->second;
    }
    if (from_memory) {
      size_t skip = static_cast<size_t>(h - from_memory->offset);
      size_t n = static_cast<size_t>(std::min<uint64_t>(from_memory->size - skip, available - h));
      if (skip + n == from_memory->size) retained_.erase(from_memory->offset);
      lock.unlock();
      hasher_->update(from_memory->data + skip, n);
      from_memory.reset();
      lock.lock();
      hash_pos_ = h + n;
    } else {
      uint64_t limit = available;
      if (next != retained_.end()) limit = std::min(limit, next->first);
      size_t n = static_cast<size_t>(std::min<uint64_t>(limit - h, kReadBackBlock));
      lock.unlock();
      char* scratch = read_back_scratch();
      size_t got = file_.read_at(scratch, n, h);
      hasher_->update(scratch, got);
      lock.lock();
      hash_pos_ = h + got;
      if (got < n) return;  // the file is shorter than recorded: finish() reports it incomplete
    }
  }
}

StreamingVerifier::Result StreamingVerifier::finish(uint64_t final_size) {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return !hashing_; });
  Result result;
  result.size = final_size;
  result.complete = written_.covers(0, final_size) && written_.contiguous_end(0) == final_size;
  if (expected_.kind == DigestKind::None) return result;
  if (!hasher_) hasher_ = std::make_unique<ContentHasher>(expected_, final_size);
  hashing_ = true;
  advance(lock);
  hashing_ = false;
  retained_.clear();
  if (hash_pos_ != final_size) result.complete = false;
  result.hex = hasher_->finish();
  result.matches = result.complete && hasher_->matches();
  return result;
}

IntervalSet StreamingVerifier::written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

uint64_t StreamingVerifier::hashed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hash_pos_;
}

}  // namespace modelagent
