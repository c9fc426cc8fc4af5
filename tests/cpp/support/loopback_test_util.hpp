#pragma once
// Helpers shared by the download engine's tests: file contents and digests (and TempDir, from temp_dir.hpp).

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "modelagent/download_plan.hpp"
#include "temp_dir.hpp"

namespace testsupport {

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::filesystem::path& p, const std::string& content) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
}

inline std::string evp_hex(const EVP_MD* md, const std::string& prefix, const std::string& data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, md, nullptr);
  EVP_DigestUpdate(ctx, prefix.data(), prefix.size());
  EVP_DigestUpdate(ctx, data.data(), data.size());
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, out, &n);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < n; ++i) {
    s += hex[out[i] >> 4];
    s += hex[out[i] & 15];
  }
  return s;
}

inline std::string sha256_hex(const std::string& data) { return evp_hex(EVP_sha256(), "", data); }
inline std::string git_blob_sha1_hex(const std::string& data) {
  return evp_hex(EVP_sha1(), std::string("blob ") + std::to_string(data.size()) + std::string(1, '\0'), data);
}
inline std::string md5_hex(const std::string& data) { return evp_hex(EVP_md5(), "", data); }

inline modelagent::PlannedFile planned(const std::string& path, const std::string& url, const std::string& content,
                                       modelagent::DigestKind kind = modelagent::DigestKind::Sha256) {
  modelagent::PlannedFile f;
  f.relative_path = path;
  f.url = url;
  f.size = content.size();
  f.digest.kind = kind;
  if (kind == modelagent::DigestKind::Sha256) f.digest.value = sha256_hex(content);
  if (kind == modelagent::DigestKind::GitBlobSha1) f.digest.value = git_blob_sha1_hex(content);
  if (kind == modelagent::DigestKind::Md5) f.digest.value = md5_hex(content);
  return f;
}

// Options that keep retries quick in tests.
inline modelagent::DownloadOptions fast_options() {
  modelagent::DownloadOptions o;
  o.retry_base_seconds = 0.01;
  o.retry_cap_seconds = 0.05;
  o.connect_timeout_seconds = 5;
  o.low_speed_timeout_seconds = 20;
  return o;
}

inline bool exists(const std::filesystem::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

// Returns once a change made now to a file beside `path` gets a later ctime than `path` has. File
// systems take timestamps from a coarse clock (a few ms per tick on kernels without fine-grained
// timestamps), so a file rewritten right after it was stamped could keep the ctime it was stamped with,
// and a test expecting the change to be noticed would depend on how fast it ran. Bounded at 10 s.
inline void wait_for_later_ctime(const std::filesystem::path& path) {
  auto ctime_of = [](const std::filesystem::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + p.string());
    return std::make_pair(static_cast<int64_t>(st.st_ctim.tv_sec), static_cast<int64_t>(st.st_ctim.tv_nsec));
  };
  const auto stamped = ctime_of(path);
  const auto probe = path.parent_path() / ".ctime-probe";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    write_file(probe, "probe");
    bool later = ctime_of(probe) > stamped;
    if (later || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::filesystem::remove(probe);
}

}  // namespace testsupport
