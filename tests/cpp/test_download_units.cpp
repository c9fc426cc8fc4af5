// Unit tests of the engine's building blocks: interval sets and range plans, the bandwidth token
// bucket, the resume journal, path safety, disk-space accounting, partial files and verified-stamps.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "modelagent/bandwidth_limiter.hpp"
#include "modelagent/disk_space.hpp"
#include "modelagent/download_engine.hpp"
#include "modelagent/download_file_state.hpp"
#include "modelagent/download_workers.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/partial_file.hpp"
#include "modelagent/path_safety.hpp"
#include "modelagent/range_planner.hpp"
#include "modelagent/resume_journal.hpp"
#include "modelagent/verified_stamp.hpp"
#include "support/loopback_server.hpp"
#include "support/loopback_test_util.hpp"

using namespace modelagent;
using testsupport::TempDir;

TEST(IntervalSet, AddCoalescesAndCountsNewBytes) {
  IntervalSet s;
  EXPECT_EQ(s.add(10, 20), 10u);
  EXPECT_EQ(s.add(30, 40), 10u);
  EXPECT_EQ(s.add(15, 35), 10u);  // only 20..30 was new
  EXPECT_EQ(s.ranges().size(), 1u);
  EXPECT_EQ(s.ranges()[0], (ByteRange{10, 40}));
  EXPECT_EQ(s.add(40, 50), 10u);  // adjacent: merged
  EXPECT_EQ(s.ranges().size(), 1u);
  EXPECT_EQ(s.add(0, 5), 5u);
  EXPECT_EQ(s.total(), 45u);
  EXPECT_EQ(s.contiguous_end(0), 5u);
  EXPECT_EQ(s.contiguous_end(12), 50u);
  EXPECT_EQ(s.contiguous_end(7), 7u);
  EXPECT_TRUE(s.covers(10, 50));
  EXPECT_FALSE(s.covers(4, 11));
  auto gaps = s.gaps(60);
  ASSERT_EQ(gaps.size(), 2u);
  EXPECT_EQ(gaps[0], (ByteRange{5, 10}));
  EXPECT_EQ(gaps[1], (ByteRange{50, 60}));
}

TEST(RangePlanner, SplitsOnlyWhatIsMissing) {
  constexpr uint64_t K = 4096;
  IntervalSet done;
  done.add(0, 10 * K);
  done.add(25 * K + 100, 30 * K);
  auto ranges = plan_ranges(40 * K + 5, 6 * K, done);
  std::vector<ByteRange> expected = {{10 * K, 16 * K}, {16 * K, 22 * K}, {22 * K, 25 * K + 100},
                                     {30 * K, 36 * K}, {36 * K, 40 * K + 5}};
  EXPECT_EQ(ranges, expected);
  IntervalSet all;
  all.add(0, 400);
  EXPECT_TRUE(plan_ranges(400, 64, all).empty());
}

TEST(RangePlanner, RangesStartAligned) {
  constexpr uint64_t K = 4096;
  IntervalSet done;
  done.add(0, 5000);           // a resumed prefix ending mid-page
  done.add(3 * K, 3 * K + 10);  // and a tiny island
  auto ranges = plan_ranges(10 * K, 100 * K, done);
  std::vector<ByteRange> expected = {{K, 3 * K}, {3 * K, 10 * K}};
  EXPECT_EQ(ranges, expected);
  for (auto& r : plan_ranges(1 << 20, 100000, IntervalSet{})) EXPECT_EQ(r.begin % K, 0u);
}

TEST(RangePlanner, ChunkSizeFollowsConnectionsWithinBounds) {
  constexpr uint64_t MiB = 1 << 20;
  EXPECT_EQ(effective_chunk_size(4096 * MiB, 64 * MiB, 8), 64 * MiB);  // capped by chunk_size
  EXPECT_EQ(effective_chunk_size(1024 * MiB, 64 * MiB, 8), 32 * MiB);  // four ranges per connection
  EXPECT_EQ(effective_chunk_size(400 * MiB, 64 * MiB, 8), 13 * MiB);   // 400/32 rounded up to MiB
  EXPECT_EQ(effective_chunk_size(100 * MiB, 64 * MiB, 8), kMinRangeSize);
  EXPECT_EQ(effective_chunk_size(10 * MiB, 64 * MiB, 8), kMinRangeSize);
  EXPECT_EQ(effective_chunk_size(10 * MiB, 64 * MiB, 1), 64 * MiB);
  EXPECT_EQ(effective_chunk_size(10 * MiB, 1 * MiB, 8), 1 * MiB);      // never above chunk_size
}

TEST(BandwidthLimiter, DebtTurnsIntoWaitAtTheConfiguredRate) {
  BandwidthLimiter off(0);
  off.consume(1 << 30, 0);
  EXPECT_EQ(off.wait_seconds(0), 0);
  BandwidthLimiter l(1000, 0.5);
  l.consume(0, 10.0);
  EXPECT_EQ(l.wait_seconds(10.0), 0);
  l.consume(3000, 10.0);
  EXPECT_DOUBLE_EQ(l.wait_seconds(10.0), 3.0);
  EXPECT_DOUBLE_EQ(l.wait_seconds(11.0), 2.0);
  EXPECT_EQ(l.wait_seconds(13.0), 0);
  // Idle time saves at most the burst allowance (0.5 s worth).
  EXPECT_EQ(l.wait_seconds(100.0), 0);
  l.consume(1500, 100.0);
  EXPECT_DOUBLE_EQ(l.wait_seconds(100.0), 1.0);
}

TEST(ResumeJournal, RecordsSurviveReopenAndIdentityIsChecked) {
  TempDir dir;
  auto path = dir / "f.partial.journal";
  {
    ResumeJournal j(path, 42, 1000, /*fresh=*/true);
    j.append(0, 100);
    j.append(500, 600);
  }
  auto done = ResumeJournal::load(path, 42, 1000);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->total(), 200u);
  EXPECT_TRUE(done->covers(500, 600));
  EXPECT_FALSE(ResumeJournal::load(path, 43, 1000));  // another file's journal
  EXPECT_FALSE(ResumeJournal::load(path, 42, 999));   // another size
  EXPECT_FALSE(ResumeJournal::load(dir / "missing", 42, 1000));
  {
    ResumeJournal j(path, 42, 1000, /*fresh=*/false);  // keeps what is there
    j.append(100, 200);
  }
  EXPECT_EQ(ResumeJournal::load(path, 42, 1000)->total(), 300u);
}

TEST(ResumeJournal, TornOrCorruptTailIsIgnoredAndCutOff) {
  TempDir dir;
  auto path = dir / "f.partial.journal";
  {
    ResumeJournal j(path, 7, 1 << 20, true);
    j.append(0, 4096);
    j.append(4096, 8192);
  }
  auto full = std::filesystem::file_size(path);
  // A crash in the middle of appending the third record leaves a partial record.
  {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out.write("\x31\x4d\x41\x4a\x02\x00\x00\x00\x00\x20", 10);
  }
  auto done = ResumeJournal::load(path, 7, 1 << 20);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->total(), 8192u);
  // Flip a byte inside the last whole record: its checksum fails, the earlier record still counts.
  {
    std::fstream io(path, std::ios::binary | std::ios::in | std::ios::out);
    io.seekp(static_cast<std::streamoff>(full - 20));
    io.put('\x7f');
  }
  done = ResumeJournal::load(path, 7, 1 << 20);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->total(), 4096u);
  // Reopening for append drops the bad tail so new records follow the last good one.
  {
    ResumeJournal j(path, 7, 1 << 20, false);
    j.append(10000, 20000);
  }
  EXPECT_EQ(std::filesystem::file_size(path), 3 * 32u);
  EXPECT_EQ(ResumeJournal::load(path, 7, 1 << 20)->total(), 4096u + 10000u);
}

TEST(ResumeJournal, RangesBeyondTheSizeMeanItIsNotOurs) {
  TempDir dir;
  auto path = dir / "j";
  {
    ResumeJournal j(path, 1, 1000, true);
    j.append(900, 1001);
  }
  EXPECT_FALSE(ResumeJournal::load(path, 1, 1000));
}

TEST(PathSafety, RejectsHostileNames) {
  TempDir dir;
  auto expect_unsafe = [&](const std::string& p, const std::string& fragment) {
    try {
      check_safe_relative_path(dir.path(), p);
      ADD_FAILURE() << "accepted " << p;
    } catch (const UnsafePathError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_unsafe("/etc/passwd", "absolute");
  expect_unsafe("../outside", "\"..\"");
  expect_unsafe("a/../../b", "\"..\"");
  expect_unsafe("a/./b", "\".\"");
  expect_unsafe("a//b", "empty path segment");
  expect_unsafe("", "empty");
  expect_unsafe(std::string("a\0b", 3), "NUL");
  expect_unsafe("a\\b", "backslash");
  expect_unsafe(std::string(256, 'x'), "segment longer than 255");
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += std::string(120, 'd') + "/";
  expect_unsafe(deep + "f", "longer than 4096");
  EXPECT_NO_THROW(check_safe_relative_path(dir.path(), "config.json"));
  EXPECT_NO_THROW(check_safe_relative_path(dir.path(), "sub/dir/model-00001-of-00002.safetensors"));
  EXPECT_NO_THROW(check_safe_relative_path(dir.path(), std::string(255, 'x')));
}

TEST(PathSafety, SymlinksMayNotLeadOutsideTheRoot) {
  TempDir dir;
  TempDir outside;
  std::filesystem::create_directories(dir / "inside");
  std::filesystem::create_directory_symlink(outside.path(), dir / "escape");
  std::filesystem::create_directory_symlink(dir / "inside", dir / "alias");
  std::filesystem::create_symlink("/etc/hostname", dir / "file-link");
  EXPECT_THROW(check_safe_relative_path(dir.path(), "escape/x.bin"), UnsafePathError);
  EXPECT_THROW(check_safe_relative_path(dir.path(), "file-link"), UnsafePathError);
  EXPECT_NO_THROW(check_safe_relative_path(dir.path(), "alias/x.bin"));
  EXPECT_NO_THROW(check_safe_relative_path(dir.path(), "inside/new/x.bin"));
}

TEST(PathSafety, PlanLevelConflicts) {
  TempDir dir;
  auto plan_of = [](std::vector<std::string> paths) {
    DownloadPlan p;
    for (auto& s : paths) p.files.push_back(testsupport::planned(s, "http://127.0.0.1:1/x", "x"));
    return p;
  };
  EXPECT_THROW(validate_plan_paths(plan_of({"a", "a"}), dir.path()), UnsafePathError);
  EXPECT_THROW(validate_plan_paths(plan_of({"a", "a/b"}), dir.path()), UnsafePathError);
  EXPECT_THROW(validate_plan_paths(plan_of({"m.bin", "m.bin.partial"}), dir.path()), UnsafePathError);
  EXPECT_THROW(validate_plan_paths(plan_of({"m.bin", "m.bin.partial.journal"}), dir.path()), UnsafePathError);
  EXPECT_THROW(validate_plan_paths(plan_of({".modelagent/stamps/x.json"}), dir.path()), UnsafePathError);
  EXPECT_NO_THROW(validate_plan_paths(plan_of({"a/b", "a/c", "b"}), dir.path()));
}

TEST(PathSafety, PartialNamesStayWithinNameMax) {
  std::filesystem::path final_path = std::filesystem::path("/r/sub") / std::string(250, 'n');
  auto partial = partial_path_for(final_path);
  auto journal = journal_path_for(final_path);
  EXPECT_EQ(partial.parent_path(), final_path.parent_path());
  EXPECT_LE(journal.filename().string().size(), 255u);
  EXPECT_NE(partial_path_for(std::filesystem::path("/r") / (std::string(249, 'n') + "a")),
            partial_path_for(std::filesystem::path("/r") / (std::string(249, 'n') + "b")));
  EXPECT_EQ(partial_path_for("/r/model.bin"), std::filesystem::path("/r/model.bin.partial"));
  EXPECT_EQ(journal_path_for("/r/model.bin"), std::filesystem::path("/r/model.bin.partial.journal"));
}

TEST(DiskSpace, CountsOnlyWhatIsMissing) {
  TempDir dir;
  DownloadPlan plan;
  plan.files.push_back(testsupport::planned("done.bin", "http://x/1", std::string(1000, 'a')));
  plan.files.push_back(testsupport::planned("wrong-size.bin", "http://x/2", std::string(2000, 'b')));
  plan.files.push_back(testsupport::planned("new.bin", "http://x/3", std::string(3000, 'c')));
  PlannedFile unknown;
  unknown.relative_path = "unknown.bin";
  unknown.url = "http://x/4";
  plan.files.push_back(unknown);
  testsupport::write_file(dir / "done.bin", std::string(1000, 'z'));
  testsupport::write_file(dir / "wrong-size.bin", std::string(10, 'z'));
  EXPECT_EQ(bytes_still_needed(plan, dir.path()), 5000u);
  plan.files[2].size = 1ull << 63;
  plan.files.push_back(plan.files[2]);
  plan.files.back().relative_path = "other.bin";
  EXPECT_EQ(bytes_still_needed(plan, dir.path()), UINT64_MAX);  // saturates instead of wrapping
}

TEST(DiskSpace, RefusalNamesNeededAndAvailable) {
  TempDir dir;
  uint64_t available = available_disk_bytes(dir.path());
  EXPECT_GT(available, 0u);
  EXPECT_NO_THROW(ensure_disk_space(dir.path(), 1, 1));
  try {
    ensure_disk_space(dir.path(), 1ull << 50, 3);
    FAIL() << "no error";
  } catch (const DiskSpaceError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("1.0 PiB"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(1ull << 50)), std::string::npos) << what;
    EXPECT_NE(what.find("available"), std::string::npos) << what;
    EXPECT_NE(what.find(dir.path().string()), std::string::npos) << what;
  }
  // A root that does not exist yet is measured on its nearest existing ancestor.
  EXPECT_GT(available_disk_bytes(dir / "not/yet/created"), 0u);
}

TEST(PartialFile, WritesBesideTheFinalPathAndCommitsAtomically) {
  TempDir dir;
  auto final_path = dir / "sub/model.bin";
  {
    PartialFile p(final_path, 10, false);
    EXPECT_EQ(p.path(), dir / "sub/model.bin.partial");
    EXPECT_EQ(std::filesystem::file_size(p.path()), 10u);  // reserved up front
    p.write_at("56789", 5, 5);
    p.write_at("01234", 5, 0);
    char back[10];
    EXPECT_EQ(p.read_at(back, 10, 0), 10u);
    EXPECT_EQ(std::string(back, 10), "0123456789");
    EXPECT_FALSE(testsupport::exists(final_path));
    p.commit();
  }
  EXPECT_EQ(testsupport::read_file(final_path), "0123456789");
  EXPECT_FALSE(testsupport::exists(dir / "sub/model.bin.partial"));
  {
    PartialFile p(dir / "gone.bin", 4, false);
    p.write_at("abcd", 4, 0);
    p.discard();
  }
  EXPECT_FALSE(testsupport::exists(dir / "gone.bin.partial"));
  EXPECT_FALSE(testsupport::exists(dir / "gone.bin"));
}

TEST(PartialFile, AlignedWritesGoDirectOthersBufferedAndBothReadBack) {
  TempDir dir;
  constexpr size_t K = 4096;
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> aligned(static_cast<char*>(std::aligned_alloc(K, 4 * K)));
  std::string content = testsupport::make_content(6 * K + 123, 5);
  for (bool allow_direct : {true, false}) {
    auto final_path = dir / (allow_direct ? "d.bin" : "b.bin");
    PartialFile p(final_path, content.size(), false);
    if (!allow_direct) p.disable_direct();
    // The temporary directory is on a filesystem with O_DIRECT (ext4/xfs); tmpfs would fall back.
    std::memcpy(aligned.get(), content.data() + 2 * K, 4 * K);
    p.write_at(aligned.get(), 4 * K, 2 * K);                      // aligned: direct when allowed
    p.write_at(content.data() + 6 * K, 123, 6 * K);               // the unaligned tail: buffered
    p.write_at(content.data() + 1, 2 * K - 1, 1);                 // unaligned start: buffered
    p.write_at(content.data(), 1, 0);
    EXPECT_EQ(p.direct(), allow_direct);
    std::string back(content.size(), '\0');
    EXPECT_EQ(p.read_at(back.data(), back.size(), 0), content.size());  // unaligned read: buffered
    EXPECT_EQ(back, content);
    EXPECT_EQ(p.read_at(aligned.get(), 4 * K, 0), 4 * K);            // aligned read: direct when allowed
    EXPECT_EQ(std::string(aligned.get(), 4 * K), content.substr(0, 4 * K));
    p.commit();
    EXPECT_EQ(testsupport::read_file(final_path), content);
  }
}

TEST(StreamingVerifier, HashesOutOfOrderWritesInFileOrder) {
  TempDir dir;
  constexpr size_t MiB = 1 << 20;
  std::string content = testsupport::make_content(40 * MiB + 77, 9);
  Digest d;
  d.kind = DigestKind::Sha256;
  d.value = testsupport::sha256_hex(content);
  auto expected = normalize_digest(d, content.size(), "f.bin");
  PartialFile file(dir / "f.bin", content.size(), false);
  StreamingVerifier verifier(file, expected, content.size());
  auto pool = std::make_shared<BufferPool>(4 * MiB, 64);
  auto write = [&](uint64_t offset, size_t size) {
    auto b = pool->acquire(size);
    std::memcpy(b->data, content.data() + offset, size);
    b->size = size;
    b->offset = offset;
    file.write_at(b->data, b->size, b->offset);
    uint64_t newly = 0;
    bool run = verifier.record_written(b, &newly);
    EXPECT_EQ(newly, size);
    while (run && verifier.hash_pass(8 * MiB) == StreamingVerifier::Pass::Continue) {
    }
  };
  // A second range lands first (beyond the in-memory window), then the first range in order.
  for (uint64_t off = 36 * MiB; off < content.size(); off += 4 * MiB) {
    write(off, std::min<size_t>(4 * MiB, content.size() - off));
  }
  EXPECT_EQ(verifier.hashed(), 0u);  // nothing contiguous from byte 0 yet
  EXPECT_FALSE(verifier.too_far_ahead(36 * MiB, 40 * MiB));  // a range after a gap never waits
  for (uint64_t off = 0; off < 36 * MiB; off += 4 * MiB) {
    EXPECT_FALSE(verifier.too_far_ahead(0, off));
    write(off, 4 * MiB);
  }
  EXPECT_EQ(verifier.hashed(), content.size());  // read back what was written ahead, then caught up
  auto result = verifier.try_finish(content.size());
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->complete);
  EXPECT_TRUE(result->matches);
  EXPECT_EQ(result->hex, d.value);
}

TEST(StreamingVerifier, StreamFarAheadOfTheHashWaitsAndFinishWaitsForAPass) {
  TempDir dir;
  constexpr size_t MiB = 1 << 20;
  std::string content = testsupport::make_content(64 * MiB, 10);
  Digest d;
  d.kind = DigestKind::Sha256;
  d.value = testsupport::sha256_hex(content);
  PartialFile file(dir / "g.bin", content.size(), false);
  StreamingVerifier verifier(file, normalize_digest(d, content.size(), "g.bin"), content.size());
  auto pool = std::make_shared<BufferPool>(4 * MiB, 64);
  bool pass_due = false;
  for (uint64_t off = 0; off < 40 * MiB; off += 4 * MiB) {
    auto b = pool->acquire(4 * MiB);
    std::memcpy(b->data, content.data() + off, 4 * MiB);
    b->size = 4 * MiB;
    b->offset = off;
    file.write_at(b->data, b->size, off);
    uint64_t newly = 0;
    pass_due = verifier.record_written(b, &newly) || pass_due;  // nobody hashes yet
  }
  EXPECT_TRUE(pass_due);
  EXPECT_TRUE(verifier.too_far_ahead(0, 40 * MiB));  // 40 MiB received, nothing hashed: wait
  EXPECT_FALSE(verifier.try_finish(40 * MiB));       // a pass is due: finishing must not block
  EXPECT_EQ(verifier.hash_pass(UINT64_MAX), StreamingVerifier::Pass::FinishDue);
  EXPECT_FALSE(verifier.too_far_ahead(0, 40 * MiB));
  EXPECT_EQ(verifier.hashed(), 40 * MiB);
}

TEST(VerifiedStamp, ValidOnlyWhileTheFileIsUnchanged) {
  TempDir dir;
  testsupport::write_file(dir / "w/model.bin", "hello");
  Digest d;
  d.kind = DigestKind::Sha256;
  d.value = testsupport::sha256_hex("hello");
  auto expected = normalize_digest(d, 5, "w/model.bin");
  EXPECT_FALSE(stamp_is_valid(dir.path(), "w/model.bin", expected));
  ASSERT_TRUE(write_stamp(dir.path(), "w/model.bin", expected));
  EXPECT_TRUE(stamp_is_valid(dir.path(), "w/model.bin", expected));
  EXPECT_EQ(stamp_path_for(dir.path(), "w/model.bin").parent_path(), dir / ".modelagent/stamps");
  // Another expected digest (the plan changed) does not trust the stamp.
  Digest other = d;
  other.value = testsupport::sha256_hex("other");
  EXPECT_FALSE(stamp_is_valid(dir.path(), "w/model.bin", normalize_digest(other, 5, "w/model.bin")));
  // Rewriting the file, even with the same size and restored mtime, changes its ctime (once the file
  // system's clock has moved past the stamped ctime; within the same tick it could not).
  auto mtime = std::filesystem::last_write_time(dir / "w/model.bin");
  testsupport::wait_for_later_ctime(dir / "w/model.bin");
  testsupport::write_file(dir / "w/model.bin", "jello");
  std::filesystem::last_write_time(dir / "w/model.bin", mtime);
  EXPECT_FALSE(stamp_is_valid(dir.path(), "w/model.bin", expected));
  // A garbage stamp is simply not valid.
  testsupport::write_file(stamp_path_for(dir.path(), "w/model.bin"), "{not json");
  EXPECT_FALSE(stamp_is_valid(dir.path(), "w/model.bin", expected));
  remove_stamp(dir.path(), "w/model.bin");
  EXPECT_FALSE(testsupport::exists(stamp_path_for(dir.path(), "w/model.bin")));
}
