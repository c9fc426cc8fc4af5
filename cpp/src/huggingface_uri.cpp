// hf:// URIs, hub endpoint and token from the environment, and the hub's URL shapes.

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "modelagent/ascii_text.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/huggingface.hpp"

namespace modelagent::hf {

namespace {

constexpr size_t kMaxRepoIdLength = 96;

[[noreturn]] void bad_uri(std::string_view uri, const std::string& why) {
  throw InvalidStorageUri("invalid Hugging Face URI '" + std::string(uri) + "': " + why);
}

bool repo_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.';
}

void check_repo_id(std::string_view uri, std::string_view repo) {
  if (repo.empty()) bad_uri(uri, "the repository id is empty (expected hf://org/name[@revision])");
  if (repo.size() > kMaxRepoIdLength) {
    bad_uri(uri, "the repository id is longer than " + std::to_string(kMaxRepoIdLength) + " characters");
  }
  size_t slashes = 0;
  size_t start = 0;
  for (size_t i = 0; i <= repo.size(); ++i) {
    if (i < repo.size() && repo[i] != '/') {
      if (!repo_char(repo[i])) {
        bad_uri(uri, "the repository id '" + std::string(repo) + "' contains '" + std::string(1, repo[i]) +
                         "' (allowed: letters, digits, '-', '_', '.')");
      }
      continue;
    }
    std::string_view segment = repo.substr(start, i - start);
    if (segment.empty()) bad_uri(uri, "the repository id '" + std::string(repo) + "' has an empty segment");
    if (segment.front() == '-' || segment.front() == '.' || segment.back() == '-' || segment.back() == '.') {
      bad_uri(uri, "the repository id '" + std::string(repo) + "' has a segment starting or ending with '-' or '.'");
    }
    if (i < repo.size()) ++slashes;
    start = i + 1;
  }
  if (slashes > 1) bad_uri(uri, "the repository id '" + std::string(repo) + "' has more than one '/'");
  if (repo.find("--") != std::string_view::npos || repo.find("..") != std::string_view::npos) {
    bad_uri(uri, "the repository id '" + std::string(repo) + "' contains '--' or '..'");
  }
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return trim_space(ss.str());
}

}  // namespace

RepoRef parse_uri(std::string_view uri) {
  constexpr std::string_view scheme = "hf://";
  if (uri.substr(0, scheme.size()) != scheme) bad_uri(uri, "expected the scheme hf://");
  for (char c : uri) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) bad_uri(uri, "contains whitespace or control characters");
  }
  std::string_view rest = uri.substr(scheme.size());
  RepoRef ref;
  size_t at = rest.find('@');
  std::string_view repo = rest.substr(0, at);
  check_repo_id(uri, repo);
  ref.repo_id = std::string(repo);
  if (at == std::string_view::npos) {
    ref.revision = kDefaultRevision;
  } else {
    ref.revision = std::string(rest.substr(at + 1));
    if (ref.revision.empty()) bad_uri(uri, "the revision after '@' is empty");
  }
  return ref;
}

bool is_commit_hash(std::string_view revision) {
  if (revision.size() != 40) return false;
  for (char c : revision) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string endpoint_from_env() {
  std::string endpoint = trim_space(env("HF_ENDPOINT"));
  if (endpoint.empty()) endpoint = kDefaultEndpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint;
}

std::string resolve_token(const std::string& explicit_token) {
  std::string token = trim_space(explicit_token);
  if (!token.empty()) return token;
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    token = trim_space(env(name));
    if (!token.empty()) return token;
  }
  std::string path = env("HF_TOKEN_PATH");
  if (!path.empty()) {
    token = read_token_file(path);
    if (!token.empty()) return token;
  }
  std::string home = env("HF_HOME");
  if (home.empty()) {
    std::string cache = env("XDG_CACHE_HOME");
    if (cache.empty() && !env("HOME").empty()) cache = env("HOME") + "/.cache";
    if (!cache.empty()) home = cache + "/huggingface";
  }
  return home.empty() ? "" : read_token_file(home + "/token");
}

std::string percent_encode(std::string_view text, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '.' || c == '_' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string revision_url(const std::string& endpoint, const std::string& repo_id, const std::string& revision) {
  return endpoint + "/api/models/" + percent_encode(repo_id, true) + "/revision/" + percent_encode(revision, false);
}

std::string tree_url(const std::string& endpoint, const std::string& repo_id, const std::string& commit) {
  return endpoint + "/api/models/" + percent_encode(repo_id, true) + "/tree/" + percent_encode(commit, false) +
         "?recursive=true&expand=false";
}

std::string resolve_url(const std::string& endpoint, const std::string& repo_id, const std::string& commit,
                        const std::string& path) {
  return endpoint + "/" + percent_encode(repo_id, true) + "/resolve/" + percent_encode(commit, false) + "/" +
         percent_encode(path, true);
}

}  // namespace modelagent::hf
