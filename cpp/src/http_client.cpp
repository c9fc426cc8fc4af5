// Blocking HTTP client for API calls (libcurl easy): manual redirects that drop Authorization when
// the origin changes, TLS verification, proxy variables (libcurl reads them), retries per RetryPolicy,
// cancellation through a transfer-progress callback.

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "modelagent/ascii_text.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/http_client.hpp"
#include "modelagent/version.hpp"

namespace modelagent {

namespace {

// API responses are JSON listings; anything bigger is a misbehaving server, not data to keep.
constexpr size_t kMaxBodyBytes = 512ull << 20;
constexpr int kMaxRedirects = 10;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One easy handle per thread, reset between requests, so its connection cache is reused.
CURL* thread_handle() {
  struct Holder {
    CURL* handle = nullptr;
    ~Holder() {
      if (handle) curl_easy_cleanup(handle);
    }
  };
  thread_local Holder holder;
  if (!holder.handle) {
    holder.handle = curl_easy_init();
    if (!holder.handle) throw DownloadError("libcurl: curl_easy_init failed");
  } else {
    curl_easy_reset(holder.handle);
  }
  return holder.handle;
}

struct TransferState {
  HttpResponse* response;
  CancelToken* cancel;
  bool body_too_large = false;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<TransferState*>(user);
  size_t n = size * count;
  if (state->response->body.size() + n > kMaxBodyBytes) {
    state->body_too_large = true;
    return 0;
  }
  state->response->body.append(data, n);
  return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<TransferState*>(user);
  size_t n = size * count;
  std::string line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    state->response->headers.clear();  // a new response (e.g. after 100 Continue or a proxy CONNECT)
    return n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos && colon > 0) {
    state->response->headers.emplace(ascii_lower(trim_space(line.substr(0, colon))),
                                     trim_space(line.substr(colon + 1)));
  }
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* state = static_cast<TransferState*>(user);
  return state->cancel && state->cancel->is_cancelled() ? 1 : 0;
}

bool is_transient(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;

std::string url_part(CURLU* u, CURLUPart part) {
  char* value = nullptr;
  if (curl_url_get(u, part, &value, part == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0) != CURLUE_OK) return "";
  std::string out(value);
  curl_free(value);
  return out;
}

// Resolves a Location header against the URL it came from.
std::string resolve_location(const std::string& base, const std::string& location) {
  UrlPtr u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK ||
      curl_url_set(u.get(), CURLUPART_URL, location.c_str(), 0) != CURLUE_OK) {
    throw DownloadError("redirect from " + base + " to an invalid location '" + location + "'");
  }
  char* full = nullptr;
  if (curl_url_get(u.get(), CURLUPART_URL, &full, 0) != CURLUE_OK) {
    throw DownloadError("redirect from " + base + " to an invalid location '" + location + "'");
  }
  std::string out(full);
  curl_free(full);
  return out;
}

bool same_origin(const std::string& a, const std::string& b) {
  UrlPtr ua(curl_url()), ub(curl_url());
  if (curl_url_set(ua.get(), CURLUPART_URL, a.c_str(), 0) != CURLUE_OK ||
      curl_url_set(ub.get(), CURLUPART_URL, b.c_str(), 0) != CURLUE_OK) {
    return false;
  }
  return ascii_lower(url_part(ua.get(), CURLUPART_SCHEME)) == ascii_lower(url_part(ub.get(), CURLUPART_SCHEME)) &&
         ascii_lower(url_part(ua.get(), CURLUPART_HOST)) == ascii_lower(url_part(ub.get(), CURLUPART_HOST)) &&
         url_part(ua.get(), CURLUPART_PORT) == url_part(ub.get(), CURLUPART_PORT);
}

std::string ca_bundle_for(const DownloadOptions& options) {
  if (!options.ca_bundle.empty()) return options.ca_bundle;
  for (const char* name : {"CURL_CA_BUNDLE", "SSL_CERT_FILE"}) {
    const char* value = std::getenv(name);
    if (value && *value) return value;
  }
  return "";
}

struct Attempt {
  CURLcode code = CURLE_OK;
  std::string error;  // libcurl's message when code != CURLE_OK
  bool body_too_large = false;
  HttpResponse response;
  HeaderList sent_headers;  // the last hop's request headers (signed when it went to the original origin)
};

Attempt perform_once(const std::string& method, const std::string& url,
                     const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body,
                     double timeout_seconds, const DownloadOptions& options, CancelToken* cancel) {
  global_init();
  CURL* h = thread_handle();
  Attempt attempt;
  TransferState state{&attempt.response, cancel};
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_slist* list = nullptr;
  bool has_accept_encoding = false;
  bool has_user_agent = false;
  for (const auto& [name, value] : headers) {
    std::string lname = ascii_lower(name);
    has_accept_encoding |= lname == "accept-encoding";
    has_user_agent |= lname == "user-agent";
    list = curl_slist_append(list, (name + ": " + value).c_str());
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> list_guard(list, curl_slist_free_all);

  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  if (!has_user_agent) {
    std::string ua = options.user_agent.empty() ? std::string("modelagent/") + kVersion : options.user_agent;
    curl_easy_setopt(h, CURLOPT_USERAGENT, ua.c_str());
  }
  if (!has_accept_encoding) curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
  std::string ca = ca_bundle_for(options);
  if (!ca.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ca.c_str());
  if (options.connect_timeout_seconds > 0) {
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout_seconds * 1000));
  }
  if (timeout_seconds > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_seconds * 1000));
  if (options.low_speed_timeout_seconds > 0) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.low_speed_timeout_seconds));
  }
  if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &state);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &state);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);

  attempt.code = curl_easy_perform(h);
  attempt.body_too_large = state.body_too_large;
  attempt.error = errbuf[0] ? errbuf : curl_easy_strerror(attempt.code);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &attempt.response.status);
  attempt.response.effective_url = url;
  // The handle stays cached for reuse; it must not keep pointers into this frame.
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  return attempt;
}

// One attempt including the redirect chain. Authorization (and Cookie) is removed once the chain
// leaves the origin of the original URL.
Attempt perform_following(const HttpRequest& request, const DownloadOptions& options, CancelToken* cancel) {
  std::string method = request.method;
  std::string url = request.url;
  std::string body = request.body;
  auto headers = request.headers;
  for (int hops = 0;; ++hops) {
    auto hop_headers = headers;
    if (request.signer && same_origin(request.url, url)) request.signer->sign(method, url, body, hop_headers);
    Attempt attempt = perform_once(method, url, hop_headers, body, request.timeout_seconds, options, cancel);
    attempt.sent_headers = std::move(hop_headers);
    if (attempt.code != CURLE_OK || !request.follow_redirects || !is_redirect(attempt.response.status)) {
      return attempt;
    }
    std::string location = attempt.response.header("location");
    if (location.empty()) return attempt;
    if (hops >= kMaxRedirects) {
      throw DownloadError(method + " " + request.url + ": more than " + std::to_string(kMaxRedirects) +
                          " redirects (last to " + url + ")");
    }
    std::string next = resolve_location(url, location);
    if (!same_origin(request.url, next)) {
      std::erase_if(headers, [](const auto& kv) {
        std::string name = ascii_lower(kv.first);
        return name == "authorization" || name == "cookie";
      });
    }
    if (attempt.response.status == 303 && method != "HEAD") {
      method = "GET";
      body.clear();
    }
    url = next;
  }
}

// Sleeps up to `seconds`, waking early (returning false) when cancelled.
bool cancellable_sleep(double seconds, CancelToken* cancel) {
  using clock = std::chrono::steady_clock;
  const auto end = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
  while (clock::now() < end) {
    if (cancel && cancel->is_cancelled()) return false;
    clock::duration left = end - clock::now();
    std::this_thread::sleep_for(std::min<clock::duration>(left, std::chrono::milliseconds(50)));
  }
  return !(cancel && cancel->is_cancelled());
}

[[noreturn]] void throw_cancelled(const HttpRequest& request) {
  throw CancelledError("cancelled: " + request.method + " " + request.url);
}

}  // namespace

HttpResponse http_request(const HttpRequest& request, const RetryPolicy& policy, const DownloadOptions& options,
                          CancelToken* cancel, DownloadProgress* progress) {
  if (request.url.empty()) throw DownloadError("HTTP request without a URL");
  double waited = 0;
  bool renewed_credentials = false;
  const int max_attempts = std::max(1, policy.max_attempts);
  for (int attempt_no = 1;; ++attempt_no) {
    if (cancel && cancel->is_cancelled()) throw_cancelled(request);
    Attempt attempt = perform_following(request, options, cancel);
    double wait = 0;
    if (attempt.code != CURLE_OK) {
      if (attempt.code == CURLE_ABORTED_BY_CALLBACK && cancel && cancel->is_cancelled()) throw_cancelled(request);
      std::string what = request.method + " " + request.url + ": ";
      if (attempt.body_too_large) {
        throw DownloadError(what + "response body larger than " + std::to_string(kMaxBodyBytes >> 20) + " MiB");
      }
      if (!is_transient(attempt.code)) throw DownloadError(what + attempt.error);
      wait = backoff_seconds(policy, attempt_no);
      if (attempt_no >= max_attempts || waited + wait > policy.max_total_seconds) {
        throw DownloadError(what + attempt.error + " (gave up after " + std::to_string(attempt_no) +
                            (attempt_no == 1 ? " attempt)" : " attempts)"));
      }
    } else if (is_retryable_status(attempt.response.status)) {
      if (attempt_no >= max_attempts) return attempt.response;
      wait = server_requested_wait(attempt.response);
      if (wait < 0) wait = backoff_seconds(policy, attempt_no);
      if (waited + wait > policy.max_total_seconds) return attempt.response;
    } else if (request.signer && !renewed_credentials && same_origin(request.url, attempt.response.effective_url) &&
               rejects_credentials(attempt.response.status, attempt.response.body, request.method)) {
      // A session token revoked or expired early: renew it and try once more, right away.
      renewed_credentials = true;
      try {
        if (!request.signer->renew_after_rejection(attempt.sent_headers)) return attempt.response;
      } catch (const CredentialsError& e) {
        throw CredentialsError(request.method + " " + request.url + " answered HTTP " +
                               std::to_string(attempt.response.status) + " and renewing the credentials (" +
                               request.signer->describe() + ") failed: " + e.what());
      }
      continue;
    } else {
      return attempt.response;
    }
    if (progress) {
      progress->retries.fetch_add(1);
      if (attempt.code == CURLE_OK && attempt.response.status == 429) {
        progress->rate_limited.fetch_add(1);
        progress->rate_limit_wait_seconds.fetch_add(wait);
      }
    }
    if (!cancellable_sleep(wait, cancel)) throw_cancelled(request);
    waited += wait;
  }
}

}  // namespace modelagent
