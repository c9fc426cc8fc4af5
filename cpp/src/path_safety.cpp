// Rejects destination names that could write outside the root, before anything is written.

#include "modelagent/ascii_text.hpp"
#include "modelagent/path_safety.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "modelagent/download_engine.hpp"
#include "modelagent/errors.hpp"

namespace modelagent {

namespace {

constexpr size_t kMaxSegment = 255;
constexpr size_t kMaxPath = 4096;
constexpr const char* kPartialSuffix = ".partial";
constexpr const char* kJournalSuffix = ".journal";

std::string quoted(const std::string& s) { return "\"" + printable(s, 200) + "\""; }

[[noreturn]] void unsafe(const std::string& relative_path, const std::string& why) {
  throw UnsafePathError("unsafe destination path " + quoted(relative_path) + ": " + why);
}

bool is_within(const std::filesystem::path& base, const std::filesystem::path& p) {
  auto b = base.begin(), e = base.end();
  auto i = p.begin(), ie = p.end();
  for (; b != e; ++b, ++i) {
    if (b->empty()) continue;  // trailing separator of base
    if (i == ie || *i != *b) return false;
  }
  return true;
}

std::vector<std::string_view> split_segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    out.push_back(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

void check_safe_relative_name(const std::string& relative_path) {
  if (relative_path.empty()) unsafe(relative_path, "empty");
  if (relative_path.find('\0') != std::string::npos) unsafe(relative_path, "contains a NUL byte");
  if (relative_path.find('\\') != std::string::npos) unsafe(relative_path, "contains a backslash");
  if (relative_path.front() == '/') unsafe(relative_path, "absolute paths are not allowed");
  if (relative_path.size() > kMaxPath) {
    unsafe(relative_path, "longer than " + std::to_string(kMaxPath) + " bytes");
  }
  for (std::string_view seg : split_segments(relative_path)) {
    if (seg.empty()) unsafe(relative_path, "empty path segment");
    if (seg == ".") unsafe(relative_path, "\".\" segment");
    if (seg == "..") unsafe(relative_path, "\"..\" segment");
    if (seg.size() > kMaxSegment) {
      unsafe(relative_path, "segment longer than " + std::to_string(kMaxSegment) + " bytes");
    }
  }
}

void check_safe_relative_path(const std::filesystem::path& root, const std::string& relative_path) {
  check_safe_relative_name(relative_path);
  // Existing symlinks along the way must resolve inside the root.
  std::error_code ec;
  std::filesystem::path canonical_root = std::filesystem::weakly_canonical(root, ec);
  if (ec) throw DownloadError("cannot resolve destination root " + root.string() + ": " + ec.message());
  std::filesystem::path current = canonical_root;
  for (std::string_view seg : split_segments(relative_path)) {
    current /= std::string(seg);
    struct stat st {};
    if (::lstat(current.c_str(), &st) != 0) {
      if (errno == ENOENT) return;  // nothing further exists, so nothing further can be a symlink
      throw DownloadError("cannot inspect " + current.string() + ": " + std::strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) {
      std::filesystem::path resolved = std::filesystem::weakly_canonical(current, ec);
      if (ec || !is_within(canonical_root, resolved)) {
        unsafe(relative_path, "symlink " + current.string() + " leads outside " + canonical_root.string());
      }
      current = resolved;
    }
  }
}

std::filesystem::path partial_path_for(const std::filesystem::path& final_path) {
  std::string name = final_path.filename().string();
  const size_t suffixes = std::strlen(kPartialSuffix) + std::strlen(kJournalSuffix);
  if (name.size() + suffixes > kMaxSegment) {
    char hash[17];
    std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(name)));
    name = name.substr(0, kMaxSegment - suffixes - 17) + "." + hash;
  }
  return final_path.parent_path() / (name + kPartialSuffix);
}

std::filesystem::path journal_path_for(const std::filesystem::path& final_path) {
  return partial_path_for(final_path).string() + kJournalSuffix;
}

void validate_plan_paths(const DownloadPlan& plan, const std::filesystem::path& root) {
  std::unordered_set<std::string> files;
  std::set<std::string> directories;
  for (const auto& f : plan.files) {
    check_safe_relative_path(root, f.relative_path);
    if (f.relative_path == kStateDirName || f.relative_path.rfind(std::string(kStateDirName) + "/", 0) == 0) {
      unsafe(f.relative_path, std::string(kStateDirName) + "/ is reserved for the agent's own state");
    }
    if (!files.insert(f.relative_path).second) unsafe(f.relative_path, "listed twice in the plan");
    for (size_t slash = f.relative_path.find('/'); slash != std::string::npos;
         slash = f.relative_path.find('/', slash + 1)) {
      directories.insert(f.relative_path.substr(0, slash));
    }
  }
  for (const auto& f : plan.files) {
    if (directories.count(f.relative_path)) {
      unsafe(f.relative_path, "is both a file and a directory of other files in the plan");
    }
    std::filesystem::path final_path(f.relative_path);
    for (const auto& own : {partial_path_for(final_path), journal_path_for(final_path)}) {
      if (files.count(own.string())) {
        unsafe(own.string(), "collides with the download's temporary file for " + quoted(f.relative_path));
      }
    }
  }
}

}  // namespace modelagent
