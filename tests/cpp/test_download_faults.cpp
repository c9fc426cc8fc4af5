// Fault handling of run_download against the loopback server: 429 storms with Retry-After/RateLimit,
// 5xx bursts, connections cut mid-body, unreachable servers, cancellation, the bandwidth cap, the total
// time bound and proxy variables. Timing checks are lower bounds or generous ceilings only.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <thread>

#include "modelagent/download_engine.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/path_safety.hpp"
#include "support/loopback_server.hpp"
#include "support/loopback_test_util.hpp"
#include "support/refused_port.hpp"

using namespace modelagent;
using testsupport::Fault;
using testsupport::LoopbackServer;
using testsupport::make_content;
using testsupport::planned;
using testsupport::read_file;
using testsupport::TempDir;

namespace {

constexpr uint64_t MiB = 1 << 20;

Fault status_fault(const std::string& path, int status, int times,
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
  Fault f;
  f.kind = Fault::Kind::Status;
  f.path = path;
  f.status = status;
  f.times = times;
  f.headers = std::move(headers);
  return f;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST(DownloadFaults, RateLimitStormHonoursRetryAfter) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(256 * 1024, 1);
  server.add_file("/m.bin", content);
  server.add_fault(status_fault("/m.bin", 429, 3, {{"Retry-After", "1"}}));
  DownloadPlan plan;
  plan.files.push_back(planned("m.bin", server.url("/m.bin"), content));
  DownloadProgress progress;
  run_download(plan, dir.path(), testsupport::fast_options(), nullptr, &progress);
  EXPECT_EQ(read_file(dir / "m.bin"), content);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 4u);  // three 429s, then the answer
  for (size_t i = 1; i < reqs.size(); ++i) {
    EXPECT_GE(reqs[i].time - reqs[i - 1].time, 0.95) << "request " << i << " came before Retry-After elapsed";
  }
  EXPECT_EQ(progress.rate_limited.load(), 3u);
  EXPECT_DOUBLE_EQ(progress.rate_limit_wait_seconds.load(), 3.0);
  EXPECT_EQ(progress.retries.load(), 3u);
}

TEST(DownloadFaults, RateLimitHeaderPausesEveryRequestToThatServer) {
  LoopbackServer server;
  TempDir dir;
  DownloadPlan plan;
  for (int i = 0; i < 4; ++i) {
    std::string name = "/f" + std::to_string(i);
    std::string content = make_content(64 * 1024, 10 + i);
    server.add_file(name, content);
    plan.files.push_back(planned(name.substr(1), server.url(name), content));
  }
  // The first request is told the quota resets in 1 s; nobody may ask again before that.
  server.add_fault(status_fault("/f0", 429, 1, {{"RateLimit", "\"api\";r=0;t=1"}, {"Retry-After", "30"}}));
  auto options = testsupport::fast_options();
  options.max_connections = 1;
  DownloadProgress progress;
  run_download(plan, dir.path(), options, nullptr, &progress);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(reqs[0].status, 429);
  EXPECT_GE(reqs[1].time - reqs[0].time, 0.95);  // the RateLimit reset (1 s), not Retry-After (30 s), was used
  EXPECT_DOUBLE_EQ(progress.rate_limit_wait_seconds.load(), 1.0);
}

TEST(DownloadFaults, EndlessRateLimitingEndsInRateLimitedError) {
  LoopbackServer server;
  TempDir dir;
  server.add_file("/r.bin", "data");
  server.add_fault(status_fault("/r.bin", 429, 100, {{"Retry-After", "0"}}));
  DownloadPlan plan;
  plan.files.push_back(planned("r.bin", server.url("/r.bin"), "data"));
  auto options = testsupport::fast_options();
  options.max_attempts = 4;
  try {
    run_download(plan, dir.path(), options);
    FAIL() << "no error";
  } catch (const RateLimitedError& e) {
    EXPECT_EQ(e.status(), 429);
    EXPECT_EQ(e.url(), server.url("/r.bin"));
    EXPECT_NE(std::string(e.what()).find("r.bin"), std::string::npos);
  }
  EXPECT_EQ(server.count("/r.bin"), 4u);
}

TEST(DownloadFaults, OverlongServerWaitFailsFastInsteadOfHanging) {
  LoopbackServer server;
  TempDir dir;
  server.add_file("/w.bin", "data");
  server.add_fault(status_fault("/w.bin", 429, 1, {{"Retry-After", "3600"}}));
  DownloadPlan plan;
  plan.files.push_back(planned("w.bin", server.url("/w.bin"), "data"));
  try {
    run_download(plan, dir.path(), testsupport::fast_options());
    FAIL() << "no error";
  } catch (const RateLimitedError& e) {
    EXPECT_DOUBLE_EQ(e.retry_after(), 3600);
  }
}

TEST(DownloadFaults, ServerErrorBurstsAreRetriedWithBackoff) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(1 * MiB, 2);
  server.add_file("/s.bin", content);
  server.add_fault(status_fault("/s.bin", 503, 2));
  server.add_fault(status_fault("/s.bin", 500, 1));
  server.add_fault(status_fault("/s.bin", 408, 1));
  DownloadPlan plan;
  plan.files.push_back(planned("s.bin", server.url("/s.bin"), content));
  DownloadProgress progress;
  run_download(plan, dir.path(), testsupport::fast_options(), nullptr, &progress);
  EXPECT_EQ(read_file(dir / "s.bin"), content);
  EXPECT_EQ(server.count("/s.bin"), 5u);
  EXPECT_EQ(progress.retries.load(), 4u);
  EXPECT_EQ(progress.rate_limited.load(), 0u);
}

TEST(DownloadFaults, PersistentServerErrorGivesUpWithStatus) {
  LoopbackServer server;
  TempDir dir;
  server.add_file("/p.bin", "data");
  server.add_fault(status_fault("/p.bin", 502, 100));
  DownloadPlan plan;
  plan.files.push_back(planned("p.bin", server.url("/p.bin"), "data"));
  auto options = testsupport::fast_options();
  options.max_attempts = 3;
  try {
    run_download(plan, dir.path(), options);
    FAIL() << "no error";
  } catch (const HttpStatusError& e) {
    EXPECT_EQ(e.status(), 502);
    EXPECT_NE(std::string(e.what()).find("3 attempt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.count("/p.bin"), 3u);
}

TEST(DownloadFaults, ForbiddenIsNotRetried) {
  LoopbackServer server;
  TempDir dir;
  server.add_file("/g.bin", "data");
  server.add_fault(status_fault("/g.bin", 403, 100, {{"X-Error-Message", "Access to model org/x is restricted"}}));
  DownloadPlan plan;
  plan.files.push_back(planned("g.bin", server.url("/g.bin"), "data"));
  try {
    run_download(plan, dir.path(), testsupport::fast_options());
    FAIL() << "no error";
  } catch (const HttpStatusError& e) {
    EXPECT_EQ(e.status(), 403);
    EXPECT_NE(std::string(e.what()).find("is restricted"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.count("/g.bin"), 1u);
}

TEST(DownloadFaults, CutConnectionsResumeWhereTheyStopped) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(32 * MiB, 3);
  server.add_file("/cut.bin", content);
  Fault cut;
  cut.kind = Fault::Kind::CutAfter;
  cut.path = "/cut.bin";
  cut.times = 3;
  cut.cut_after = 3 * MiB + 7;
  server.add_fault(cut);
  DownloadPlan plan;
  plan.files.push_back(planned("cut.bin", server.url("/cut.bin"), content));
  auto options = testsupport::fast_options();
  options.chunk_size = 8 * MiB;
  options.connections_per_file = 4;
  DownloadProgress progress;
  run_download(plan, dir.path(), options, nullptr, &progress);
  EXPECT_EQ(read_file(dir / "cut.bin"), content);
  auto reqs = server.requests();
  EXPECT_EQ(reqs.size(), 4u + 3u);
  uint64_t body = 0;
  for (auto& r : reqs) body += r.body_bytes;
  // Retries continued at the 4 KiB boundary before each cut: at most 4 KiB per cut arrived twice.
  EXPECT_GE(body, content.size());
  EXPECT_LT(body, content.size() + 3 * 4096);
  EXPECT_EQ(progress.bytes_fetched.load(), body);
  int cuts = 0;
  for (auto& r : reqs) {
    uint64_t asked = *r.range_last + 1 - r.range_begin;
    if (r.body_bytes == asked) continue;
    ++cuts;
    EXPECT_EQ(r.body_bytes, 3 * MiB + 7);
    uint64_t cut_at = r.range_begin + r.body_bytes;
    bool continued = std::any_of(reqs.begin(), reqs.end(), [&](const testsupport::Request& later) {
      return later.range_begin == cut_at / 4096 * 4096 && later.range_last == r.range_last;
    });
    EXPECT_TRUE(continued) << "no request continued the range cut at " << cut_at;
  }
  EXPECT_EQ(cuts, 3);
}

TEST(DownloadFaults, UnreachableServerNamesTheUrl) {
  testsupport::RefusedPort gone;  // stays refused: a stopped server's port could be reused by another test's
  std::string url = gone.url("/x.bin");
  TempDir dir;
  DownloadPlan plan;
  plan.files.push_back(planned("x.bin", url, "x"));
  auto options = testsupport::fast_options();
  options.max_attempts = 2;
  try {
    run_download(plan, dir.path(), options);
    FAIL() << "no error";
  } catch (const DownloadError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(url), std::string::npos) << what;
    EXPECT_NE(what.find("2 attempt"), std::string::npos) << what;
  }
}

TEST(DownloadFaults, CancellationTakesEffectPromptly) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(4 * MiB, 4);
  server.add_file("/held.bin", content);
  Fault hold;
  hold.kind = Fault::Kind::Hold;
  hold.path = "/held.bin";
  hold.times = 100;
  server.add_fault(hold);
  DownloadPlan plan;
  plan.files.push_back(planned("held.bin", server.url("/held.bin"), content));
  CancelToken cancel;
  auto result = std::async(std::launch::async, [&] {
    try {
      run_download(plan, dir.path(), testsupport::fast_options(), &cancel);
      return std::string("finished");
    } catch (const CancelledError& e) {
      return std::string("cancelled: ") + e.what();
    } catch (const std::exception& e) {
      return std::string("other: ") + e.what();
    }
  });
  while (server.held() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto start = std::chrono::steady_clock::now();
  cancel.cancel();
  ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  double took = seconds_since(start);
  std::string outcome = result.get();
  EXPECT_EQ(outcome.rfind("cancelled: ", 0), 0u) << outcome;
  EXPECT_NE(outcome.find("partial files are kept"), std::string::npos);
  // The engine notices within one poll interval (200 ms) and promises "within a second"; the bound
  // leaves a loaded machine seconds to schedule the threads involved, and still fails if cancellation
  // waited for the stalled transfer (the 20 s low-speed timeout) or a retry.
  EXPECT_LT(took, 5.0) << "cancellation took " << took << " s";
  EXPECT_FALSE(testsupport::exists(dir / "held.bin"));
  server.release_holds();
}

TEST(DownloadFaults, BandwidthCapIsRespected) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(6 * MiB, 5);
  server.add_file("/bw.bin", content);
  DownloadPlan plan;
  plan.files.push_back(planned("bw.bin", server.url("/bw.bin"), content));
  auto options = testsupport::fast_options();
  options.bandwidth_limit = 3 * MiB;
  options.chunk_size = 1 * MiB;
  options.connections_per_file = 4;
  auto start = std::chrono::steady_clock::now();
  run_download(plan, dir.path(), options);
  double took = seconds_since(start);
  EXPECT_EQ(read_file(dir / "bw.bin"), content);
  // 6 MiB at 3 MiB/s takes about 2 s (less a small burst allowance); without the cap it takes ~0.1 s.
  double rate = static_cast<double>(content.size()) / took;
  EXPECT_LT(rate, 3.0 * MiB * 1.35) << "took " << took << " s";
}

TEST(DownloadFaults, SlowConnectionsGetMoreParallelRanges) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(16 * MiB, 7);
  server.add_file("/t.bin", content);
  server.set_connection_rate(2 * MiB);  // a link that limits each connection
  DownloadPlan plan;
  plan.files.push_back(planned("t.bin", server.url("/t.bin"), content));
  auto options = testsupport::fast_options();
  options.chunk_size = 1 * MiB;
  options.connections_per_file = 8;
  run_download(plan, dir.path(), options);
  EXPECT_EQ(read_file(dir / "t.bin"), content);
  // The engine starts a file as one stream and adds ranges because each connection is slow (and the
  // total rate grows with them).
  EXPECT_GT(server.max_concurrent("/t.bin"), 2u);
  EXPECT_LE(server.max_concurrent("/t.bin"), 8u);
}

TEST(DownloadFaults, TotalTimeoutBoundsTheRun) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(8 * MiB, 6);
  server.add_file("/slow.bin", content);
  server.set_connection_rate(256 * 1024);  // would take 32 s
  DownloadPlan plan;
  plan.files.push_back(planned("slow.bin", server.url("/slow.bin"), content));
  auto options = testsupport::fast_options();
  options.total_timeout_seconds = 1;
  options.connections_per_file = 1;
  auto start = std::chrono::steady_clock::now();
  try {
    run_download(plan, dir.path(), options);
    FAIL() << "no error";
  } catch (const DownloadError& e) {
    EXPECT_NE(std::string(e.what()).find("did not finish within"), std::string::npos) << e.what();
  }
  // The run ends about 1 s in (the download alone would take 32 s); the rest of the bound is slack for a
  // loaded machine, where stopping includes an fsync of the partial file behind other tests' writes.
  EXPECT_LT(seconds_since(start), 10.0);
  server.stop();
}

TEST(DownloadFaults, ProxyEnvironmentVariablesAreHonoured) {
  LoopbackServer proxy;
  TempDir dir;
  proxy.add_file("/via-proxy.bin", "proxied");
  ::setenv("http_proxy", proxy.base_url().c_str(), 1);
  ::unsetenv("no_proxy");
  ::unsetenv("NO_PROXY");
  DownloadPlan plan;
  plan.files.push_back(planned("via-proxy.bin", "http://models.example.invalid/via-proxy.bin", "proxied"));
  run_download(plan, dir.path(), testsupport::fast_options());
  ::unsetenv("http_proxy");
  EXPECT_EQ(read_file(dir / "via-proxy.bin"), "proxied");
  auto reqs = proxy.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_TRUE(reqs[0].absolute_form);
  EXPECT_EQ(reqs[0].target, "http://models.example.invalid/via-proxy.bin");
  EXPECT_EQ(reqs[0].header("host"), "models.example.invalid");
}
