#pragma once
// The download engine: executes a DownloadPlan with libcurl multi (many files, many ranges per file),
// pwrite into "<name>.partial" beside the final path with a resume journal, streaming hashes,
// fsync + atomic rename, verified-stamps, disk-space check, retries, bandwidth cap, cancellation.

#include <filesystem>

#include "modelagent/download_plan.hpp"

namespace modelagent {

// Fetches every file of the plan under root. Throws a DownloadError subclass (errors.hpp) naming
// the file/URL at fault; files already completed stay in place, unfinished ones stay resumable.
// Thread-safe to call concurrently for different roots. cancel/progress may be null.
DownloadReport run_download(const DownloadPlan& plan, const std::filesystem::path& root,
                            const DownloadOptions& options, CancelToken* cancel = nullptr,
                            DownloadProgress* progress = nullptr);

// Re-checks files already under root against the plan's sizes and digests (full re-hash,
// ignoring verified-stamps). Returns one FileResult per planned file; verified=false and a note
// explain each mismatch or missing file. Never modifies anything.
std::vector<FileResult> verify_files(const DownloadPlan& plan, const std::filesystem::path& root);

// Throws UnsafePathError unless relative_path is a safe, normalised relative path: not absolute,
// no "." / ".." / empty segments, no NUL or backslash, each segment <= 255 bytes, total <= 4096,
// and no existing symlink along the way under root that leads outside root.
void check_safe_relative_path(const std::filesystem::path& root, const std::string& relative_path);

}  // namespace modelagent
