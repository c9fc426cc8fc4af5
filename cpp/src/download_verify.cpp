// verify_files: a read-only, full re-check of files already under a root against a plan.

#include <sys/stat.h>

#include "modelagent/digest.hpp"
#include "modelagent/download_engine.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/path_safety.hpp"

namespace modelagent {

std::vector<FileResult> verify_files(const DownloadPlan& plan, const std::filesystem::path& root) {
  validate_plan_paths(plan, root);
  std::vector<FileResult> results;
  for (const auto& planned : plan.files) {
    FileResult r;
    r.relative_path = planned.relative_path;
    ExpectedDigest expected = normalize_digest(planned.digest, planned.size, planned.relative_path);
    std::filesystem::path path = root / planned.relative_path;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      r.note = "missing";
      results.push_back(r);
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      r.note = "not a regular file";
      results.push_back(r);
      continue;
    }
    r.size = static_cast<uint64_t>(st.st_size);
    if (planned.size != kUnknownSize && r.size != planned.size) {
      r.note = "size " + std::to_string(r.size) + " differs from the expected " + std::to_string(planned.size);
      results.push_back(r);
      continue;
    }
    if (expected.kind == DigestKind::None) {
      r.note = "no digest to verify against; size " +
               std::string(planned.size == kUnknownSize ? "not known either" : "matches");
      results.push_back(r);
      continue;
    }
    auto digest = hash_file(path, expected);
    r.size = digest.size;
    r.digest_hex = digest.hex;
    r.verified = digest.matches;
    if (!digest.matches) {
      r.note = std::string(digest_kind_name(expected.kind)) + " mismatch: expected " +
               (expected.kind == DigestKind::Md5Multipart ? expected.hex + "-" + std::to_string(expected.parts)
                                                         : expected.hex) +
               ", got " + digest.hex;
    }
    results.push_back(r);
  }
  return results;
}

}  // namespace modelagent
