// Partial files: pwrite from many ranges, fdatasync, fsync + atomic rename into place.

#include "modelagent/partial_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>

#include "modelagent/download_plan.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/path_safety.hpp"

namespace modelagent {

namespace {

constexpr size_t kDirectAlignment = 4096;

[[noreturn]] void io_failure(const std::string& what, const std::filesystem::path& path, int err) {
  std::string message = what + " " + path.string() + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) throw DiskSpaceError("disk full: " + message);
  throw DownloadError(message);
}

}  // namespace

void sync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

PartialFile::PartialFile(const std::filesystem::path& final_path, uint64_t size, bool keep_existing)
    : final_(final_path), partial_(partial_path_for(final_path)) {
  std::error_code ec;
  std::filesystem::create_directories(final_.parent_path(), ec);
  if (ec) throw DownloadError("cannot create directory " + final_.parent_path().string() + ": " + ec.message());
  int flags = O_RDWR | O_CREAT | O_CLOEXEC | (keep_existing ? 0 : O_TRUNC);
  fd_ = ::open(partial_.c_str(), flags, 0644);
  if (fd_ < 0) io_failure("cannot open", partial_, errno);
  if (!keep_existing && size != kUnknownSize && size > 0) reserve(size);
  direct_fd_ = ::open(partial_.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);  // -1 where unsupported
}

PartialFile::~PartialFile() {
  if (fd_ >= 0) ::close(fd_);
  if (direct_fd_ >= 0) ::close(direct_fd_);
}

void PartialFile::reserve(uint64_t size) {
  // fallocate allocates without writing; where unsupported, a sparse length is the fallback
  // (posix_fallocate would emulate it by writing every block).
  if (::fallocate(fd_, 0, 0, static_cast<off_t>(size)) == 0) return;
  int err = errno;
  if (err == ENOSPC || err == EDQUOT) io_failure("cannot reserve " + std::to_string(size) + " bytes for", partial_, err);
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) io_failure("cannot size", partial_, errno);
}

namespace {

bool aligned(const void* data, size_t size, uint64_t offset) {
  return reinterpret_cast<uintptr_t>(data) % kDirectAlignment == 0 && size % kDirectAlignment == 0 &&
         offset % kDirectAlignment == 0;
}

}  // namespace

void PartialFile::write_at(const void* data, size_t size, uint64_t offset) {
  auto p = static_cast<const char*>(data);
  while (size > 0 && direct() && aligned(p, size, offset)) {
    ssize_t n = ::pwrite(direct_fd_, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL) {
      direct_ok_ = false;  // the filesystem refuses this direct write: buffered from now on
      break;
    }
    if (n < 0) io_failure("cannot write", partial_, errno);
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  while (size > 0) {
    ssize_t n = ::pwrite(fd_, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      io_failure("cannot write", partial_, errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

size_t PartialFile::read_at(void* data, size_t size, uint64_t offset) {
  auto p = static_cast<char*>(data);
  size_t done = 0;
  int fd = direct() && aligned(data, size, offset) ? direct_fd_ : fd_;
  while (done < size) {
    ssize_t n = ::pread(fd, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINVAL && fd == direct_fd_) {
      fd = fd_;
      continue;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      io_failure("cannot read", partial_, errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

void PartialFile::sync_data() {
  if (::fdatasync(fd_) != 0) io_failure("cannot sync", partial_, errno);
}

void PartialFile::reset(uint64_t size) {
  if (::ftruncate(fd_, 0) != 0) io_failure("cannot truncate", partial_, errno);
  if (size != kUnknownSize && size > 0) reserve(size);
}

void PartialFile::set_length(uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) io_failure("cannot truncate", partial_, errno);
}

void PartialFile::commit() {
  if (::fsync(fd_) != 0) io_failure("cannot sync", partial_, errno);
  ::close(fd_);
  fd_ = -1;
  if (direct_fd_ >= 0) ::close(direct_fd_);
  direct_fd_ = -1;
  if (::rename(partial_.c_str(), final_.c_str()) != 0) {
    int err = errno;
    throw DownloadError("cannot rename " + partial_.string() + " to " + final_.string() + ": " + std::strerror(err));
  }
  sync_directory(final_.parent_path());
}

void PartialFile::discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (direct_fd_ >= 0) {
    ::close(direct_fd_);
    direct_fd_ = -1;
  }
  ::unlink(partial_.c_str());
}

}  // namespace modelagent
