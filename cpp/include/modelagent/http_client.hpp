#pragma once
// A small blocking HTTP client (libcurl easy) for API calls: JSON listings, HEAD metadata.
// Bulk data goes through the download engine instead. Retries transient failures itself.

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "modelagent/download_plan.hpp"
#include "modelagent/request_signer.hpp"

namespace modelagent {

struct HttpRequest {
  std::string method = "GET";   // GET, HEAD, or POST/PUT with a body
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::shared_ptr<const RequestSigner> signer;  // signs every attempt to the original origin; may be null
  bool follow_redirects = true;  // Authorization is dropped when a redirect changes host
  double timeout_seconds = 30;
};

struct HttpResponse {
  long status = 0;
  std::string effective_url;
  // Header names lower-cased; the last response's headers when redirects were followed.
  std::multimap<std::string, std::string> headers;
  std::string body;

  // First value of a header (name case-insensitive), or "" when absent.
  std::string header(const std::string& name) const;
};

// Retry policy shared by the HTTP client and the download engine.
struct RetryPolicy {
  int max_attempts = 6;
  double base_seconds = 0.5;
  double cap_seconds = 30;
  double max_total_seconds = 300;  // stop retrying once this much time was spent waiting
};

// True for statuses worth retrying: 408, 429, 500, 502, 503, 504 (and any other 5xx).
bool is_retryable_status(long status);

// Seconds the server asked us to wait, from `RateLimit: ...;r=0;t=N` (IETF draft) when the
// remaining quota is 0, else `Retry-After: N` (seconds) or an HTTP-date; negative when absent.
double server_requested_wait(const HttpResponse& response);

// Capped exponential backoff with full jitter for the given 1-based attempt.
double backoff_seconds(const RetryPolicy& policy, int attempt);

// Performs the request, retrying connect errors, resets and retryable statuses per policy (honouring
// the server-requested wait). Returns the final response, whatever its status; throws DownloadError
// only when no response could be obtained (naming the URL). Verifies TLS; honours proxy variables.
// With `progress`, every retried 429 adds 1 to rate_limited and retries and its wait to
// rate_limit_wait_seconds; other retried statuses and transient errors add 1 to retries. A final answer
// that is returned (or an error that is thrown) without a retry is not counted.
HttpResponse http_request(const HttpRequest& request, const RetryPolicy& policy = {},
                          const DownloadOptions& options = {}, CancelToken* cancel = nullptr,
                          DownloadProgress* progress = nullptr);

}  // namespace modelagent
