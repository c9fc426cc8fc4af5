// Resuming: a download killed with SIGKILL (in a forked child) or cancelled mid-way continues from its
// resume journal without fetching finished ranges again; a journal for other content is not trusted.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>

#include "modelagent/download_engine.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/path_safety.hpp"
#include "modelagent/resume_journal.hpp"
#include "support/loopback_server.hpp"
#include "support/loopback_test_util.hpp"

using namespace modelagent;
using testsupport::Fault;
using testsupport::LoopbackServer;
using testsupport::make_content;
using testsupport::planned;
using testsupport::read_file;
using testsupport::TempDir;

namespace {

constexpr uint64_t MiB = 1 << 20;

// Journaled bytes of the file's partial download, read the way the engine reads them on start.
uint64_t journaled_bytes(const std::filesystem::path& final_path, const PlannedFile& f) {
  // The identity is internal to the engine; any valid journal of the right size will do here, so
  // read the header's identity from the file itself.
  FILE* in = std::fopen(journal_path_for(final_path).c_str(), "rb");
  if (!in) return 0;
  unsigned char header[32];
  size_t n = std::fread(header, 1, sizeof header, in);
  std::fclose(in);
  if (n != sizeof header) return 0;
  uint64_t identity = 0;
  std::memcpy(&identity, header + 8, 8);
  auto done = ResumeJournal::load(journal_path_for(final_path), identity, f.size);
  return done ? done->total() : 0;
}

template <typename Predicate>
bool wait_until(Predicate p, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return p();
}

// The server holds every request for `path` whose range starts at or after `begin` until release_holds().
void hold_ranges_from(LoopbackServer& server, const std::string& path, uint64_t begin) {
  Fault hold;
  hold.kind = Fault::Kind::Hold;
  hold.path = path;
  hold.times = 1000;
  hold.min_range_begin = begin;
  server.add_fault(hold);
}

}  // namespace

TEST(DownloadResume, KilledWithSigkillResumesWithoutRefetchingFinishedRanges) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(48 * MiB, 21);
  server.add_file("/model.safetensors", content);
  // Ranges from 16 MiB on are held by the server, so exactly the first two ranges can finish.
  hold_ranges_from(server, "/model.safetensors", 16 * MiB);
  DownloadPlan plan;
  plan.files.push_back(planned("model.safetensors", server.url("/model.safetensors"), content));
  auto options = testsupport::fast_options();
  options.chunk_size = 8 * MiB;
  options.connections_per_file = 4;
  auto final_path = dir / "model.safetensors";

  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      run_download(plan, dir.path(), options);
    } catch (...) {
    }
    ::_exit(0);
  }
  bool two_ranges_durable = wait_until([&] { return journaled_bytes(final_path, plan.files[0]) >= 16 * MiB; }, 60);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(two_ranges_durable) << "the child never journaled its first two ranges";
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(testsupport::exists(final_path));
  EXPECT_TRUE(testsupport::exists(partial_path_for(final_path)));

  // The resumed run fetches from a second server, so its log holds only that run's requests: requests
  // the killed child had already sent may still reach the first server's log after the kill (from
  // socket buffers and the accept queue), and would be answered once the holds were released.
  LoopbackServer resumed_server;
  resumed_server.add_file("/model.safetensors", content);
  DownloadPlan resumed_plan = plan;
  resumed_plan.files[0].url = resumed_server.url("/model.safetensors");  // the journal does not depend on the URL
  DownloadProgress progress;
  auto report = run_download(resumed_plan, dir.path(), options, nullptr, &progress);
  EXPECT_TRUE(report.files[0].verified);
  EXPECT_EQ(read_file(final_path), content);
  EXPECT_FALSE(testsupport::exists(journal_path_for(final_path)));
  uint64_t fetched_after = 0;
  for (const auto& r : resumed_server.requests()) {
    EXPECT_GE(r.range_begin, 16 * MiB) << "finished range starting at " << r.range_begin << " fetched again";
    fetched_after += r.body_bytes;
  }
  EXPECT_EQ(fetched_after, 32 * MiB);
  EXPECT_EQ(progress.bytes_fetched.load(), 32 * MiB);
  EXPECT_EQ(progress.bytes_done.load(), 48 * MiB);
}

TEST(DownloadResume, CancelledDownloadKeepsEveryReceivedByte) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(24 * MiB, 22);
  server.add_file("/w.bin", content);
  server.set_connection_rate(4 * MiB);
  // The last range is held, so the download cannot complete before the cancellation lands however the
  // threads are scheduled (writes that lag behind the network would otherwise let it finish first).
  hold_ranges_from(server, "/w.bin", 16 * MiB);
  DownloadPlan plan;
  plan.files.push_back(planned("w.bin", server.url("/w.bin"), content));
  auto options = testsupport::fast_options();
  options.chunk_size = 8 * MiB;
  options.connections_per_file = 3;
  CancelToken cancel;
  DownloadProgress first;
  auto run = std::async(std::launch::async, [&] {
    try {
      run_download(plan, dir.path(), options, &cancel, &first);
      return false;
    } catch (const CancelledError&) {
      return true;
    }
  });
  ASSERT_TRUE(wait_until([&] { return first.bytes_done.load() >= 6 * MiB; }, 30));
  cancel.cancel();
  ASSERT_TRUE(run.get());
  uint64_t kept = journaled_bytes(dir / "w.bin", plan.files[0]);
  EXPECT_GE(kept, 6 * MiB);
  EXPECT_LE(kept, 16 * MiB);
  EXPECT_EQ(kept, first.bytes_done.load());  // everything written was journaled at cancellation

  server.release_holds();
  server.set_connection_rate(0);
  DownloadProgress second;
  run_download(plan, dir.path(), options, nullptr, &second);
  EXPECT_EQ(read_file(dir / "w.bin"), content);
  // Only the gaps were fetched, each from the 4 KiB boundary at or before its start.
  EXPECT_GE(second.bytes_fetched.load(), content.size() - kept);
  EXPECT_LT(second.bytes_fetched.load(), content.size() - kept + 3 * 4096);
}

TEST(DownloadResume, SingleRangeFileResumesAfterCancellationToo) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(6 * MiB, 23);
  server.add_file("/s.bin", content);
  server.set_connection_rate(2 * MiB);
  // The response stops after 5 MiB until released, so the download cannot complete before the
  // cancellation lands (bytes_done moves in 4 MiB buffers: the wait below ends at 4 MiB written).
  Fault stall;
  stall.kind = Fault::Kind::StallAfter;
  stall.path = "/s.bin";
  stall.cut_after = 5 * MiB;
  server.add_fault(stall);
  DownloadPlan plan;
  plan.files.push_back(planned("s.bin", server.url("/s.bin"), content));
  CancelToken cancel;
  DownloadProgress first;
  auto run = std::async(std::launch::async, [&] {
    try {
      run_download(plan, dir.path(), testsupport::fast_options(), &cancel, &first);
    } catch (const CancelledError&) {
    }
  });
  ASSERT_TRUE(wait_until([&] { return first.bytes_done.load() >= 1 * MiB; }, 30));
  cancel.cancel();
  run.get();
  uint64_t kept = journaled_bytes(dir / "s.bin", plan.files[0]);
  EXPECT_GE(kept, 1 * MiB);
  EXPECT_LE(kept, 5 * MiB);
  server.release_holds();
  server.set_connection_rate(0);
  size_t before = server.requests().size();
  DownloadProgress second;
  run_download(plan, dir.path(), testsupport::fast_options(), nullptr, &second);
  EXPECT_EQ(read_file(dir / "s.bin"), content);
  uint64_t resume_at = kept / 4096 * 4096;
  EXPECT_EQ(second.bytes_fetched.load(), content.size() - resume_at);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), before + 1);
  EXPECT_EQ(reqs.back().range_begin, resume_at);
}

TEST(DownloadResume, JournalOfOtherContentIsNotTrusted) {
  LoopbackServer server;
  TempDir dir;
  std::string old_content = make_content(24 * MiB, 24);
  std::string new_content = make_content(24 * MiB, 25);
  server.add_file("/v.bin", old_content);
  hold_ranges_from(server, "/v.bin", 8 * MiB);
  DownloadPlan plan;
  plan.files.push_back(planned("v.bin", server.url("/v.bin"), old_content));
  auto options = testsupport::fast_options();
  options.chunk_size = 8 * MiB;
  CancelToken cancel;
  auto run = std::async(std::launch::async, [&] {
    try {
      run_download(plan, dir.path(), options, &cancel);
    } catch (const CancelledError&) {
    }
  });
  ASSERT_TRUE(wait_until([&] { return journaled_bytes(dir / "v.bin", plan.files[0]) >= 8 * MiB; }, 30));
  cancel.cancel();
  run.get();
  // Released only now: released before the run noticed the cancellation, the held ranges could arrive
  // and complete the old file, and the second run would replace a whole file instead of a journaled
  // partial one (passing even if the journal's identity were not checked).
  ASSERT_FALSE(testsupport::exists(dir / "v.bin"));
  ASSERT_GE(journaled_bytes(dir / "v.bin", plan.files[0]), 8 * MiB);
  server.release_holds();

  // Upstream changed: same path and size, another digest. The old partial data must not be reused.
  server.add_file("/v.bin", new_content);
  DownloadPlan updated;
  updated.files.push_back(planned("v.bin", server.url("/v.bin"), new_content));
  DownloadProgress progress;
  run_download(updated, dir.path(), options, nullptr, &progress);
  EXPECT_EQ(read_file(dir / "v.bin"), new_content);
  EXPECT_EQ(progress.bytes_fetched.load(), new_content.size());
}

TEST(DownloadResume, WriteFailureMidDownloadIsAnErrorNamingTheFile) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(8 * MiB, 26);
  server.add_file("/big.bin", content);
  DownloadPlan plan;
  plan.files.push_back(planned("big.bin", server.url("/big.bin"), content));
  plan.files[0].size = kUnknownSize;  // nothing is reserved up front, so the failure comes from a write
  // In a child process: a 1 MiB file-size limit makes pwrite fail with EFBIG part-way.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit {1 << 20, 1 << 20};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    int code = 1;
    try {
      run_download(plan, dir.path(), testsupport::fast_options());
      code = 2;
    } catch (const DownloadError& e) {
      std::string what = e.what();
      code = what.find("big.bin.partial") != std::string::npos && what.find("too large") != std::string::npos ? 0 : 3;
    } catch (...) {
      code = 4;
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "the child crashed";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1 = no error, 2 = succeeded, 3 = unclear message, 4 = other exception";
  EXPECT_FALSE(testsupport::exists(dir / "big.bin"));
}
