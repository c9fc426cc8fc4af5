#pragma once
// The Hugging Face hub source: turns hf://org/name[@revision] into a DownloadPlan pinned to one commit.
// Protocol facts: /work/shared/reference/protocols.md section 1 (revision and tree APIs, resolve URLs,
// X-Error-Code dispatch). User-facing rules (patterns, default exclusions, token order): docs/huggingface.md.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "modelagent/download_plan.hpp"
#include "modelagent/http_client.hpp"

namespace modelagent::hf {

inline constexpr const char* kDefaultEndpoint = "https://huggingface.co";
inline constexpr const char* kDefaultRevision = "main";

// ---- URIs, environment, URLs (huggingface_uri.cpp) ----

struct RepoRef {
  std::string repo_id;   // "org/name" or a legacy un-namespaced "name"
  std::string revision;  // branch, tag, "refs/pr/N" or a 40-hex commit; "main" when not given
};

// Parses hf://<repo_id>[@<revision>] (split at the first '@'). Throws InvalidStorageUri naming the URI
// and the part at fault: wrong scheme, empty or malformed repo id, empty revision.
RepoRef parse_uri(std::string_view uri);

// True for a full 40-character lower-case hex commit id.
bool is_commit_hash(std::string_view revision);

// HF_ENDPOINT (trailing '/' stripped) or https://huggingface.co.
std::string endpoint_from_env();

// The token to send: `explicit_token` when non-empty, else HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the
// file HF_TOKEN_PATH, else $HF_HOME/token (HF_HOME defaulting to $XDG_CACHE_HOME/huggingface, then
// ~/.cache/huggingface). Empty variables and files count as unset. "" when there is no token.
std::string resolve_token(const std::string& explicit_token);

// RFC 3986 percent-encoding of everything but unreserved characters (and '/' when keep_slash).
std::string percent_encode(std::string_view text, bool keep_slash);

// {endpoint}/api/models/{repo_id}/revision/{revision, fully encoded}
std::string revision_url(const std::string& endpoint, const std::string& repo_id, const std::string& revision);
// {endpoint}/api/models/{repo_id}/tree/{commit, fully encoded}?recursive=true&expand=false
std::string tree_url(const std::string& endpoint, const std::string& repo_id, const std::string& commit);
// {endpoint}/{repo_id}/resolve/{commit, fully encoded}/{path, encoded keeping '/'}
std::string resolve_url(const std::string& endpoint, const std::string& repo_id, const std::string& commit,
                        const std::string& path);

// ---- API responses (huggingface_api.cpp) ----

// One file of a repository at a commit, from the tree API (or a HEAD where the tree lacked the size).
struct RepoFile {
  std::string path;
  uint64_t size = kUnknownSize;
  std::string blob_id;     // git blob SHA-1 (hex), "" when unknown
  std::string lfs_sha256;  // SHA-256 (hex) of the content for LFS files, "" otherwise

  // Sha256 for LFS files, GitBlobSha1 for small files, None when neither is known.
  Digest digest() const;
};

// The "sha" of a repo-info response. Throws DownloadError naming `url` when the body is not a JSON object
// with a 40-hex "sha".
std::string parse_commit(std::string_view body, const std::string& url);

// File entries of one tree page (directories skipped). Throws DownloadError naming `url` and the entry
// index for malformed JSON or entries (missing path, bad oid/size).
std::vector<RepoFile> parse_tree_page(std::string_view body, const std::string& url);

// The rel="next" target of an RFC 8288 Link header, resolved against `current_url`; "" when absent.
std::string next_page_url(const std::string& link_header, const std::string& current_url);

// ---- errors (huggingface_errors.cpp) ----

struct ErrorContext {
  std::string repo_id;
  std::string revision;
  std::string path;  // file within the repo, when the request was about one
};

// Returns for 1xx/2xx; otherwise throws the typed error of protocols.md section 1.6 (X-Error-Code first,
// then status): RevisionNotFoundError, EntryNotFoundError, GatedRepoError, RepositoryNotFoundError,
// UnauthorizedError (401 "Invalid credentials"), RateLimitedError (429), else HttpStatusError.
void raise_for_status(const HttpResponse& response, const std::string& url, const ErrorContext& context);

// ---- the hub client (huggingface_api.cpp) ----
// Every call takes an optional `progress` whose retries and rate-limit counters its API requests add to
// (see http_request).

struct ClientOptions {
  std::string endpoint = kDefaultEndpoint;
  std::string token;  // "" = anonymous
  RetryPolicy retry;
  DownloadOptions http;  // TLS, timeouts and user agent for the API calls
  double request_timeout_seconds = 60;
};

// GET the revision API; returns the 40-hex commit the revision points to now.
std::string resolve_commit(const ClientOptions& options, const std::string& repo_id, const std::string& revision,
                           CancelToken* cancel = nullptr,
                           DownloadProgress* progress = nullptr);

// Every file of the repository at `commit`, following Link pagination. Files whose size the tree omits
// are completed with a HEAD of their resolve URL.
std::vector<RepoFile> list_files(const ClientOptions& options, const std::string& repo_id,
                                 const std::string& commit, CancelToken* cancel = nullptr,
                                 DownloadProgress* progress = nullptr);

// HEAD of one file's resolve URL (redirects not followed). Returns when the hub would serve the file;
// otherwise throws the typed error it answers with (GatedRepoError, EntryNotFoundError, ...). Used to
// explain a file the engine could not fetch.
void check_file(const ClientOptions& options, const std::string& repo_id, const std::string& commit,
                const std::string& path, CancelToken* cancel = nullptr, DownloadProgress* progress = nullptr);

// ---- selection and plan (huggingface_plan.cpp) ----

struct FileFilter {
  std::vector<std::string> include;  // empty = everything
  std::vector<std::string> exclude;
  bool default_excludes = true;      // skip duplicate weight formats when safetensors are present
};

struct ExcludedFile {
  std::string path;
  std::string reason;  // "not included", "excluded by pattern '<p>'", "duplicate weight format", "reserved path"
};

struct Selection {
  std::vector<RepoFile> selected;
  std::vector<ExcludedFile> excluded;
};

// Directory under the destination that holds modelagent's own bookkeeping; repo files inside it are skipped.
inline constexpr const char* kReservedDirectory = ".modelagent";

// True when the default exclusions would skip `path` given the whole repository listing.
bool is_duplicate_weight_format(const std::string& path, const std::vector<RepoFile>& files);

// Applies the filter. Throws std::invalid_argument naming a malformed pattern.
Selection select_files(const std::vector<RepoFile>& files, const FileFilter& filter);

// One planned file per selected file: resolve URL at `commit`, Authorization when a token is given,
// size and digest from the listing.
DownloadPlan build_plan(const std::string& endpoint, const std::string& repo_id, const std::string& commit,
                        const std::vector<RepoFile>& files, const std::string& token);

}  // namespace modelagent::hf
