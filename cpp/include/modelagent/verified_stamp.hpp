#pragma once
// Verified-stamps: after a file was hashed and matched its digest, the engine records the file's size,
// mtime, ctime and inode together with the digest in "<root>/.modelagent/stamps/<hash of path>.json".
// A later run trusts the file without re-hashing while all of these are unchanged and the plan asks
// for the same digest. Any write, truncate, replace, chmod or touch changes ctime and voids the stamp.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "modelagent/digest.hpp"

namespace modelagent {

struct FileStamp {
  std::string relative_path;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t inode = 0;
  std::string digest_kind;  // digest_kind_name()
  std::string digest_hex;   // canonical expected hex (multipart: with "-<parts>")
};

std::filesystem::path stamp_path_for(const std::filesystem::path& root, const std::string& relative_path);

// Current size/mtime/ctime/inode of a regular file (not following a final symlink); nullopt if absent.
std::optional<FileStamp> current_file_facts(const std::filesystem::path& path);

// Writes the stamp for a verified file (atomic replace). Returns false, without throwing, when the
// stamp cannot be written: stamps only save work, they are never needed for correctness.
bool write_stamp(const std::filesystem::path& root, const std::string& relative_path, const ExpectedDigest& digest);

// True when a stamp exists for the file, matches its current facts, and records `digest`.
bool stamp_is_valid(const std::filesystem::path& root, const std::string& relative_path,
                    const ExpectedDigest& digest);

void remove_stamp(const std::filesystem::path& root, const std::string& relative_path);

// The digest as recorded in stamps ("<hex>" or "<hex>-<parts>").
std::string stamp_digest_text(const ExpectedDigest& digest);

}  // namespace modelagent
