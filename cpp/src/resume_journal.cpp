// Append-only, checksummed resume journal of completed byte ranges.

#include "modelagent/resume_journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "modelagent/errors.hpp"

namespace modelagent {

namespace {

constexpr uint32_t kMagic = 0x4a414d31;  // "MAJ1"
constexpr uint32_t kHeader = 1;
constexpr uint32_t kRange = 2;

struct Record {
  uint32_t magic;
  uint32_t type;
  uint64_t a;
  uint64_t b;
  uint64_t check;
};
static_assert(sizeof(Record) == 32);

uint64_t checksum(const Record& r) {
  return fnv1a64(std::string_view(reinterpret_cast<const char*>(&r), offsetof(Record, check)));
}

Record make(uint32_t type, uint64_t a, uint64_t b) {
  Record r{kMagic, type, a, b, 0};
  r.check = checksum(r);
  return r;
}

bool valid(const Record& r) { return r.magic == kMagic && r.check == checksum(r); }

// Reads whole valid records; stops at the first torn or corrupt one.
std::vector<Record> read_records(int fd) {
  std::vector<Record> out;
  Record r{};
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, &r, sizeof r, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof r) || !valid(r)) break;
    out.push_back(r);
    offset += static_cast<off_t>(sizeof r);
  }
  return out;
}

void write_all(int fd, const void* data, size_t size, const std::filesystem::path& path) {
  auto p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      std::string message = "cannot write resume journal " + path.string() + ": " + std::strerror(err);
      if (err == ENOSPC || err == EDQUOT) throw DiskSpaceError(message);
      throw DownloadError(message);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

uint64_t fnv1a64(std::string_view data, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::optional<IntervalSet> ResumeJournal::load(const std::filesystem::path& path, uint64_t identity, uint64_t size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  auto records = read_records(fd);
  ::close(fd);
  if (records.empty() || records[0].type != kHeader || records[0].a != identity || records[0].b != size) {
    return std::nullopt;
  }
  IntervalSet done;
  for (size_t i = 1; i < records.size(); ++i) {
    const Record& r = records[i];
    if (r.type != kRange || r.a >= r.b || r.b > size) return std::nullopt;  // not ours after all
    done.add(r.a, r.b);
  }
  return done;
}

ResumeJournal::ResumeJournal(const std::filesystem::path& path, uint64_t identity, uint64_t size, bool fresh)
    : path_(path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0644);
  if (fd_ < 0) {
    throw DownloadError("cannot open resume journal " + path.string() + ": " + std::strerror(errno));
  }
  size_t keep = 0;
  if (!fresh) {
    auto records = read_records(fd_);
    if (!records.empty() && records[0].type == kHeader && records[0].a == identity && records[0].b == size) {
      keep = records.size() * sizeof(Record);
    }
  }
  if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0 || ::lseek(fd_, static_cast<off_t>(keep), SEEK_SET) < 0) {
    int err = errno;
    ::close(fd_);
    throw DownloadError("cannot prepare resume journal " + path.string() + ": " + std::strerror(err));
  }
  if (keep == 0) {
    Record header = make(kHeader, identity, size);
    write_all(fd_, &header, sizeof header, path_);
    ::fdatasync(fd_);
  }
}

ResumeJournal::~ResumeJournal() {
  if (fd_ >= 0) ::close(fd_);
}

void ResumeJournal::append(uint64_t begin, uint64_t end) {
  Record r = make(kRange, begin, end);
  write_all(fd_, &r, sizeof r, path_);
  if (::fdatasync(fd_) != 0) {
    throw DownloadError("cannot sync resume journal " + path_.string() + ": " + std::strerror(errno));
  }
}

void ResumeJournal::remove(const std::filesystem::path& path) { ::unlink(path.c_str()); }

}  // namespace modelagent
