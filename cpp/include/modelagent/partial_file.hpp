#pragma once
// "<name>.partial" beside the final path: positional writes from many ranges, durable syncs, and an
// atomic, durable rename into place. A file only appears under its final name through commit().
//
// Writes whose memory, offset and length are 4 KiB-aligned go through a second descriptor opened with
// O_DIRECT: the data is DMA'd from the caller's buffer, skipping the page-cache copy that dominates
// the CPU cost of writing (and that the kernel would have to write back anyway before the final
// fsync). Everything else, and filesystems without O_DIRECT (tmpfs), uses ordinary buffered I/O; the
// kernel keeps the two coherent.

#include <cstddef>
#include <cstdint>
#include <atomic>
#include <filesystem>

namespace modelagent {

class PartialFile {
 public:
  // Opens the partial file of final_path, creating parent directories. keep_existing=false truncates
  // any previous content. A known size (not kUnknownSize) is reserved up front where the filesystem
  // supports it, so a full disk shows up before transfers start.
  PartialFile(const std::filesystem::path& final_path, uint64_t size, bool keep_existing);
  ~PartialFile();
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  const std::filesystem::path& path() const { return partial_; }
  const std::filesystem::path& final_path() const { return final_; }

  // Writes all bytes at offset (retrying short writes); ENOSPC/EDQUOT raise DiskSpaceError, other
  // failures DownloadError, both naming the file. Thread-safe for disjoint ranges.
  void write_at(const void* data, size_t size, uint64_t offset);
  // Reads up to size bytes at offset; returns the count (short only at end of file). Aligned reads
  // use direct I/O when writes did, so reading back does not fill the page cache.
  size_t read_at(void* data, size_t size, uint64_t offset);
  // True while aligned writes go straight to the device.
  bool direct() const { return direct_fd_ >= 0 && direct_ok_; }
  // Disables direct I/O for this file (tests, or filesystems that misbehave with it).
  void disable_direct() { direct_ok_ = false; }
  // Makes written data durable (fdatasync).
  void sync_data();
  // Discards content and sets a new length (restart of a file whose server ignored Range).
  void reset(uint64_t size);
  // Trims the file to exactly `size` bytes (unknown-size downloads end where the data ended).
  void set_length(uint64_t size);
  // fsync, rename over the final path, fsync the directory. The object is closed afterwards.
  void commit();
  // Closes and unlinks the partial file.
  void discard();

 private:
  void reserve(uint64_t size);
  std::filesystem::path final_;
  std::filesystem::path partial_;
  int fd_ = -1;
  int direct_fd_ = -1;
  std::atomic<bool> direct_ok_{true};
};

// fsync of a directory so a rename or creation inside it survives a crash. Errors are ignored on
// filesystems that do not support syncing directories.
void sync_directory(const std::filesystem::path& dir);

}  // namespace modelagent
