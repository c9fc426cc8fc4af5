#pragma once
// The contract between sources (Hugging Face, OCI, S3, Python plug-ins) and the download engine:
// a source turns a URI into a DownloadPlan; the engine fetches, verifies and places the files.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "modelagent/request_signer.hpp"

namespace modelagent {

enum class DigestKind {
  None,          // nothing to verify against except the size (must be reported, never silent)
  Sha256,        // hex; Hugging Face LFS files (X-Linked-Etag / lfs.oid)
  GitBlobSha1,   // hex; SHA-1 of "blob <size>\0" + content (Hugging Face small files)
  Md5,           // base64; OCI Content-MD5, S3 single-part ETag (hex is accepted too)
  Md5Multipart,  // base64 or hex of MD5(concat(part MD5s)) plus part count (OCI opc-multipart-md5, S3 "-N" ETags)
};

struct Digest {
  DigestKind kind = DigestKind::None;
  std::string value;
  uint32_t parts = 0;          // Md5Multipart only
  uint64_t part_size = 0;      // Md5Multipart only; 0 = infer from size and parts
  std::vector<uint64_t> part_lengths;  // Md5Multipart only: every part's size in order, for parts that differ
};

inline constexpr uint64_t kUnknownSize = std::numeric_limits<uint64_t>::max();

struct PlannedFile {
  std::string relative_path;  // '/'-separated destination under the root; validated by the engine
  std::string url;            // may redirect; Authorization is dropped when the host changes
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers
  std::shared_ptr<const RequestSigner> signer;  // signs every request to the URL's origin; may be null
  uint64_t size = kUnknownSize;
  Digest digest;
};

struct DownloadPlan {
  std::vector<PlannedFile> files;
};

struct DownloadOptions {
  int max_connections = 16;            // in flight across the whole plan
  int connections_per_file = 8;        // ranges in flight for one large file
  uint64_t chunk_size = 64ull << 20;   // byte-range size for large files
  uint64_t bandwidth_limit = 0;        // bytes/s across the plan; 0 = unlimited
  int max_attempts = 8;                // per range, transient failures only
  double retry_base_seconds = 0.5;     // capped exponential backoff with jitter
  double retry_cap_seconds = 30.0;
  double total_timeout_seconds = 0;    // whole plan; 0 = none
  double connect_timeout_seconds = 15;
  double low_speed_timeout_seconds = 60;  // abort a transfer stalled under 1 KiB/s for this long
  bool verify_tls = true;
  std::string ca_bundle;               // empty = system default
  std::string user_agent;              // empty = "modelagent/<version>"
};

// Counters the engine updates while running; safe to read from any thread without locks.
struct DownloadProgress {
  std::atomic<uint64_t> bytes_total{0};
  std::atomic<uint64_t> bytes_done{0};      // verified or written bytes, including resumed ones
  std::atomic<uint64_t> bytes_fetched{0};   // bytes actually received over the network
  std::atomic<uint32_t> files_total{0};
  std::atomic<uint32_t> files_done{0};
  std::atomic<double> bytes_per_second{0};  // recent transfer rate
  std::atomic<uint32_t> retries{0};
  std::atomic<uint32_t> rate_limited{0};    // 429 responses seen
  std::atomic<double> rate_limit_wait_seconds{0};
};

// Set from any thread; the engine stops within a second and leaves resumable partial files.
struct CancelToken {
  std::atomic<bool> cancelled{false};
  void cancel() { cancelled.store(true); }
  bool is_cancelled() const { return cancelled.load(); }
};

struct FileResult {
  std::string relative_path;
  uint64_t size = 0;
  bool downloaded = false;   // false = already present and verified (stamp or hash)
  bool verified = false;     // content hash checked against the plan's digest
  std::string digest_hex;    // what was computed (hex), empty if no digest was asked for
  std::string note;          // e.g. why a file could not be verified
};

struct DownloadReport {
  std::vector<FileResult> files;
  uint64_t bytes_fetched = 0;
  double seconds = 0;
};

}  // namespace modelagent
