#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "modelagent/parallel_for.hpp"

using namespace modelagent;

namespace {

// Blocks until `flag` is set (bounded, so a broken parallel_for fails the test instead of hanging it).
void wait_until(const std::atomic<bool>& flag) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!flag.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace

TEST(ParallelFor, RunsEveryIndexOnceOnSeveralThreads) {
  std::vector<std::atomic<int>> calls(200);
  std::mutex mu;
  std::set<std::thread::id> threads;
  const auto caller = std::this_thread::get_id();
  std::atomic<bool> caller_ran{false};
  parallel_for(calls.size(), 4, [&](size_t i) {
    ++calls[i];
    {
      std::lock_guard lock(mu);
      threads.insert(std::this_thread::get_id());
    }
    if (std::this_thread::get_id() == caller) {
      caller_ran = true;
    } else {
      // Hold the other workers until the caller has taken a task, so that the pool cannot finish
      // everything before the caller starts (it must still get one).
      wait_until(caller_ran);
    }
  });
  for (const auto& c : calls) EXPECT_EQ(c.load(), 1);
  EXPECT_GE(threads.size(), 1u);
  EXPECT_LE(threads.size(), 4u);
  EXPECT_EQ(threads.count(caller), 1u) << "the caller is one of the workers";
}

TEST(ParallelFor, NothingToDoAndOddThreadCounts) {
  int calls = 0;
  parallel_for(0, 8, [&](size_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  std::set<std::thread::id> threads;
  parallel_for(5, 0, [&](size_t) { threads.insert(std::this_thread::get_id()); ++calls; });  // 0 → 1 thread
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST(ParallelFor, TheFirstErrorStopsTheRestAndIsRethrown) {
  std::atomic<int> started{0};
  try {
    parallel_for(10000, 1, [&](size_t i) {
      ++started;
      if (i == 3) throw std::runtime_error("HEAD of object 3 failed");
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "HEAD of object 3 failed");
  }
  EXPECT_EQ(started.load(), 4) << "one thread: nothing after the failing task";
  // Several threads: the other tasks wait until task 0 has thrown and then take a millisecond each, so
  // running all of them would need the failing thread to stall for seconds before its error is recorded.
  started = 0;
  std::atomic<bool> thrown{false};
  constexpr size_t kTasks = 20000;
  EXPECT_THROW(parallel_for(kTasks, 8, [&](size_t i) {
                 ++started;
                 if (i == 0) {
                   thrown = true;
                   throw std::runtime_error("first");
                 }
                 wait_until(thrown);
                 std::this_thread::sleep_for(std::chrono::milliseconds(1));
               }),
               std::runtime_error);
  EXPECT_LT(started.load(), static_cast<int>(kTasks));
}
