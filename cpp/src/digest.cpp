// Content digests through OpenSSL EVP, their encodings, and the comparison with a plan's digest.

#include "modelagent/ascii_text.hpp"
#include "modelagent/digest.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>

#include "modelagent/errors.hpp"

namespace modelagent {

namespace {

std::atomic<uint64_t> g_bytes_rehashed{0};

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_hex(std::string_view s) {
  return !s.empty() && s.size() % 2 == 0 &&
         std::all_of(s.begin(), s.end(), [](char c) { return hex_value(c) >= 0; });
}

// ETags arrive quoted and sometimes weak: W/"abc" -> abc.
std::string_view strip_etag_decoration(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.size() >= 2 && (s[0] == 'W' || s[0] == 'w') && s[1] == '/') s.remove_prefix(2);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

size_t digest_bytes(DigestKind kind) {
  switch (kind) {
    case DigestKind::Sha256: return 32;
    case DigestKind::GitBlobSha1: return 20;
    case DigestKind::Md5:
    case DigestKind::Md5Multipart: return 16;
    case DigestKind::None: return 0;
  }
  return 0;
}

struct EvpContext {
  EVP_MD_CTX* ctx = nullptr;
  explicit EvpContext(const EVP_MD* md) : ctx(EVP_MD_CTX_new()) {
    if (!ctx || EVP_DigestInit_ex(ctx, md, nullptr) != 1) throw Error("OpenSSL digest initialisation failed");
  }
  ~EvpContext() { EVP_MD_CTX_free(ctx); }
  EvpContext(const EvpContext&) = delete;
  EvpContext& operator=(const EvpContext&) = delete;
  void update(const void* data, size_t size) { EVP_DigestUpdate(ctx, data, size); }
  std::vector<unsigned char> finish() {
    std::vector<unsigned char> out(EVP_MAX_MD_SIZE);
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, out.data(), &n);
    out.resize(n);
    return out;
  }
  void reset(const EVP_MD* md) { EVP_DigestInit_ex(ctx, md, nullptr); }
};

// Part sizes that clients commonly use for multipart uploads (S3 CLI 8 MiB, OCI CLI 128 MiB, ...).
constexpr uint64_t kMiB = 1ull << 20;
// Part sizes uploaders use, most common first (AWS CLI/boto3 8 MiB, OCI CLI and SDK UploadManager 128 MiB,
// OCI SDK upload_stream 10 MiB, s3cmd 15 MiB, ...). A download hashes only the first candidate that fits while
// streaming and tries the others from the page cache only when it does not match.
constexpr uint64_t kCommonPartSizes[] = {8 * kMiB,  128 * kMiB, 10 * kMiB,  16 * kMiB,  15 * kMiB,
                                         5 * kMiB,  64 * kMiB,  32 * kMiB,  100 * kMiB, 50 * kMiB,
                                         256 * kMiB, 512 * kMiB, 1024 * kMiB};
constexpr size_t kMaxPartSizeCandidates = 6;

}  // namespace

bool part_size_fits(uint64_t part_size, uint64_t size, uint32_t parts) {
  if (part_size == 0 || parts == 0) return false;
  if (parts == 1) return size <= part_size;
  // (parts - 1) full parts followed by a non-empty last part.
  unsigned __int128 full = static_cast<unsigned __int128>(parts - 1) * part_size;
  return full < size && size <= full + part_size;
}

std::string to_hex(const unsigned char* data, size_t size) {
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kHexDigits[data[i] >> 4];
    out[2 * i + 1] = kHexDigits[data[i] & 15];
  }
  return out;
}

std::string base64_encode(const unsigned char* data, size_t size) {
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (size_t i = 0; i < size; i += 3) {
    uint32_t chunk = static_cast<uint32_t>(data[i]) << 16;
    if (i + 1 < size) chunk |= static_cast<uint32_t>(data[i + 1]) << 8;
    if (i + 2 < size) chunk |= data[i + 2];
    out += kBase64Alphabet[(chunk >> 18) & 63];
    out += kBase64Alphabet[(chunk >> 12) & 63];
    out += i + 1 < size ? kBase64Alphabet[(chunk >> 6) & 63] : '=';
    out += i + 2 < size ? kBase64Alphabet[chunk & 63] : '=';
  }
  return out;
}

std::optional<std::vector<unsigned char>> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::vector<unsigned char> out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t chunk = 0;
    int padding = 0;
    for (size_t j = 0; j < 4; ++j) {
      char c = text[i + j];
      uint32_t v = 0;
      if (c == '=') {
        // Padding only in the last quantum, only in its last two places, and nothing after it.
        if (i + 4 != text.size() || j < 2) return std::nullopt;
        ++padding;
      } else {
        if (padding) return std::nullopt;
        const char* p = std::strchr(kBase64Alphabet, c);
        if (!p || c == '\0') return std::nullopt;
        v = static_cast<uint32_t>(p - kBase64Alphabet);
      }
      chunk = (chunk << 6) | v;
    }
    out.push_back(static_cast<unsigned char>(chunk >> 16));
    if (padding < 2) out.push_back(static_cast<unsigned char>(chunk >> 8));
    if (padding < 1) out.push_back(static_cast<unsigned char>(chunk));
  }
  return out;
}

std::optional<std::string> hex_from_hex_or_base64(std::string_view text, size_t expected_bytes) {
  text = strip_etag_decoration(text);
  if (is_hex(text) && (expected_bytes == 0 || text.size() == expected_bytes * 2)) return ascii_lower(text);
  auto decoded = base64_decode(text);
  if (decoded && !decoded->empty() && (expected_bytes == 0 || decoded->size() == expected_bytes)) {
    return to_hex(decoded->data(), decoded->size());
  }
  return std::nullopt;
}

const char* digest_kind_name(DigestKind kind) {
  switch (kind) {
    case DigestKind::None: return "none";
    case DigestKind::Sha256: return "sha256";
    case DigestKind::GitBlobSha1: return "git-blob-sha1";
    case DigestKind::Md5: return "md5";
    case DigestKind::Md5Multipart: return "md5-multipart";
  }
  return "none";
}

std::optional<DigestKind> parse_digest_kind(std::string_view name) {
  std::string n = ascii_lower(name);
  std::replace(n.begin(), n.end(), '_', '-');
  if (n == "none" || n.empty()) return DigestKind::None;
  if (n == "sha256" || n == "sha-256") return DigestKind::Sha256;
  if (n == "git-blob-sha1" || n == "git-sha1" || n == "sha1") return DigestKind::GitBlobSha1;
  if (n == "md5") return DigestKind::Md5;
  if (n == "md5-multipart" || n == "md5multipart") return DigestKind::Md5Multipart;
  return std::nullopt;
}

ExpectedDigest normalize_digest(const Digest& digest, uint64_t size, const std::string& what) {
  ExpectedDigest out;
  out.kind = digest.kind;
  if (digest.kind == DigestKind::None) return out;
  std::string_view value = strip_etag_decoration(digest.value);
  auto fail = [&](const std::string& why) -> ExpectedDigest {
    throw DownloadError("invalid " + std::string(digest_kind_name(digest.kind)) + " digest for " + what + ": " +
                        why + " (value \"" + digest.value + "\")");
  };
  uint32_t parts = digest.parts;
  if (digest.kind == DigestKind::Md5Multipart) {
    // Accept the ETag form "<md5>-<parts>".
    auto dash = value.rfind('-');
    if (dash != std::string_view::npos) {
      std::string_view count = value.substr(dash + 1);
      if (count.empty() || count.size() > 6 ||
          !std::all_of(count.begin(), count.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return fail("part count after '-' is not a number");
      }
      uint32_t suffix_parts = static_cast<uint32_t>(std::stoul(std::string(count)));
      if (parts != 0 && parts != suffix_parts) {
        return fail("part count " + std::to_string(parts) + " disagrees with the value's suffix");
      }
      parts = suffix_parts;
      value = value.substr(0, dash);
    }
    if (parts == 0) return fail("the part count is missing");
  }
  auto hex = hex_from_hex_or_base64(value, digest_bytes(digest.kind));
  if (!hex) {
    return fail("expected " + std::to_string(digest_bytes(digest.kind) * 2) + " hex digits" +
                (digest.kind == DigestKind::Md5 || digest.kind == DigestKind::Md5Multipart ? " or base64" : ""));
  }
  out.hex = *hex;
  if (digest.kind == DigestKind::Md5Multipart) {
    out.parts = parts;
    if (size == kUnknownSize) return fail("multipart MD5 needs the file size");
    if (!digest.part_lengths.empty()) {
      if (digest.part_size != 0) return fail("give part_size or part_lengths, not both");
      if (digest.part_lengths.size() != parts) {
        return fail(std::to_string(digest.part_lengths.size()) + " part lengths for " + std::to_string(parts) + " parts");
      }
      unsigned __int128 total = 0;
      for (size_t i = 0; i < digest.part_lengths.size(); ++i) {
        if (digest.part_lengths[i] == 0) return fail("part " + std::to_string(i + 1) + " has length 0");
        total += digest.part_lengths[i];
      }
      if (total != size) {
        return fail("part lengths add up to " + std::to_string(static_cast<uint64_t>(std::min<unsigned __int128>(
                        total, std::numeric_limits<uint64_t>::max()))) +
                    " bytes, not the file's " + std::to_string(size));
      }
      out.part_lengths = digest.part_lengths;
    } else if (digest.part_size != 0) {
      if (!part_size_fits(digest.part_size, size, parts)) {
        return fail("part size " + std::to_string(digest.part_size) + " cannot give " + std::to_string(parts) +
                    " parts for " + std::to_string(size) + " bytes");
      }
      out.part_sizes.push_back(digest.part_size);
    } else if (parts == 1) {
      out.part_sizes.push_back(std::max<uint64_t>(size, 1));
    } else {
      std::vector<uint64_t> candidates(std::begin(kCommonPartSizes), std::end(kCommonPartSizes));
      uint64_t even = (size + parts - 1) / parts;
      candidates.push_back((even + kMiB - 1) / kMiB * kMiB);
      candidates.push_back(even);
      for (uint64_t c : candidates) {
        bool seen = std::find(out.part_sizes.begin(), out.part_sizes.end(), c) != out.part_sizes.end();
        if (!seen && part_size_fits(c, size, parts) && out.part_sizes.size() < kMaxPartSizeCandidates) {
          out.part_sizes.push_back(c);
        }
      }
      if (out.part_sizes.empty()) {
        return fail("no part size gives " + std::to_string(parts) + " parts for " + std::to_string(size) + " bytes");
      }
    }
  }
  return out;
}

struct ContentHasher::Impl {
  ExpectedDigest expected;
  uint64_t size;
  bool header_done = false;
  std::unique_ptr<EvpContext> whole;  // Sha256, GitBlobSha1, Md5
  // Multipart: one running part hash and the list of finished part digests per candidate part size.
  struct Candidate {
    uint64_t part_size;                  // every part but the last, unless part_lengths says otherwise
    std::vector<uint64_t> part_lengths;  // every part's length in order, when the parts differ
    uint64_t in_part = 0;
    std::unique_ptr<EvpContext> part;
    std::vector<unsigned char> part_digests;
    uint32_t parts_done = 0;

    uint64_t current_part_size() const {
      if (part_lengths.empty()) return part_size;
      // Bytes past the stated layout (a longer file) go into one more part; the result cannot match.
      return parts_done < part_lengths.size() ? part_lengths[parts_done] : std::numeric_limits<uint64_t>::max();
    }
  };
  std::vector<Candidate> candidates;

  void git_header() {
    if (header_done || expected.kind != DigestKind::GitBlobSha1) return;
    if (size == kUnknownSize) throw Error("git-blob SHA-1 needs the content size before hashing");
    std::string header = "blob " + std::to_string(size);
    whole->update(header.data(), header.size() + 1);  // includes the terminating NUL
    header_done = true;
  }
};

ContentHasher::ContentHasher(const ExpectedDigest& expected, uint64_t size) : impl_(std::make_unique<Impl>()) {
  impl_->expected = expected;
  impl_->size = size;
  switch (expected.kind) {
    case DigestKind::Sha256: impl_->whole = std::make_unique<EvpContext>(EVP_sha256()); break;
    case DigestKind::GitBlobSha1: impl_->whole = std::make_unique<EvpContext>(EVP_sha1()); break;
    case DigestKind::Md5: impl_->whole = std::make_unique<EvpContext>(EVP_md5()); break;
    case DigestKind::Md5Multipart:
      if (!expected.part_lengths.empty()) {
        Impl::Candidate c;
        c.part_size = 0;
        c.part_lengths = expected.part_lengths;
        c.part = std::make_unique<EvpContext>(EVP_md5());
        impl_->candidates.push_back(std::move(c));
      }
      for (uint64_t p : expected.part_sizes) {
        Impl::Candidate c;
        c.part_size = p;
        c.part = std::make_unique<EvpContext>(EVP_md5());
        impl_->candidates.push_back(std::move(c));
      }
      break;
    case DigestKind::None: break;
  }
}

ContentHasher::~ContentHasher() = default;

void ContentHasher::set_size(uint64_t size) { impl_->size = size; }

void ContentHasher::update(const void* data, size_t size) {
  bytes_ += size;
  if (impl_->whole) {
    impl_->git_header();
    impl_->whole->update(data, size);
    return;
  }
  for (auto& c : impl_->candidates) {
    auto p = static_cast<const unsigned char*>(data);
    size_t left = size;
    while (left > 0) {
      uint64_t part_size = c.current_part_size();
      size_t take = static_cast<size_t>(std::min<uint64_t>(left, part_size - c.in_part));
      c.part->update(p, take);
      c.in_part += take;
      p += take;
      left -= take;
      if (c.in_part == part_size) {
        auto d = c.part->finish();
        c.part_digests.insert(c.part_digests.end(), d.begin(), d.end());
        ++c.parts_done;
        c.in_part = 0;
        c.part->reset(EVP_md5());
      }
    }
  }
}

std::string ContentHasher::finish() {
  auto& e = impl_->expected;
  if (impl_->whole) {
    impl_->git_header();
    auto d = impl_->whole->finish();
    std::string hex = to_hex(d.data(), d.size());
    matches_ = hex == e.hex;
    return hex;
  }
  std::string first;
  for (auto& c : impl_->candidates) {
    if (c.in_part > 0 || c.parts_done == 0) {
      auto d = c.part->finish();
      c.part_digests.insert(c.part_digests.end(), d.begin(), d.end());
      ++c.parts_done;
    }
    EvpContext combined(EVP_md5());
    combined.update(c.part_digests.data(), c.part_digests.size());
    auto d = combined.finish();
    std::string hex = to_hex(d.data(), d.size());
    std::string result = hex + "-" + std::to_string(c.parts_done);
    if (first.empty()) first = result;
    if (hex == e.hex && c.parts_done == e.parts) {
      matches_ = true;
      return result;
    }
  }
  return first;
}

FileDigestResult hash_file(const std::filesystem::path& path, const ExpectedDigest& expected,
                           const CancelToken* cancel) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DownloadError("cannot open " + path.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw DownloadError("cannot stat " + path.string() + ": " + std::strerror(err));
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  FileDigestResult result;
  result.size = static_cast<uint64_t>(st.st_size);
  ContentHasher hasher(expected, result.size);
  constexpr size_t kBlock = 4 << 20;
  std::unique_ptr<unsigned char[]> buffer(new unsigned char[kBlock]);
  uint64_t total = 0;
  for (;;) {
    if (cancel && cancel->is_cancelled()) {
      ::close(fd);
      throw CancelledError("cancelled while hashing " + path.string());
    }
    ssize_t n = ::read(fd, buffer.get(), kBlock);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw DownloadError("cannot read " + path.string() + ": " + std::strerror(err));
    }
    if (n == 0) break;
    hasher.update(buffer.get(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
    g_bytes_rehashed.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  }
  ::close(fd);
  result.hex = hasher.finish();
  // A file that changed size while being read cannot match (git-blob SHA-1 also hashed the old size).
  result.matches = hasher.matches() && total == result.size;
  result.size = total;
  return result;
}

uint64_t bytes_rehashed_from_disk() { return g_bytes_rehashed.load(); }

ExpectedDigest likeliest_candidate(const ExpectedDigest& expected) {
  ExpectedDigest out = expected;
  if (out.kind == DigestKind::Md5Multipart && out.part_sizes.size() > 1) out.part_sizes.resize(1);
  return out;
}

ExpectedDigest remaining_candidates(const ExpectedDigest& expected) {
  ExpectedDigest out = expected;
  if (out.kind == DigestKind::Md5Multipart && !out.part_lengths.empty()) {
    out.part_lengths.clear();  // an exact layout is the only candidate
    out.part_sizes.clear();
  } else if (out.kind == DigestKind::Md5Multipart && !out.part_sizes.empty()) {
    out.part_sizes.erase(out.part_sizes.begin());
  } else {
    out.part_sizes.clear();
  }
  return out;
}

}  // namespace modelagent
