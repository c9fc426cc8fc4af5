// Hub API calls (revision → commit, paginated tree listing, HEAD metadata) and their response parsing.

#include <curl/curl.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/huggingface.hpp"

namespace modelagent::hf {

namespace {

using nlohmann::json;

constexpr int kMaxPages = 100000;
constexpr int kMaxMetadataRedirects = 5;

bool is_hex(std::string_view s, size_t length) {
  if (s.size() != length) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

std::string lower_hex(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string strip_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return etag;
}

json parse_json(std::string_view body, const std::string& url) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    throw DownloadError("unexpected response from " + url + ": not JSON (" + e.what() + ")");
  }
}

uint64_t size_field(const json& value, const std::string& where) {
  if (!value.is_number_integer() && !value.is_number_unsigned()) throw DownloadError(where + ": 'size' is not an integer");
  if (value.is_number_integer() && value.get<int64_t>() < 0) throw DownloadError(where + ": 'size' is negative");
  return value.get<uint64_t>();
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

std::string origin_of(const std::string& url) {
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "";
  std::string out;
  for (CURLUPart part : {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT}) {
    char* v = nullptr;
    if (curl_url_get(u.get(), part, &v, part == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0) == CURLUE_OK) {
      out += v;
      curl_free(v);
    }
    out += "|";
  }
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

HttpRequest api_request(const ClientOptions& options, const std::string& url, const std::string& method = "GET") {
  HttpRequest request;
  request.method = method;
  request.url = url;
  request.timeout_seconds = options.request_timeout_seconds;
  request.headers.emplace_back("Accept", "application/json");
  // The token goes only to the configured endpoint's origin (a pagination link could point elsewhere).
  if (!options.token.empty() && origin_of(url) == origin_of(options.endpoint)) {
    request.headers.emplace_back("Authorization", "Bearer " + options.token);
  }
  return request;
}

// Fills size (and a digest when the tree had none) from a HEAD of the file's resolve URL.
void complete_from_head(const ClientOptions& options, const std::string& repo_id, const std::string& commit,
                        RepoFile& file, CancelToken* cancel, DownloadProgress* progress) {
  std::string url = resolve_url(options.endpoint, repo_id, commit, file.path);
  for (int hop = 0; hop <= kMaxMetadataRedirects; ++hop) {
    HttpRequest request = api_request(options, url, "HEAD");
    request.follow_redirects = false;
    request.headers.emplace_back("Accept-Encoding", "identity");
    HttpResponse r = http_request(request, options.retry, options.http, cancel, progress);
    bool redirect = r.status >= 300 && r.status < 400;
    if (!redirect) raise_for_status(r, url, {repo_id, commit, file.path});
    std::string size = r.header("x-linked-size");
    if (size.empty() && !redirect) size = r.header("content-length");
    if (size.empty() && redirect) {
      std::string location = r.header("location");
      if (location.empty()) break;
      std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
      curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0);
      if (curl_url_set(u.get(), CURLUPART_URL, location.c_str(), 0) != CURLUE_OK) break;
      char* next = nullptr;
      curl_url_get(u.get(), CURLUPART_URL, &next, 0);
      std::string next_url(next);
      curl_free(next);
      // Like huggingface_hub, only redirects within the hub are followed for metadata.
      if (origin_of(next_url) != origin_of(url)) break;
      url = next_url;
      continue;
    }
    if (size.empty()) break;
    try {
      size_t used = 0;
      file.size = std::stoull(size, &used);
      if (used != size.size()) throw std::invalid_argument(size);
    } catch (const std::exception&) {
      throw DownloadError("HEAD " + url + ": invalid size header '" + size + "'");
    }
    std::string etag = strip_etag(r.header("x-linked-etag"));
    if (etag.empty()) etag = strip_etag(r.header("etag"));
    if (file.lfs_sha256.empty() && file.blob_id.empty()) {
      if (is_hex(etag, 64)) file.lfs_sha256 = lower_hex(etag);
      else if (is_hex(etag, 40)) file.blob_id = lower_hex(etag);
    }
    return;
  }
  throw DownloadError("HEAD " + url + ": the hub reported no size for '" + file.path + "' in repository '" + repo_id +
                      "'");
}

}  // namespace

Digest RepoFile::digest() const {
  Digest d;
  if (!lfs_sha256.empty()) {
    d.kind = DigestKind::Sha256;
    d.value = lfs_sha256;
  } else if (!blob_id.empty()) {
    d.kind = DigestKind::GitBlobSha1;
    d.value = blob_id;
  }
  return d;
}

std::string parse_commit(std::string_view body, const std::string& url) {
  json doc = parse_json(body, url);
  if (!doc.is_object()) throw DownloadError("unexpected response from " + url + ": expected a JSON object");
  auto it = doc.find("sha");
  if (it == doc.end() || !it->is_string()) {
    throw DownloadError("unexpected response from " + url + ": no commit id ('sha') in the repository info");
  }
  std::string sha = it->get<std::string>();
  if (!is_hex(sha, 40)) throw DownloadError("unexpected response from " + url + ": 'sha' is not a 40-hex commit id: '" + sha + "'");
  return lower_hex(sha);
}

std::vector<RepoFile> parse_tree_page(std::string_view body, const std::string& url) {
  json doc = parse_json(body, url);
  if (!doc.is_array()) throw DownloadError("unexpected response from " + url + ": expected a JSON array of tree entries");
  std::vector<RepoFile> files;
  files.reserve(doc.size());
  size_t index = 0;
  for (const json& entry : doc) {
    const std::string where = "tree entry #" + std::to_string(index++) + " from " + url;
    if (!entry.is_object()) throw DownloadError(where + " is not an object");
    auto type = entry.find("type");
    if (type == entry.end() || !type->is_string()) throw DownloadError(where + " has no 'type'");
    if (*type != "file") continue;
    auto path = entry.find("path");
    if (path == entry.end() || !path->is_string() || path->get<std::string>().empty()) {
      throw DownloadError(where + " has no 'path'");
    }
    RepoFile file;
    file.path = path->get<std::string>();
    const std::string at = where + " ('" + file.path + "')";
    if (auto size = entry.find("size"); size != entry.end() && !size->is_null()) file.size = size_field(*size, at);
    if (auto oid = entry.find("oid"); oid != entry.end() && !oid->is_null()) {
      if (!oid->is_string() || !is_hex(oid->get<std::string>(), 40)) throw DownloadError(at + ": 'oid' is not a git SHA-1");
      file.blob_id = lower_hex(oid->get<std::string>());
    }
    if (auto lfs = entry.find("lfs"); lfs != entry.end() && !lfs->is_null()) {
      if (!lfs->is_object()) throw DownloadError(at + ": 'lfs' is not an object");
      auto sha = lfs->find("oid");
      if (sha == lfs->end() || !sha->is_string() || !is_hex(sha->get<std::string>(), 64)) {
        throw DownloadError(at + ": 'lfs.oid' is not a SHA-256");
      }
      file.lfs_sha256 = lower_hex(sha->get<std::string>());
      if (auto lfs_size = lfs->find("size"); lfs_size != lfs->end()) file.size = size_field(*lfs_size, at + " lfs");
    }
    files.push_back(std::move(file));
  }
  return files;
}

std::string next_page_url(const std::string& link, const std::string& current_url) {
  size_t pos = 0;
  while (pos < link.size()) {
    size_t open = link.find('<', pos);
    if (open == std::string::npos) return "";
    size_t close = link.find('>', open);
    if (close == std::string::npos) return "";
    std::string target = link.substr(open + 1, close - open - 1);
    // Parameters run to the next ',' outside a quoted string.
    size_t end = close + 1;
    bool quoted = false;
    while (end < link.size() && (quoted || link[end] != ',')) {
      if (link[end] == '"') quoted = !quoted;
      ++end;
    }
    std::string params = link.substr(close + 1, end - close - 1);
    pos = end + 1;
    // Look for rel=next / rel="next" / rel="next prev" (case-insensitive).
    std::string lowered = params;
    for (auto& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t rel = 0;
    while ((rel = lowered.find("rel", rel)) != std::string::npos) {
      size_t eq = lowered.find_first_not_of(" \t", rel + 3);
      if (eq == std::string::npos || lowered[eq] != '=') {
        rel += 3;
        continue;
      }
      size_t v = lowered.find_first_not_of(" \t", eq + 1);
      if (v == std::string::npos) break;
      std::string value;
      if (lowered[v] == '"') {
        size_t q = lowered.find('"', v + 1);
        value = lowered.substr(v + 1, q == std::string::npos ? std::string::npos : q - v - 1);
      } else {
        size_t e = lowered.find_first_of("; \t", v);
        value = lowered.substr(v, e == std::string::npos ? std::string::npos : e - v);
      }
      size_t token = 0;
      while (token < value.size()) {
        size_t space = value.find(' ', token);
        if (value.substr(token, space == std::string::npos ? std::string::npos : space - token) == "next") {
          std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
          if (curl_url_set(u.get(), CURLUPART_URL, current_url.c_str(), 0) != CURLUE_OK ||
              curl_url_set(u.get(), CURLUPART_URL, target.c_str(), 0) != CURLUE_OK) {
            throw DownloadError("invalid pagination link '" + target + "' from " + current_url);
          }
          char* full = nullptr;
          curl_url_get(u.get(), CURLUPART_URL, &full, 0);
          std::string out(full);
          curl_free(full);
          return out;
        }
        if (space == std::string::npos) break;
        token = space + 1;
      }
      break;
    }
  }
  return "";
}

std::string resolve_commit(const ClientOptions& options, const std::string& repo_id, const std::string& revision,
                           CancelToken* cancel, DownloadProgress* progress) {
  const std::string url = revision_url(options.endpoint, repo_id, revision);
  HttpResponse r = http_request(api_request(options, url), options.retry, options.http, cancel, progress);
  raise_for_status(r, url, {repo_id, revision, ""});
  return parse_commit(r.body, url);
}

void check_file(const ClientOptions& options, const std::string& repo_id, const std::string& commit,
                const std::string& path, CancelToken* cancel, DownloadProgress* progress) {
  const std::string url = resolve_url(options.endpoint, repo_id, commit, path);
  HttpRequest request = api_request(options, url, "HEAD");
  request.follow_redirects = false;
  request.headers.emplace_back("Accept-Encoding", "identity");
  HttpResponse r = http_request(request, options.retry, options.http, cancel, progress);
  if (r.status >= 300 && r.status < 400) return;
  raise_for_status(r, url, {repo_id, commit, path});
}

std::vector<RepoFile> list_files(const ClientOptions& options, const std::string& repo_id, const std::string& commit,
                                 CancelToken* cancel, DownloadProgress* progress) {
  std::vector<RepoFile> files;
  std::set<std::string> seen_paths;
  std::set<std::string> seen_pages;
  std::string url = tree_url(options.endpoint, repo_id, commit);
  for (int page = 0; !url.empty(); ++page) {
    if (page >= kMaxPages || !seen_pages.insert(url).second) {
      throw DownloadError("tree listing of repository '" + repo_id + "' does not end (page " + std::to_string(page + 1) +
                          " repeats or exceeds the limit): " + url);
    }
    HttpResponse r = http_request(api_request(options, url), options.retry, options.http, cancel, progress);
    raise_for_status(r, url, {repo_id, commit, ""});
    for (auto& file : parse_tree_page(r.body, url)) {
      if (seen_paths.insert(file.path).second) files.push_back(std::move(file));
    }
    std::string links;
    auto [first, last] = r.headers.equal_range("link");
    for (auto it = first; it != last; ++it) links += (links.empty() ? "" : ", ") + it->second;
    url = next_page_url(links, url);
  }
  for (auto& file : files) {
    if (file.size == kUnknownSize) complete_from_head(options, repo_id, commit, file, cancel, progress);
  }
  return files;
}

}  // namespace modelagent::hf
