#pragma once
// The verifier: streaming content digests through OpenSSL EVP (SHA-256, git-blob SHA-1, MD5, multipart
// MD5), encoding helpers, and comparison of a computed digest against a plan's expected value.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modelagent/download_plan.hpp"

namespace modelagent {

std::string to_hex(const unsigned char* data, size_t size);
// Lower-case hex of a hex or base64 text; nullopt when it is neither. expected_bytes > 0 also
// requires the decoded value to have exactly that many bytes.
std::optional<std::string> hex_from_hex_or_base64(std::string_view text, size_t expected_bytes);
std::string base64_encode(const unsigned char* data, size_t size);
// Strict RFC 4648 base64 (padding required); nullopt on malformed input.
std::optional<std::vector<unsigned char>> base64_decode(std::string_view text);

// Name used in messages and the Python API: "none", "sha256", "git-blob-sha1", "md5", "md5-multipart".
const char* digest_kind_name(DigestKind kind);
// Inverse of digest_kind_name (also accepts "git-sha1", "sha1", "md5multipart"); nullopt if unknown.
std::optional<DigestKind> parse_digest_kind(std::string_view name);

// The expected digest of a planned file in canonical form: lower-case hex, and for multipart MD5 the
// part count and either the candidate part sizes to try (an S3/OCI ETag does not state its part size) or,
// for parts that differ in size, every part's length (then part_sizes is empty).
struct ExpectedDigest {
  DigestKind kind = DigestKind::None;
  std::string hex;
  uint32_t parts = 0;
  std::vector<uint64_t> part_sizes;
  std::vector<uint64_t> part_lengths;
};

// Validates and normalises a plan digest for a file of `size` bytes (kUnknownSize allowed except for
// multipart MD5). Throws DownloadError naming `what` (file or URL) when the value is malformed.
ExpectedDigest normalize_digest(const Digest& digest, uint64_t size, const std::string& what);

// Whether `parts` parts of `part_size` bytes (the last one shorter, not empty) make `size` bytes.
bool part_size_fits(uint64_t part_size, uint64_t size, uint32_t parts);

// A multipart digest whose part size had to be inferred has several candidate part sizes (most likely first).
// likeliest_candidate() keeps only the first (what a download hashes while streaming); remaining_candidates()
// keeps the others (empty part_sizes when there are none: nothing left to try). Exact part lengths are one
// candidate: likeliest_candidate() keeps them, remaining_candidates() has none.
ExpectedDigest likeliest_candidate(const ExpectedDigest& expected);
ExpectedDigest remaining_candidates(const ExpectedDigest& expected);

// Streaming hash of one file's content in order. Git-blob SHA-1 needs the size up front (it hashes
// "blob <size>\0" first); with an unknown size call set_size() before the first update.
class ContentHasher {
 public:
  ContentHasher(const ExpectedDigest& expected, uint64_t size);
  ~ContentHasher();
  ContentHasher(const ContentHasher&) = delete;
  ContentHasher& operator=(const ContentHasher&) = delete;

  void set_size(uint64_t size);
  void update(const void* data, size_t size);
  uint64_t bytes_hashed() const { return bytes_; }
  // Finishes and returns the hex digest (multipart: "<hex>-<parts>" of the matching candidate or the
  // first one). Returns "" for DigestKind::None. May be called once.
  std::string finish();
  // True when finish()'s result equals the expected digest (always false for DigestKind::None).
  bool matches() const { return matches_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t bytes_ = 0;
  bool matches_ = false;
};

// Reads a file once and returns its digest in the form ContentHasher::finish() uses, together with
// whether it matches. Throws DownloadError naming the path on I/O errors.
struct FileDigestResult {
  uint64_t size = 0;
  std::string hex;
  bool matches = false;
};
FileDigestResult hash_file(const std::filesystem::path& path, const ExpectedDigest& expected,
                           const CancelToken* cancel = nullptr);

// Process-wide count of bytes hashed by hash_file() (re-reads of files on disk, not streaming hashes
// during downloads). Lets callers and tests observe that a verified-stamp avoided a re-hash.
uint64_t bytes_rehashed_from_disk();

}  // namespace modelagent
