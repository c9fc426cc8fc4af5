// Worker threads and receive buffers of the download engine.

#include "modelagent/download_workers.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <new>

namespace modelagent {

BufferPool::BufferPool(size_t buffer_size, size_t max_buffers)
    : buffer_size_(buffer_size), max_buffers_(std::max<size_t>(max_buffers, 1)) {}

namespace {

constexpr size_t kHugePage = 2u << 20;

// Buffers are aligned for O_DIRECT writes (see PartialFile). Whole multiples of 2 MiB are placed on
// transparent huge pages where the kernel offers them: every direct write pins its buffer's pages,
// and pinning a few huge pages costs far less than pinning a thousand small ones.
char* allocate(size_t capacity) {
  bool huge = capacity % kHugePage == 0;
  size_t alignment = huge ? kHugePage : kBufferAlignment;
  size_t rounded = (capacity + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded);
  if (!p) throw std::bad_alloc();
  if (huge) ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only; ignored where unsupported
  return static_cast<char*>(p);
}

}  // namespace

BufferPool::~BufferPool() {
  for (char* p : free_) std::free(p);
}

std::shared_ptr<Buffer> BufferPool::try_acquire(size_t wanted) { return make(wanted, true); }

std::shared_ptr<Buffer> BufferPool::acquire(size_t wanted) { return make(wanted, false); }

std::shared_ptr<Buffer> BufferPool::make(size_t wanted, bool bounded) {
  size_t capacity = std::clamp<size_t>(wanted, 1, buffer_size_);
  char* storage = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (bounded && outstanding_ >= max_buffers_) return nullptr;
    ++outstanding_;
    if (capacity == buffer_size_ && !free_.empty()) {
      storage = free_.back();
      free_.pop_back();
    }
  }
  if (!storage) storage = allocate(capacity);
  auto* b = new Buffer{storage, capacity, 0, 0};
  auto self = shared_from_this();
  return std::shared_ptr<Buffer>(b, [self](Buffer* p) { self->release(p); });
}

bool BufferPool::exhausted() {
  std::lock_guard<std::mutex> lock(mu_);
  return outstanding_ >= max_buffers_;
}

void BufferPool::release(Buffer* b) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --outstanding_;
    if (b->capacity == buffer_size_ && free_.size() < max_buffers_) {
      free_.push_back(b->data);
      b->data = nullptr;
    }
  }
  std::free(b->data);
  delete b;
}

WorkerPool::WorkerPool(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { run(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  work_cv_.notify_one();
}

void WorkerPool::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return jobs_.empty() && busy_ == 0; });
}

void WorkerPool::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping and drained
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    ++busy_;
    lock.unlock();
    job();  // jobs catch their own exceptions
    lock.lock();
    --busy_;
    if (jobs_.empty() && busy_ == 0) idle_cv_.notify_all();
  }
}

}  // namespace modelagent
