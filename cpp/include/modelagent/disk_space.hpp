#pragma once
// Free-space accounting for a whole plan, checked before the first byte is written.

#include <cstdint>
#include <filesystem>
#include <string>

#include "modelagent/download_plan.hpp"

namespace modelagent {

// Bytes available to an unprivileged writer on the filesystem holding `path` (or its nearest existing
// ancestor). Throws DownloadError naming the path if it cannot be determined.
uint64_t available_disk_bytes(const std::filesystem::path& path);

// Bytes the plan still needs under root: for each file of known size, its size minus what is already
// there (a complete final file of the right size, or the blocks already allocated to its partial file).
uint64_t bytes_still_needed(const DownloadPlan& plan, const std::filesystem::path& root);

// Throws DiskSpaceError with the needed and available figures when `needed` exceeds what is free
// under root. Human-readable sizes come with exact byte counts.
void ensure_disk_space(const std::filesystem::path& root, uint64_t needed, size_t file_count);

std::string format_bytes(uint64_t bytes);

}  // namespace modelagent
