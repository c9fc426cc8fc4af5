#pragma once
// Runs independent tasks (HEAD requests while planning) on a few threads.

#include <cstddef>
#include <functional>

namespace modelagent {

// Calls task(0) .. task(count - 1) on up to `max_threads` threads (at least 1, at most 64; the calling
// thread is one of them). The first exception stops handing out further tasks and is rethrown once every
// thread has finished; tasks already running complete.
void parallel_for(size_t count, int max_threads, const std::function<void(size_t)>& task);

}  // namespace modelagent
