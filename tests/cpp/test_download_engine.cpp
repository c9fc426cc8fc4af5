// End-to-end tests of run_download against the loopback server: ranges and reassembly, digests,
// existing files and verified-stamps, redirects and credentials, servers that ignore Range, sizes.

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "modelagent/digest.hpp"
#include "modelagent/download_engine.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/path_safety.hpp"
#include "modelagent/verified_stamp.hpp"
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

std::vector<testsupport::Request> requests_for(const LoopbackServer& s, const std::string& path) {
  std::vector<testsupport::Request> out;
  for (auto& r : s.requests()) {
    if (r.path == path) out.push_back(r);
  }
  return out;
}

}  // namespace

TEST(DownloadEngine, ManyFilesWithEveryDigestKind) {
  LoopbackServer server;
  TempDir dir;
  DownloadPlan plan;
  std::map<std::string, std::string> contents = {
      {"config.json", "{\"model_type\": \"llama\"}\n"},
      {"tokenizer/tokenizer.json", make_content(300 * 1024, 2)},
      {"model.safetensors", make_content(3 * MiB + 17, 3)},
      {"weights.bin", make_content(100 * 1024, 4)},
  };
  for (auto& [path, content] : contents) server.add_file("/" + path, content);
  plan.files.push_back(planned("config.json", server.url("/config.json"), contents["config.json"], DigestKind::GitBlobSha1));
  plan.files.push_back(planned("tokenizer/tokenizer.json", server.url("/tokenizer/tokenizer.json"),
                               contents["tokenizer/tokenizer.json"], DigestKind::GitBlobSha1));
  plan.files.push_back(planned("model.safetensors", server.url("/model.safetensors"), contents["model.safetensors"]));
  plan.files.push_back(planned("weights.bin", server.url("/weights.bin"), contents["weights.bin"], DigestKind::Md5));
  DownloadProgress progress;
  auto report = run_download(plan, dir.path(), testsupport::fast_options(), nullptr, &progress);
  ASSERT_EQ(report.files.size(), 4u);
  for (size_t i = 0; i < plan.files.size(); ++i) {
    const auto& r = report.files[i];
    EXPECT_EQ(r.relative_path, plan.files[i].relative_path);
    EXPECT_TRUE(r.downloaded);
    EXPECT_TRUE(r.verified) << r.relative_path;
    EXPECT_EQ(r.digest_hex, plan.files[i].digest.value);
    EXPECT_EQ(read_file(dir / r.relative_path), contents[r.relative_path]);
    EXPECT_FALSE(testsupport::exists(partial_path_for(dir / r.relative_path)));
    EXPECT_FALSE(testsupport::exists(journal_path_for(dir / r.relative_path)));
  }
  uint64_t total = 0;
  for (auto& [p, c] : contents) total += c.size();
  EXPECT_EQ(progress.bytes_total.load(), total);
  EXPECT_EQ(progress.bytes_done.load(), total);
  EXPECT_EQ(progress.bytes_fetched.load(), total);
  EXPECT_EQ(progress.files_done.load(), 4u);
  EXPECT_EQ(progress.files_total.load(), 4u);
  EXPECT_EQ(report.bytes_fetched, total);
  // Connections were reused: far fewer connections than requests would be needed otherwise.
  EXPECT_LE(server.connections_accepted(), server.requests().size());
}

TEST(DownloadEngine, LargeFileIsFetchedInRangesAndReassembled) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(40 * MiB + 12345, 9);
  server.add_file("/big.safetensors", content);
  DownloadPlan plan;
  plan.files.push_back(planned("big.safetensors", server.url("/big.safetensors"), content));
  auto options = testsupport::fast_options();
  options.chunk_size = 8 * MiB;
  options.connections_per_file = 4;
  auto report = run_download(plan, dir.path(), options);
  EXPECT_TRUE(report.files[0].verified);
  EXPECT_EQ(read_file(dir / "big.safetensors"), content);
  auto reqs = requests_for(server, "/big.safetensors");
  ASSERT_EQ(reqs.size(), 6u);  // ceil((40 MiB + 12345) / 8 MiB)
  std::set<uint64_t> begins;
  uint64_t covered = 0;
  for (auto& r : reqs) {
    EXPECT_TRUE(r.has_range);
    EXPECT_EQ(r.status, 206);
    begins.insert(r.range_begin);
    covered += r.body_bytes;
  }
  EXPECT_EQ(covered, content.size());  // no byte fetched twice
  EXPECT_EQ(begins.size(), 6u);
  EXPECT_EQ(*begins.begin(), 0u);
  // The user agent names the engine.
  EXPECT_EQ(reqs[0].header("user-agent").rfind("modelagent/", 0), 0u);
}

TEST(DownloadEngine, ZeroByteFileAndUnknownSize) {
  LoopbackServer server;
  TempDir dir;
  std::string stream = make_content(5 * MiB + 3, 5);
  server.add_file("/empty.txt", "");
  server.add_file("/stream.bin", stream);
  DownloadPlan plan;
  plan.files.push_back(planned("empty.txt", server.url("/empty.txt"), "", DigestKind::GitBlobSha1));
  PlannedFile unknown = planned("stream.bin", server.url("/stream.bin"), stream, DigestKind::GitBlobSha1);
  unknown.size = kUnknownSize;  // git-blob SHA-1 needs the size: computed once the stream ended
  plan.files.push_back(unknown);
  DownloadProgress progress;
  auto report = run_download(plan, dir.path(), testsupport::fast_options(), nullptr, &progress);
  EXPECT_EQ(progress.bytes_total.load(), stream.size());  // learnt from the response
  EXPECT_EQ(progress.bytes_done.load(), stream.size());
  EXPECT_TRUE(report.files[0].verified);
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "empty.txt"));
  EXPECT_EQ(std::filesystem::file_size(dir / "empty.txt"), 0u);
  EXPECT_TRUE(report.files[1].verified);
  EXPECT_EQ(report.files[1].size, stream.size());
  EXPECT_EQ(read_file(dir / "stream.bin"), stream);
  auto reqs = requests_for(server, "/stream.bin");
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_FALSE(reqs[0].has_range);  // unknown size: one stream
  EXPECT_FALSE(requests_for(server, "/empty.txt")[0].has_range);
}

TEST(DownloadEngine, ServerIgnoringRangeIsNotAppended) {
  LoopbackServer server;
  server.set_ranges_supported(false);
  TempDir dir;
  std::string content = make_content(20 * MiB + 1, 6);
  server.add_file("/norange.bin", content);
  DownloadPlan plan;
  plan.files.push_back(planned("norange.bin", server.url("/norange.bin"), content));
  auto options = testsupport::fast_options();
  options.chunk_size = 4 * MiB;
  options.connections_per_file = 4;
  auto report = run_download(plan, dir.path(), options);
  EXPECT_TRUE(report.files[0].verified);
  EXPECT_EQ(read_file(dir / "norange.bin"), content);
  // Every response was a 200 with the whole body; at least one was used as the whole file and the
  // file is byte-identical, so nothing was appended at a range offset.
  for (auto& r : requests_for(server, "/norange.bin")) EXPECT_EQ(r.status, 200);
}

TEST(DownloadEngine, ResumingStreamGetting200RestartsFromZero) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(3 * MiB, 7);
  server.add_file("/f.bin", content);
  // The first response is cut after 1 MiB; the retry asks for the rest, which this server answers
  // with the whole file (200): it must be written from byte 0, not appended at 1 MiB.
  server.add_fault(Fault{Fault::Kind::CutAfter, "/f.bin", 1, std::nullopt, 500, {}, 1 * MiB});
  server.add_fault(Fault{Fault::Kind::IgnoreRange, "/f.bin", 1, 1});
  DownloadPlan plan;
  plan.files.push_back(planned("f.bin", server.url("/f.bin"), content));
  auto report = run_download(plan, dir.path(), testsupport::fast_options());
  EXPECT_EQ(read_file(dir / "f.bin"), content);
  auto reqs = requests_for(server, "/f.bin");
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_TRUE(reqs[1].has_range);
  EXPECT_EQ(reqs[1].range_begin, 1 * MiB);
  EXPECT_EQ(reqs[1].status, 200);
}

TEST(DownloadEngine, CorruptedBytesAreDetectedAndRefetched) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(2 * MiB, 8);
  server.add_file("/c.bin", content);
  server.add_fault(Fault{Fault::Kind::Corrupt, "/c.bin", 1, std::nullopt, 0, {}, 0, 123456});
  DownloadPlan plan;
  plan.files.push_back(planned("c.bin", server.url("/c.bin"), content));
  DownloadProgress progress;
  auto report = run_download(plan, dir.path(), testsupport::fast_options(), nullptr, &progress);
  EXPECT_TRUE(report.files[0].verified);
  EXPECT_NE(report.files[0].note.find("re-fetched 1 time"), std::string::npos) << report.files[0].note;
  EXPECT_EQ(read_file(dir / "c.bin"), content);
  EXPECT_EQ(server.count("/c.bin"), 2u);
  EXPECT_EQ(progress.bytes_done.load(), content.size());  // the bad copy's bytes were taken back
}

TEST(DownloadEngine, PersistentCorruptionEndsInVerificationErrorWithNothingInPlace) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(1 * MiB, 10);
  server.add_file("/bad.bin", content);
  server.add_fault(Fault{Fault::Kind::Corrupt, "/bad.bin", 100, std::nullopt, 0, {}, 0, 5});
  DownloadPlan plan;
  plan.files.push_back(planned("bad.bin", server.url("/bad.bin"), content));
  try {
    run_download(plan, dir.path(), testsupport::fast_options());
    FAIL() << "no error";
  } catch (const VerificationError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("bad.bin"), std::string::npos) << what;
    EXPECT_NE(what.find("expected " + testsupport::sha256_hex(content)), std::string::npos) << what;
  }
  EXPECT_EQ(server.count("/bad.bin"), 3u);  // bounded whole-file attempts
  EXPECT_FALSE(testsupport::exists(dir / "bad.bin"));
  EXPECT_FALSE(testsupport::exists(dir / "bad.bin.partial"));
  EXPECT_FALSE(testsupport::exists(dir / "bad.bin.partial.journal"));
}

TEST(DownloadEngine, ExistingFilesUseStampsOrAreRehashedOrReplaced) {
  LoopbackServer server;
  TempDir dir;
  std::string a = make_content(2 * MiB, 11), b = make_content(1 * MiB, 12), c = make_content(1 * MiB, 13);
  server.add_file("/a.bin", a);
  server.add_file("/b.bin", b);
  server.add_file("/c.bin", c);
  DownloadPlan plan;
  plan.files.push_back(planned("a.bin", server.url("/a.bin"), a));
  plan.files.push_back(planned("b.bin", server.url("/b.bin"), b));
  plan.files.push_back(planned("c.bin", server.url("/c.bin"), c));
  run_download(plan, dir.path(), testsupport::fast_options());
  ASSERT_EQ(server.requests().size(), 3u);

  // 1. Nothing changed: every file is trusted through its stamp; no request, no byte re-read.
  uint64_t rehashed = bytes_rehashed_from_disk();
  auto again = run_download(plan, dir.path(), testsupport::fast_options());
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_EQ(bytes_rehashed_from_disk(), rehashed);
  for (auto& r : again.files) {
    EXPECT_FALSE(r.downloaded);
    EXPECT_TRUE(r.verified);
    EXPECT_NE(r.note.find("verified-stamp"), std::string::npos);
  }

  // 2. b.bin lost its stamp (e.g. copied in by hand): re-hashed once, kept, stamped again.
  remove_stamp(dir.path(), "b.bin");
  // 3. c.bin was modified in place with the same size: re-hashed, mismatch, replaced atomically.
  // (Modified once the file system's clock has moved past the stamped ctime: rewritten within the same
  // tick, the file would keep the ctime, mtime, size and inode its stamp records.)
  std::string tampered = c;
  tampered[100] ^= 1;
  testsupport::wait_for_later_ctime(dir / "c.bin");
  testsupport::write_file(dir / "c.bin", tampered);
  auto third = run_download(plan, dir.path(), testsupport::fast_options());
  EXPECT_EQ(bytes_rehashed_from_disk() - rehashed, b.size() + c.size());
  EXPECT_FALSE(third.files[0].downloaded);
  EXPECT_FALSE(third.files[1].downloaded);
  EXPECT_NE(third.files[1].note.find("re-hashed"), std::string::npos);
  EXPECT_TRUE(third.files[2].downloaded);
  EXPECT_NE(third.files[2].note.find("replaced"), std::string::npos);
  EXPECT_EQ(read_file(dir / "c.bin"), c);
  EXPECT_EQ(server.count("/b.bin"), 1u);
  EXPECT_EQ(server.count("/c.bin"), 2u);

  // 4. And now everything is stamped again.
  rehashed = bytes_rehashed_from_disk();
  run_download(plan, dir.path(), testsupport::fast_options());
  EXPECT_EQ(bytes_rehashed_from_disk(), rehashed);
  EXPECT_EQ(server.requests().size(), 4u);
}

TEST(DownloadEngine, WrongSizedExistingFileIsReplacedWithoutHashing) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(512 * 1024, 14);
  server.add_file("/m.bin", content);
  testsupport::write_file(dir / "m.bin", "truncated");
  DownloadPlan plan;
  plan.files.push_back(planned("m.bin", server.url("/m.bin"), content));
  uint64_t rehashed = bytes_rehashed_from_disk();
  auto report = run_download(plan, dir.path(), testsupport::fast_options());
  EXPECT_EQ(bytes_rehashed_from_disk(), rehashed);
  EXPECT_TRUE(report.files[0].downloaded);
  EXPECT_EQ(read_file(dir / "m.bin"), content);
}

TEST(DownloadEngine, CrossHostRedirectDropsAuthorization) {
  LoopbackServer hub;                  // 127.0.0.1
  LoopbackServer cdn("127.0.0.2");     // another host, like a CDN
  TempDir dir;
  std::string content = make_content(24 * MiB, 15);
  cdn.add_file("/blob/sha", content);
  hub.add_redirect("/org/model/resolve/main/model.safetensors", cdn.url("/blob/sha") + "?X-Amz-Signature=secret");
  std::string small = "{\"a\": 1}";
  hub.add_redirect("/org/model/resolve/main/config.json", "/api/resolve-cache/config.json");  // relative, same host
  hub.add_file("/api/resolve-cache/config.json", small);
  DownloadPlan plan;
  auto big = planned("model.safetensors", hub.url("/org/model/resolve/main/model.safetensors"), content);
  big.headers = {{"Authorization", "Bearer hf_secret"}, {"X-Custom", "kept"}};
  auto cfg = planned("config.json", hub.url("/org/model/resolve/main/config.json"), small, DigestKind::GitBlobSha1);
  cfg.headers = {{"Authorization", "Bearer hf_secret"}};
  plan.files = {big, cfg};
  auto options = testsupport::fast_options();
  options.chunk_size = 8 * MiB;
  auto report = run_download(plan, dir.path(), options);
  EXPECT_EQ(read_file(dir / "model.safetensors"), content);
  EXPECT_EQ(read_file(dir / "config.json"), small);
  // The hub saw the token; the CDN never did, but got the other headers.
  for (auto& r : hub.requests()) EXPECT_EQ(r.header("authorization"), "Bearer hf_secret") << r.path;
  auto cdn_requests = cdn.requests();
  ASSERT_EQ(cdn_requests.size(), 3u);
  for (auto& r : cdn_requests) {
    EXPECT_FALSE(r.has_header("authorization"));
    EXPECT_EQ(r.header("x-custom"), "kept");
    EXPECT_NE(r.target.find("X-Amz-Signature=secret"), std::string::npos);
  }
  // The redirect target was remembered: later ranges went straight to the CDN.
  EXPECT_EQ(hub.count("/org/model/resolve/main/model.safetensors"), 1u);
  // A relative redirect stays on the hub, so the token was kept there.
  EXPECT_EQ(hub.count("/api/resolve-cache/config.json"), 1u);
}

TEST(DownloadEngine, ExpiredRedirectTargetFallsBackToThePlannedUrl) {
  LoopbackServer hub;
  LoopbackServer cdn("127.0.0.2");
  TempDir dir;
  std::string content = make_content(16 * MiB, 16);
  cdn.add_file("/blob", content);
  hub.add_redirect("/resolve/model.bin", cdn.url("/blob"));
  // The second request to the CDN finds its signature expired (403).
  cdn.add_fault(Fault{Fault::Kind::Status, "/blob", 1, 1, 403});
  DownloadPlan plan;
  plan.files.push_back(planned("model.bin", hub.url("/resolve/model.bin"), content));
  auto options = testsupport::fast_options();
  options.chunk_size = 8 * MiB;
  options.connections_per_file = 1;
  auto report = run_download(plan, dir.path(), options);
  EXPECT_EQ(read_file(dir / "model.bin"), content);
  EXPECT_EQ(hub.count("/resolve/model.bin"), 2u);  // resolved again after the 403
}

TEST(DownloadEngine, NotFoundIsAnHttpStatusErrorNamingFileAndUrl) {
  LoopbackServer server;
  TempDir dir;
  DownloadPlan plan;
  plan.files.push_back(planned("missing.bin", server.url("/missing.bin"), "abc"));
  try {
    run_download(plan, dir.path(), testsupport::fast_options());
    FAIL() << "no error";
  } catch (const HttpStatusError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.url(), server.url("/missing.bin"));
    EXPECT_NE(std::string(e.what()).find("missing.bin"), std::string::npos);
  }
  EXPECT_EQ(server.count("/missing.bin"), 1u);  // a 404 is not retried
  EXPECT_FALSE(testsupport::exists(dir / "missing.bin"));
}

TEST(DownloadEngine, SizeDisagreementIsAVerificationError) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(1000, 17);
  server.add_file("/s.bin", content);
  DownloadPlan plan;
  plan.files.push_back(planned("s.bin", server.url("/s.bin"), content));
  plan.files[0].size = 999;
  EXPECT_THROW(run_download(plan, dir.path(), testsupport::fast_options()), VerificationError);
  EXPECT_FALSE(testsupport::exists(dir / "s.bin"));
}

TEST(DownloadEngine, PlanLargerThanTheServersFileIsASizeMismatch) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(20 * MiB, 18);
  server.add_file("/short.bin", content);
  DownloadPlan plan;
  plan.files.push_back(planned("short.bin", server.url("/short.bin"), content));
  plan.files[0].size = 40 * MiB;  // the ranges past 20 MiB get 416
  auto options = testsupport::fast_options();
  options.chunk_size = 8 * MiB;
  try {
    run_download(plan, dir.path(), options);
    FAIL() << "no error";
  } catch (const VerificationError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("size mismatch for short.bin"), std::string::npos) << what;
  }
  EXPECT_FALSE(testsupport::exists(dir / "short.bin"));
}

TEST(DownloadEngine, UnsafeNamesAreRejectedBeforeAnyWrite) {
  LoopbackServer server;
  TempDir dir;
  server.add_file("/ok", "ok");
  for (std::string bad : std::vector<std::string>{"../escape.bin", "/abs.bin", "a/../../b", std::string("nul\0byte", 9)}) {
    DownloadPlan plan;
    plan.files.push_back(planned("ok.bin", server.url("/ok"), "ok"));
    plan.files.push_back(planned(bad, server.url("/ok"), "ok"));
    auto root = dir / "root";
    EXPECT_THROW(run_download(plan, root, testsupport::fast_options()), UnsafePathError) << bad;
    EXPECT_FALSE(testsupport::exists(root)) << "wrote before rejecting " << bad;
  }
  EXPECT_EQ(server.requests().size(), 0u);
}

TEST(DownloadEngine, SymlinkEscapeIsRejected) {
  LoopbackServer server;
  TempDir dir, outside;
  server.add_file("/x", "x");
  std::filesystem::create_directory_symlink(outside.path(), dir / "models");
  DownloadPlan plan;
  plan.files.push_back(planned("models/x.bin", server.url("/x"), "x"));
  EXPECT_THROW(run_download(plan, dir.path(), testsupport::fast_options()), UnsafePathError);
  EXPECT_TRUE(std::filesystem::is_empty(outside.path()));
  EXPECT_EQ(server.requests().size(), 0u);
}

TEST(DownloadEngine, DiskSpaceIsCheckedForTheWholePlanUpFront) {
  LoopbackServer server;
  TempDir dir;
  server.add_file("/small", "small");
  DownloadPlan plan;
  plan.files.push_back(planned("small.bin", server.url("/small"), "small"));
  PlannedFile huge = planned("huge.bin", server.url("/huge"), "");
  huge.size = 1ull << 50;  // a petabyte
  huge.digest.value = std::string(64, 'a');
  plan.files.push_back(huge);
  try {
    run_download(plan, dir / "root", testsupport::fast_options());
    FAIL() << "no error";
  } catch (const DiskSpaceError& e) {
    EXPECT_NE(std::string(e.what()).find("available"), std::string::npos);
  }
  EXPECT_EQ(server.requests().size(), 0u);  // not even the small file was fetched
  EXPECT_FALSE(testsupport::exists(dir / "root/small.bin"));
  EXPECT_FALSE(testsupport::exists(dir / "root/small.bin.partial"));
}

TEST(DownloadEngine, PlanWithoutDigestChecksSizeAndSaysSo) {
  LoopbackServer server;
  TempDir dir;
  server.add_file("/n.bin", "nodigest");
  DownloadPlan plan;
  plan.files.push_back(planned("n.bin", server.url("/n.bin"), "nodigest", DigestKind::None));
  auto report = run_download(plan, dir.path(), testsupport::fast_options());
  EXPECT_TRUE(report.files[0].downloaded);
  EXPECT_FALSE(report.files[0].verified);
  EXPECT_NE(report.files[0].note.find("no digest"), std::string::npos);
  EXPECT_EQ(read_file(dir / "n.bin"), "nodigest");
}

TEST(DownloadEngine, BadOptionsAndDigestsAreClearErrors) {
  TempDir dir;
  DownloadPlan plan;
  plan.files.push_back(planned("a.bin", "http://127.0.0.1:1/a", "a"));
  auto options = testsupport::fast_options();
  options.max_connections = 0;
  try {
    run_download(plan, dir.path(), options);
    FAIL();
  } catch (const DownloadError& e) {
    EXPECT_NE(std::string(e.what()).find("max_connections"), std::string::npos);
  }
  plan.files[0].digest.value = "xyz";
  try {
    run_download(plan, dir.path(), testsupport::fast_options());
    FAIL();
  } catch (const DownloadError& e) {
    EXPECT_NE(std::string(e.what()).find("a.bin"), std::string::npos);
  }
}

TEST(DownloadEngine, VerifyFilesReportsEachProblemWithoutChangingAnything) {
  TempDir dir;
  std::string good = "good content", bad = "bad content!";
  testsupport::write_file(dir / "good.bin", good);
  testsupport::write_file(dir / "bad.bin", bad);
  testsupport::write_file(dir / "short.bin", "x");
  DownloadPlan plan;
  plan.files.push_back(planned("good.bin", "http://unused/1", good));
  plan.files.push_back(planned("bad.bin", "http://unused/2", "bad content?"));
  plan.files.push_back(planned("short.bin", "http://unused/3", "xyz"));
  plan.files.push_back(planned("missing.bin", "http://unused/4", "m"));
  auto results = verify_files(plan, dir.path());
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].verified);
  EXPECT_FALSE(results[1].verified);
  EXPECT_NE(results[1].note.find("mismatch"), std::string::npos);
  EXPECT_FALSE(results[2].verified);
  EXPECT_NE(results[2].note.find("size"), std::string::npos);
  EXPECT_EQ(results[3].note, "missing");
  EXPECT_EQ(read_file(dir / "bad.bin"), bad);
  EXPECT_FALSE(testsupport::exists(dir / ".modelagent"));
}

TEST(DownloadEngine, ConnectionsAreReusedAcrossFiles) {
  LoopbackServer server;
  TempDir dir;
  DownloadPlan plan;
  for (int i = 0; i < 12; ++i) {
    std::string name = "/f" + std::to_string(i) + ".json";
    std::string content = make_content(10000 + i, 30 + i);
    server.add_file(name, content);
    plan.files.push_back(planned(name.substr(1), server.url(name), content, DigestKind::GitBlobSha1));
  }
  auto options = testsupport::fast_options();
  options.max_connections = 2;
  run_download(plan, dir.path(), options);
  EXPECT_EQ(server.requests().size(), 12u);
  EXPECT_LE(server.connections_accepted(), 2u);  // keep-alive: twelve requests over at most two connections
}

TEST(DownloadEngine, DirectoryInTheWayIsAClearError) {
  LoopbackServer server;
  TempDir dir;
  server.add_file("/x", "x");
  std::filesystem::create_directories(dir / "config.json");
  DownloadPlan plan;
  plan.files.push_back(planned("config.json", server.url("/x"), "x"));
  try {
    run_download(plan, dir.path(), testsupport::fast_options());
    FAIL() << "no error";
  } catch (const DownloadError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
}

TEST(DownloadEngine, ConcurrentRunsIntoOneRootTakeTurns) {
  LoopbackServer server;
  TempDir dir;
  std::string content = make_content(4 * MiB, 40);
  server.add_file("/m.bin", content);
  server.set_connection_rate(8 * MiB);
  DownloadPlan plan;
  plan.files.push_back(planned("m.bin", server.url("/m.bin"), content));
  DownloadProgress first_progress;
  std::thread first([&] { run_download(plan, dir.path(), testsupport::fast_options(), nullptr, &first_progress); });
  while (first_progress.bytes_fetched.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // The second run waits for the first one's lock, then finds the file complete and stamped.
  auto second = run_download(plan, dir.path(), testsupport::fast_options());
  first.join();
  EXPECT_FALSE(second.files[0].downloaded);
  EXPECT_TRUE(second.files[0].verified);
  EXPECT_EQ(server.count("/m.bin"), 1u);
  EXPECT_EQ(read_file(dir / "m.bin"), content);
}

TEST(DownloadEngine, ManyLargeFilesAtOnce) {
  LoopbackServer server;
  TempDir dir;
  DownloadPlan plan;
  std::vector<std::string> contents;
  for (int i = 0; i < 12; ++i) {
    contents.push_back(make_content(20 * MiB + 4096 * i + 3, 50 + i));
    std::string name = "/shard-" + std::to_string(i);
    server.add_file(name, contents.back());
    plan.files.push_back(planned(name.substr(1), server.url(name), contents.back()));
  }
  // Each file has ranges close enough together that later ones are kept in memory for hashing while
  // the first is still arriving; with a dozen such files the buffers kept and in flight compete for
  // the bounded pool, and everything must still complete and verify.
  server.set_connection_rate(32 * MiB);
  auto options = testsupport::fast_options();
  options.max_connections = 16;
  options.connections_per_file = 3;
  options.chunk_size = 8 * MiB;
  auto report = run_download(plan, dir.path(), options);
  for (int i = 0; i < 12; ++i) {
    EXPECT_TRUE(report.files[i].verified);
    EXPECT_EQ(read_file(dir / plan.files[i].relative_path), contents[i]);
  }
}
