#pragma once
// Engine internals: the I/O worker threads that write, hash and sync off the network thread, and the
// pool of large receive buffers that bounds the memory in flight.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace modelagent {

// Alignment of buffer memory, and of file offsets and lengths for direct I/O.
inline constexpr size_t kBufferAlignment = 4096;

// Received bytes destined for one offset of one file.
struct Buffer {
  char* data = nullptr;
  size_t capacity = 0;
  size_t size = 0;
  uint64_t offset = 0;
};

// Hands out buffers of `buffer_size` bytes (smaller ones for small ranges), at most `max_buffers` at
// once. Released storage is kept for reuse, so steady-state downloads do not allocate or page-fault.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  BufferPool(size_t buffer_size, size_t max_buffers);
  ~BufferPool();
  // nullptr when max_buffers are out; capacity is min(wanted, buffer_size).
  std::shared_ptr<Buffer> try_acquire(size_t wanted);
  // Like try_acquire but may exceed max_buffers (for data that was already accepted).
  std::shared_ptr<Buffer> acquire(size_t wanted);
  size_t buffer_size() const { return buffer_size_; }
  size_t capacity() const { return max_buffers_; }
  bool exhausted();

 private:
  std::shared_ptr<Buffer> make(size_t wanted, bool bounded);
  void release(Buffer* b);
  size_t buffer_size_;
  size_t max_buffers_;
  std::mutex mu_;
  size_t outstanding_ = 0;
  std::vector<char*> free_;
};

// A fixed set of threads running submitted jobs in FIFO order.
class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void submit(std::function<void()> job);
  // Blocks until every submitted job has finished.
  void wait_idle();

 private:
  void run();
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<std::function<void()>> jobs_;
  size_t busy_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace modelagent
