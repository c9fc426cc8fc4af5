#include "modelagent/parallel_for.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <vector>

namespace modelagent {

void parallel_for(size_t count, int max_threads, const std::function<void(size_t)>& task) {
  if (count == 0) return;
  std::vector<std::exception_ptr> errors(count);
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < count; i = next++) {
      try {
        task(i);
      } catch (...) {
        errors[i] = std::current_exception();
        next = count;
      }
    }
  };
  size_t threads = std::min<size_t>(static_cast<size_t>(std::clamp(max_threads, 1, 64)), count);
  {
    std::vector<std::jthread> pool;  // joined even when starting a thread throws
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
  }
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace modelagent
