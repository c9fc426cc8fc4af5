// Retry decisions shared by the HTTP client and the download engine.

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>

#include "modelagent/ascii_text.hpp"
#include "modelagent/http_client.hpp"

namespace modelagent {

namespace {

// Value of `key=<number>` inside an IETF RateLimit header such as `"api";r=0;t=55`; -1 if absent.
double rate_limit_param(const std::string& header, char key) {
  for (size_t i = 0; i + 2 < header.size(); ++i) {
    bool at_boundary = i == 0 || header[i - 1] == ';' || header[i - 1] == ',' || header[i - 1] == ' ';
    if (at_boundary && std::tolower(static_cast<unsigned char>(header[i])) == key && header[i + 1] == '=') {
      char* end = nullptr;
      double v = std::strtod(header.c_str() + i + 2, &end);
      if (end != header.c_str() + i + 2) return v;
    }
  }
  return -1;
}

}  // namespace

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(ascii_lower(name));
  return it == headers.end() ? std::string() : it->second;
}

bool is_retryable_status(long status) { return status == 408 || status == 429 || status >= 500; }

double server_requested_wait(const HttpResponse& response) {
  std::string rate_limit = response.header("ratelimit");
  if (!rate_limit.empty()) {
    double remaining = rate_limit_param(rate_limit, 'r');
    double reset = rate_limit_param(rate_limit, 't');
    if (remaining == 0 && reset >= 0) return reset;
  }
  std::string retry_after = response.header("retry-after");
  if (retry_after.empty()) return -1;
  char* end = nullptr;
  double seconds = std::strtod(retry_after.c_str(), &end);
  if (end != retry_after.c_str() && *end == '\0') return std::max(0.0, seconds);
  // HTTP-date form.
  time_t when = curl_getdate(retry_after.c_str(), nullptr);
  if (when < 0) return -1;
  double delta = std::difftime(when, std::time(nullptr));
  return std::max(0.0, delta);
}

double backoff_seconds(const RetryPolicy& policy, int attempt) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  double ceiling = std::min(policy.cap_seconds, policy.base_seconds * std::pow(2.0, std::max(0, attempt - 1)));
  std::uniform_real_distribution<double> jitter(ceiling / 2, ceiling);
  return jitter(rng);
}

}  // namespace modelagent
