// Written-byte tracking and the hash that trails the contiguous written prefix of a partial file.

#include "modelagent/download_file_state.hpp"

#include <algorithm>
#include <cstdlib>

namespace modelagent {

namespace {

constexpr size_t kReadBackBlock = 4u << 20;

// Aligned, so that reading back data written with direct I/O can itself bypass the page cache.
char* read_back_scratch() {
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<char, Free> scratch(
      static_cast<char*>(std::aligned_alloc(kBufferAlignment, kReadBackBlock + kBufferAlignment)));
  return scratch.get();
}

}  // namespace

StreamingVerifier::StreamingVerifier(PartialFile& file, const ExpectedDigest& expected, uint64_t size,
                                     std::atomic<long>* retain_budget)
    : file_(file), expected_(likeliest_candidate(expected)), size_(size), retain_budget_(retain_budget) {
  bool needs_size_first = expected.kind == DigestKind::GitBlobSha1 && size == kUnknownSize;
  if (expected.kind != DigestKind::None && !needs_size_first) hasher_ = std::make_unique<ContentHasher>(expected_, size);
}

StreamingVerifier::~StreamingVerifier() {
  while (!retained_.empty()) forget(retained_.begin());
}

void StreamingVerifier::retain(const std::shared_ptr<Buffer>& b) {
  auto existing = retained_.find(b->offset);
  if (existing != retained_.end()) {
    existing->second = b;  // the same bytes again (a restarted stream): no new budget needed
    return;
  }
  if (retain_budget_ && retain_budget_->fetch_sub(1) <= 0) {
    retain_budget_->fetch_add(1);
    return;  // over budget: released now, read back later
  }
  retained_.emplace(b->offset, b);
}

void StreamingVerifier::forget(std::map<uint64_t, std::shared_ptr<Buffer>>::iterator it) {
  retained_.erase(it);
  if (retain_budget_) retain_budget_->fetch_add(1);
}

void StreamingVerifier::mark_present(const IntervalSet& present) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& r : present.ranges()) written_.add(r.begin, r.end);
}

bool StreamingVerifier::record_written(const std::shared_ptr<Buffer>& b, uint64_t* newly) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t begin = b->offset, end = b->offset + b->size;
  *newly += written_.add(begin, end);
  if (!hasher_) return false;
  // Buffers beyond the window are released now and read back from the page cache later, which bounds
  // the memory a file can hold.
  if (end > hash_pos_ && begin < hash_pos_ + kRetainWindow) retain(b);
  if (hashing_ || !can_advance()) return false;  // a running pass picks this up
  hashing_ = true;
  return true;
}

bool StreamingVerifier::can_advance() const { return written_.contiguous_end(hash_pos_) > hash_pos_; }

StreamingVerifier::Pass StreamingVerifier::hash_pass(uint64_t budget) {
  std::unique_lock<std::mutex> lock(mu_);
  if (advance(lock, budget)) return Pass::Continue;  // still marked as hashing: the caller continues
  hashing_ = false;  // still under the lock that saw nothing more to hash: no write can be missed
  if (finish_due_) {
    finish_due_ = false;
    return Pass::FinishDue;
  }
  return Pass::Done;
}

bool StreamingVerifier::too_far_ahead(uint64_t range_begin, uint64_t pos) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!hasher_ || pos <= hash_pos_ + kRetainWindow) return false;
  return written_.contiguous_end(hash_pos_) >= range_begin;
}

// Hashes forward from hash_pos_ through the contiguous written prefix. Called with hashing_ set; drops
// the lock while hashing so writers are never blocked behind it.
bool StreamingVerifier::advance(std::unique_lock<std::mutex>& lock, uint64_t budget) {
  uint64_t start = hash_pos_;
  for (;;) {
    uint64_t h = hash_pos_;
    uint64_t available = written_.contiguous_end(h);
    if (available <= h) return false;
    if (h - start >= budget) return true;
    while (!retained_.empty() && retained_.begin()->first + retained_.begin()->second->size <= h) {
      forget(retained_.begin());
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
      if (skip + n == from_memory->size) forget(retained_.find(from_memory->offset));
      lock.unlock();
      hasher_->update(from_memory->data + skip, n);
      from_memory.reset();
      lock.lock();
      hash_pos_ = h + n;
    } else {
      uint64_t limit = available;
      if (next != retained_.end()) limit = std::min(limit, next->first);
      uint64_t aligned_start = h / kBufferAlignment * kBufferAlignment;
      size_t skip = static_cast<size_t>(h - aligned_start);
      size_t n = static_cast<size_t>(std::min<uint64_t>(limit - h, kReadBackBlock));
      size_t want = (skip + n + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
      lock.unlock();
      char* scratch = read_back_scratch();
      size_t got = file_.read_at(scratch, want, aligned_start);  // bytes past `limit` are not used
      size_t usable = got > skip ? std::min(got - skip, n) : 0;
      hasher_->update(scratch + skip, usable);
      lock.lock();
      hash_pos_ = h + usable;
      if (usable < n) return false;  // the file is shorter than recorded: finish() reports it incomplete
    }
  }
}

std::optional<StreamingVerifier::Result> StreamingVerifier::try_finish(uint64_t final_size) {
  std::unique_lock<std::mutex> lock(mu_);
  if (hashing_) {
    finish_due_ = true;
    return std::nullopt;
  }
  Result result;
  result.size = final_size;
  result.complete = written_.covers(0, final_size) && written_.contiguous_end(0) == final_size;
  if (expected_.kind == DigestKind::None) return result;
  if (!hasher_) hasher_ = std::make_unique<ContentHasher>(expected_, final_size);
  hashing_ = true;
  advance(lock, UINT64_MAX);
  hashing_ = false;
  while (!retained_.empty()) forget(retained_.begin());
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
