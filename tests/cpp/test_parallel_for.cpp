#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "modelagent/parallel_for.hpp"

using namespace modelagent;

TEST(ParallelFor, RunsEveryIndexOnceOnSeveralThreads) {
  std::vector<std::atomic<int>> calls(200);
  std::mutex mu;
  std::set<std::thread::id> threads;
  parallel_for(calls.size(), 4, [&](size_t i) {
    ++calls[i];
    std::lock_guard lock(mu);
    threads.insert(std::this_thread::get_id());
  });
  for (const auto& c : calls) EXPECT_EQ(c.load(), 1);
  EXPECT_GE(threads.size(), 1u);
  EXPECT_LE(threads.size(), 4u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 1u) << "the caller is one of the workers";
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
  started = 0;
  EXPECT_THROW(parallel_for(10000, 8, [&](size_t i) {
                 ++started;
                 if (i == 0) throw std::runtime_error("first");
               }),
               std::runtime_error);
  EXPECT_LT(started.load(), 10000);
}
