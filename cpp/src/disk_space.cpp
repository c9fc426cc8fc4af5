// Whole-plan free-space check (statvfs), counting what is already on disk.

#include "modelagent/disk_space.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <algorithm>

#include "modelagent/errors.hpp"
#include "modelagent/path_safety.hpp"

namespace modelagent {

std::string format_bytes(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 6) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", v, units[unit]);
  return buf;
}

uint64_t available_disk_bytes(const std::filesystem::path& path) {
  std::filesystem::path probe = path;
  struct statvfs vfs {};
  for (;;) {
    if (::statvfs(probe.c_str(), &vfs) == 0) break;
    if (errno != ENOENT || !probe.has_relative_path() || probe == probe.parent_path()) {
      throw DownloadError("cannot determine free space for " + path.string() + ": " + std::strerror(errno));
    }
    probe = probe.parent_path();
  }
  return static_cast<uint64_t>(vfs.f_bavail) * static_cast<uint64_t>(vfs.f_frsize);
}

uint64_t bytes_still_needed(const DownloadPlan& plan, const std::filesystem::path& root) {
  uint64_t needed = 0;
  for (const auto& f : plan.files) {
    if (f.size == kUnknownSize) continue;
    std::filesystem::path final_path = root / f.relative_path;
    struct stat st {};
    if (::stat(final_path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == f.size) {
      continue;  // present with the right size; verification decides whether it is kept
    }
    uint64_t present = 0;
    if (::stat(partial_path_for(final_path).c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      present = static_cast<uint64_t>(st.st_blocks) * 512;
    }
    uint64_t missing = f.size > present ? f.size - present : 0;
    if (needed > UINT64_MAX - missing) return UINT64_MAX;  // absurd sizes saturate instead of wrapping
    needed += missing;
  }
  return needed;
}

void ensure_disk_space(const std::filesystem::path& root, uint64_t needed, size_t file_count) {
  uint64_t available = available_disk_bytes(root);
  if (needed > available) {
    throw DiskSpaceError("not enough free disk space under " + root.string() + ": the download needs " +
                         format_bytes(needed) + " (" + std::to_string(needed) + " bytes) more for " +
                         std::to_string(file_count) + " file(s), only " + format_bytes(available) + " (" +
                         std::to_string(available) + " bytes) available");
  }
}

}  // namespace modelagent
