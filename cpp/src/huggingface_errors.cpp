// Hub error responses → typed exceptions (protocols.md section 1.6: X-Error-Code first, then status).

#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/huggingface.hpp"

namespace modelagent::hf {

namespace {

constexpr const char* kInvalidCredentials = "Invalid credentials in Authorization header";

std::string request_id(const HttpResponse& r) {
  for (const char* name : {"x-request-id", "x-amzn-trace-id", "x-amz-cf-id"}) {
    std::string v = r.header(name);
    if (!v.empty()) return v;
  }
  return "";
}

// " (HTTP 404, <server message>, request id X) for <url>"
std::string details(const HttpResponse& r, const std::string& url) {
  std::string out = " (HTTP " + std::to_string(r.status);
  std::string message = r.header("x-error-message");
  if (!message.empty()) out += ": " + message;
  std::string id = request_id(r);
  if (!id.empty()) out += "; request id " + id;
  return out + ") at " + url;
}

std::string repo_words(const ErrorContext& c) { return "repository '" + c.repo_id + "'"; }

std::string body_excerpt(const HttpResponse& r) {
  if (r.body.empty()) return "";
  std::string excerpt = r.body.substr(0, 200);
  for (auto& ch : excerpt) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return ": " + excerpt + (r.body.size() > 200 ? "..." : "");
}

}  // namespace

void raise_for_status(const HttpResponse& r, const std::string& url, const ErrorContext& c) {
  if (r.status >= 100 && r.status < 300) return;
  const std::string code = r.header("x-error-code");
  const std::string message = r.header("x-error-message");
  const std::string tail = details(r, url);

  if (code == "RevisionNotFound") {
    throw RevisionNotFoundError("revision '" + c.revision + "' not found in " + repo_words(c) + tail, r.status, url);
  }
  if (code == "EntryNotFound") {
    std::string what = c.path.empty() ? std::string("path") : "file '" + c.path + "'";
    throw EntryNotFoundError(what + " not found in " + repo_words(c) + " at revision '" + c.revision + "'" + tail,
                             r.status, url);
  }
  if (code == "GatedRepo") {
    throw GatedRepoError(repo_words(c) + " is gated: accept its conditions on the hub and use a token of an " +
                             "account with access" + tail,
                         r.status, url);
  }
  if (r.status == 401 && message == kInvalidCredentials) {
    throw UnauthorizedError("the Hugging Face token was rejected for " + repo_words(c) + " (check HF_TOKEN or the " +
                                "token given)" + tail,
                            r.status, url);
  }
  if (code == "RepoNotFound" || r.status == 401) {
    throw RepositoryNotFoundError(repo_words(c) + " not found, or private without a token that grants access" + tail,
                                  r.status, url);
  }
  if (r.status == 429) {
    double wait = server_requested_wait(r);
    throw RateLimitedError("rate limited by the hub while accessing " + repo_words(c) +
                               (wait >= 0 ? " (server asks to wait " + std::to_string(static_cast<long>(wait)) + " s)"
                                          : std::string()) +
                               tail,
                           url, wait < 0 ? 0 : wait);
  }
  if (r.status == 403 && message == "Access to this resource is disabled.") {
    throw HttpStatusError(repo_words(c) + " is disabled on the hub" + tail, r.status, url);
  }
  throw HttpStatusError("unexpected response for " + repo_words(c) + tail + body_excerpt(r), r.status, url);
}

}  // namespace modelagent::hf
