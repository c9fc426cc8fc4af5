// Verified-stamps: JSON sidecars under <root>/.modelagent/stamps/ that let restarts skip re-hashing.

#include "modelagent/verified_stamp.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

#include "modelagent/path_safety.hpp"

namespace modelagent {

namespace {

std::string sha256_hex(const std::string& text) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), out, &n, EVP_sha256(), nullptr);
  return to_hex(out, n);
}

}  // namespace

std::string stamp_digest_text(const ExpectedDigest& digest) {
  if (digest.kind == DigestKind::Md5Multipart) return digest.hex + "-" + std::to_string(digest.parts);
  return digest.hex;
}

std::filesystem::path stamp_path_for(const std::filesystem::path& root, const std::string& relative_path) {
  // Hashed names keep the directory flat and every name short whatever the file's path.
  return root / kStateDirName / "stamps" / (sha256_hex(relative_path).substr(0, 40) + ".json");
}

std::optional<FileStamp> current_file_facts(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  FileStamp f;
  f.size = static_cast<uint64_t>(st.st_size);
  f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  f.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  f.inode = static_cast<uint64_t>(st.st_ino);
  return f;
}

bool write_stamp(const std::filesystem::path& root, const std::string& relative_path, const ExpectedDigest& digest) {
  if (digest.kind == DigestKind::None) return false;
  auto facts = current_file_facts(root / relative_path);
  if (!facts) return false;
  nlohmann::json j = {{"version", 1},
                      {"path", relative_path},
                      {"size", facts->size},
                      {"mtime_ns", facts->mtime_ns},
                      {"ctime_ns", facts->ctime_ns},
                      {"inode", facts->inode},
                      {"digest_kind", digest_kind_name(digest.kind)},
                      {"digest", stamp_digest_text(digest)}};
  std::filesystem::path target = stamp_path_for(root, relative_path);
  std::error_code ec;
  std::filesystem::create_directories(target.parent_path(), ec);
  if (ec) return false;
  std::filesystem::path tmp = target;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return false;
    out << j.dump();
    if (!out.good()) return false;
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

bool stamp_is_valid(const std::filesystem::path& root, const std::string& relative_path,
                    const ExpectedDigest& digest) {
  if (digest.kind == DigestKind::None) return false;
  std::ifstream in(stamp_path_for(root, relative_path), std::ios::binary);
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  auto j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  auto facts = current_file_facts(root / relative_path);
  if (!facts) return false;
  try {
    return j.at("version").get<int>() == 1 && j.at("path").get<std::string>() == relative_path &&
           j.at("size").get<uint64_t>() == facts->size && j.at("mtime_ns").get<int64_t>() == facts->mtime_ns &&
           j.at("ctime_ns").get<int64_t>() == facts->ctime_ns && j.at("inode").get<uint64_t>() == facts->inode &&
           j.at("digest_kind").get<std::string>() == digest_kind_name(digest.kind) &&
           j.at("digest").get<std::string>() == stamp_digest_text(digest);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

void remove_stamp(const std::filesystem::path& root, const std::string& relative_path) {
  ::unlink(stamp_path_for(root, relative_path).c_str());
}

}  // namespace modelagent
