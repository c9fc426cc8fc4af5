#include <algorithm>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "modelagent/digest.hpp"
#include "modelagent/errors.hpp"

using namespace modelagent;

namespace {

std::string pattern(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>(i % 251);
  return s;
}

std::string hash_all(const ExpectedDigest& e, const std::string& data, size_t step, bool* matches = nullptr) {
  ContentHasher h(e, data.size());
  for (size_t i = 0; i < data.size(); i += step) h.update(data.data() + i, std::min(step, data.size() - i));
  std::string out = h.finish();
  if (matches) *matches = h.matches();
  return out;
}

Digest digest(DigestKind kind, std::string value, uint32_t parts = 0, uint64_t part_size = 0) {
  Digest d;
  d.kind = kind;
  d.value = std::move(value);
  d.parts = parts;
  d.part_size = part_size;
  return d;
}

}  // namespace

TEST(Digest, HexAndBase64RoundTrip) {
  const unsigned char bytes[] = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(to_hex(bytes, 4), "0001abff");
  EXPECT_EQ(base64_encode(bytes, 4), "AAGr/w==");
  auto back = base64_decode("AAGr/w==");
  ASSERT_TRUE(back);
  EXPECT_EQ(to_hex(back->data(), back->size()), "0001abff");
  EXPECT_FALSE(base64_decode("AAGr/w="));   // wrong length
  EXPECT_FALSE(base64_decode("AA=r/w=="));  // padding in the middle
  EXPECT_FALSE(base64_decode("AAG*/w=="));  // not in the alphabet
}

TEST(Digest, HexFromHexOrBase64) {
  EXPECT_EQ(*hex_from_hex_or_base64("900150983CD24FB0D6963F7D28E17F72", 16), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(*hex_from_hex_or_base64("kAFQmDzST7DWlj99KOF/cg==", 16), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(*hex_from_hex_or_base64("W/\"900150983cd24fb0d6963f7d28e17f72\"", 16), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_FALSE(hex_from_hex_or_base64("9001", 16));
  EXPECT_FALSE(hex_from_hex_or_base64("not a digest", 16));
}

TEST(Digest, KindNamesRoundTrip) {
  for (auto k : {DigestKind::None, DigestKind::Sha256, DigestKind::GitBlobSha1, DigestKind::Md5, DigestKind::Md5Multipart}) {
    EXPECT_EQ(parse_digest_kind(digest_kind_name(k)), k);
  }
  EXPECT_EQ(parse_digest_kind("SHA256"), DigestKind::Sha256);
  EXPECT_EQ(parse_digest_kind("git_sha1"), DigestKind::GitBlobSha1);
  EXPECT_FALSE(parse_digest_kind("crc32"));
}

TEST(Digest, Sha256StreamingMatchesKnownVector) {
  auto e = normalize_digest(digest(DigestKind::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), 3, "abc");
  bool matches = false;
  EXPECT_EQ(hash_all(e, "abc", 1, &matches), e.hex);
  EXPECT_TRUE(matches);
  auto big = pattern(10 * 1024 * 1024 + 5);
  auto e2 = normalize_digest(digest(DigestKind::Sha256, "B3584865B8524960D80641E44554A698E299B609021DDF2AE64C30A8BA514F67"),
                             big.size(), "big");
  EXPECT_EQ(hash_all(e2, big, 777777, &matches), e2.hex);
  EXPECT_TRUE(matches);
}

TEST(Digest, GitBlobSha1HashesTheHeaderFirst) {
  auto e = normalize_digest(digest(DigestKind::GitBlobSha1, "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"), 12, "hello");
  bool matches = false;
  EXPECT_EQ(hash_all(e, "hello world\n", 5, &matches), "3b18e512dba79e4c8300dd08aeb37f8e728b8dad");
  EXPECT_TRUE(matches);
  auto empty = normalize_digest(digest(DigestKind::GitBlobSha1, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"), 0, "empty");
  EXPECT_EQ(hash_all(empty, "", 1, &matches), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
  EXPECT_TRUE(matches);
}

TEST(Digest, Md5AcceptsBase64AndHex) {
  bool matches = false;
  auto b64 = normalize_digest(digest(DigestKind::Md5, "kAFQmDzST7DWlj99KOF/cg=="), 3, "abc");
  EXPECT_EQ(hash_all(b64, "abc", 2, &matches), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_TRUE(matches);
  auto hex = normalize_digest(digest(DigestKind::Md5, "900150983cd24fb0d6963f7d28e17f72"), 3, "abc");
  hash_all(hex, "abd", 2, &matches);
  EXPECT_FALSE(matches);
}

TEST(Digest, MultipartMd5InfersThePartSize) {
  auto data = pattern(10 * 1024 * 1024 + 5);
  // Uploaded in 5 MiB parts -> 3 parts; the part size is not given and must be found among candidates.
  auto e = normalize_digest(digest(DigestKind::Md5Multipart, "aJDsvolfKgmx73QiwgQbWQ==-3"), data.size(), "parts");
  EXPECT_EQ(e.parts, 3u);
  EXPECT_GT(e.part_sizes.size(), 1u);
  bool matches = false;
  EXPECT_EQ(hash_all(e, data, 1 << 20, &matches), "6890ecbe895f2a09b1ef7422c2041b59-3");
  EXPECT_TRUE(matches);
  // The S3 ETag form with an explicit part size.
  auto s3 = normalize_digest(digest(DigestKind::Md5Multipart, "\"584c35b8121455e9713e3a46a7f229f4-2\"", 0, 8 << 20),
                             data.size(), "s3");
  EXPECT_EQ(hash_all(s3, data, 3 << 20, &matches), "584c35b8121455e9713e3a46a7f229f4-2");
  EXPECT_TRUE(matches);
  // A single part is MD5 of the part's MD5.
  auto one = normalize_digest(digest(DigestKind::Md5Multipart, "af5da9f45af7a300e3aded972f8ff687", 1), 3, "one");
  EXPECT_EQ(hash_all(one, "abc", 1, &matches), "af5da9f45af7a300e3aded972f8ff687-1");
  EXPECT_TRUE(matches);
}

// The composite MD5 ("<md5 of the part MD5s>-<parts>") of `data` cut at `lengths`, computed independently.
std::string composite_md5(const std::string& data, const std::vector<uint64_t>& lengths) {
  std::string part_digests;
  uint64_t offset = 0;
  for (uint64_t length : lengths) {
    ExpectedDigest md5;
    md5.kind = DigestKind::Md5;
    ContentHasher h(md5, length);
    h.update(data.data() + offset, length);
    std::string hex = h.finish();
    for (size_t i = 0; i < hex.size(); i += 2) part_digests.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    offset += length;
  }
  ExpectedDigest md5;
  md5.kind = DigestKind::Md5;
  ContentHasher h(md5, part_digests.size());
  h.update(part_digests.data(), part_digests.size());
  return h.finish() + "-" + std::to_string(lengths.size());
}

TEST(Digest, MultipartMd5WithPartsOfDifferentLengths) {
  auto data = pattern(3 * 1024 * 1024 + 700);
  std::vector<uint64_t> lengths = {1024 * 1024, 2 * 1024 * 1024 - 300, 1000};
  std::string etag = composite_md5(data, lengths);
  Digest d = digest(DigestKind::Md5Multipart, etag);
  d.part_lengths = lengths;
  auto e = normalize_digest(d, data.size(), "uneven");
  EXPECT_EQ(e.parts, 3u);
  EXPECT_EQ(e.part_lengths, lengths);
  EXPECT_TRUE(e.part_sizes.empty());
  // Any write size, including ones that straddle part boundaries.
  for (size_t step : {size_t{1} << 20, size_t{4096}, size_t{333333}, data.size()}) {
    bool matches = false;
    EXPECT_EQ(hash_all(e, data, step, &matches), etag) << step;
    EXPECT_TRUE(matches) << step;
  }
  // The exact layout is the only candidate: nothing else is tried after a mismatch.
  EXPECT_EQ(likeliest_candidate(e).part_lengths, lengths);
  EXPECT_TRUE(remaining_candidates(e).part_lengths.empty());
  EXPECT_TRUE(remaining_candidates(e).part_sizes.empty());
  // One changed byte, or the same bytes cut elsewhere, do not match.
  std::string changed = data;
  changed[2 * 1024 * 1024] ^= 1;
  bool matches = true;
  hash_all(e, changed, 1 << 20, &matches);
  EXPECT_FALSE(matches);
  Digest other = d;
  other.part_lengths = {2 * 1024 * 1024 - 300, 1024 * 1024, 1000};
  hash_all(normalize_digest(other, data.size(), "recut"), data, 1 << 20, &matches);
  EXPECT_FALSE(matches);
  // A longer file does not match either (its extra bytes form one more part).
  hash_all(e, data + "x", 1 << 20, &matches);
  EXPECT_FALSE(matches);
}

TEST(Digest, PartLengthsMustDescribeTheFile) {
  auto expect_error = [](std::vector<uint64_t> lengths, uint64_t part_size, uint64_t size, const std::string& fragment) {
    Digest d = digest(DigestKind::Md5Multipart, "900150983cd24fb0d6963f7d28e17f72-3", 0, part_size);
    d.part_lengths = std::move(lengths);
    try {
      normalize_digest(d, size, "w.bin");
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const DownloadError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("w.bin"), std::string::npos) << what;
      EXPECT_NE(what.find(fragment), std::string::npos) << what;
    }
  };
  expect_error({5, 5}, 0, 10, "2 part lengths for 3 parts");
  expect_error({5, 0, 5}, 0, 10, "part 2 has length 0");
  expect_error({5, 4, 5}, 0, 15, "add up to 14 bytes, not the file's 15");
  expect_error({5, 5, 5}, 5, 15, "part_size or part_lengths, not both");
}

TEST(Digest, MultipartCandidatesIncludeCommonUploaderDefaults) {
  auto has = [](const ExpectedDigest& e, uint64_t part) {
    return std::find(e.part_sizes.begin(), e.part_sizes.end(), part) != e.part_sizes.end();
  };
  const uint64_t mib = 1 << 20;
  // s3cmd: 15 MiB parts; 31 MiB in 3 parts (the even split would be a wrong 11 MiB).
  EXPECT_TRUE(has(normalize_digest(digest(DigestKind::Md5Multipart, "aJDsvolfKgmx73QiwgQbWQ==-3"), 31 * mib, "s3cmd"),
                  15 * mib));
  // boto3 / AWS CLI: 8 MiB parts.
  EXPECT_TRUE(has(normalize_digest(digest(DigestKind::Md5Multipart, "aJDsvolfKgmx73QiwgQbWQ==-3"), 20 * mib, "boto3"),
                  8 * mib));
  // OCI CLI: 128 MiB parts.
  EXPECT_TRUE(has(normalize_digest(digest(DigestKind::Md5Multipart, "aJDsvolfKgmx73QiwgQbWQ==-2"), 200 * mib, "oci"),
                  128 * mib));
}

TEST(Digest, MalformedExpectedDigestsNameTheFile) {
  auto expect_error = [](const Digest& d, uint64_t size, const std::string& fragment) {
    try {
      normalize_digest(d, size, "weights/model.safetensors");
      ADD_FAILURE() << "no error for " << d.value;
    } catch (const DownloadError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("weights/model.safetensors"), std::string::npos) << what;
      EXPECT_NE(what.find(fragment), std::string::npos) << what;
    }
  };
  expect_error(digest(DigestKind::Sha256, "abc"), 10, "64 hex digits");
  expect_error(digest(DigestKind::GitBlobSha1, "zz"), 10, "40 hex digits");
  expect_error(digest(DigestKind::Md5Multipart, "900150983cd24fb0d6963f7d28e17f72"), 10, "part count");
  expect_error(digest(DigestKind::Md5Multipart, "900150983cd24fb0d6963f7d28e17f72-x"), 10, "not a number");
  expect_error(digest(DigestKind::Md5Multipart, "900150983cd24fb0d6963f7d28e17f72-2", 3), 10, "disagrees");
  expect_error(digest(DigestKind::Md5Multipart, "900150983cd24fb0d6963f7d28e17f72-2", 0, 100), 1000, "cannot give");
}

TEST(Digest, HashFileReadsOnceAndCounts) {
  auto dir = std::filesystem::temp_directory_path() / ("digest_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / "f.bin";
  auto data = pattern(3 * 1024 * 1024 + 1);
  std::ofstream(path, std::ios::binary) << data;
  auto e = normalize_digest(digest(DigestKind::Sha256, std::string(64, '0')), data.size(), "f.bin");
  uint64_t before = bytes_rehashed_from_disk();
  auto r = hash_file(path, e);
  EXPECT_EQ(bytes_rehashed_from_disk() - before, data.size());
  EXPECT_EQ(r.size, data.size());
  EXPECT_FALSE(r.matches);
  EXPECT_EQ(r.hex.size(), 64u);
  EXPECT_THROW(hash_file(dir / "missing", e), DownloadError);
  std::filesystem::remove_all(dir);
}
