#pragma once
// Per-request authentication for sources whose credentials must be computed for each request
// (OCI request signatures, AWS SigV4, short-lived tokens). The download engine and the HTTP client call
// the signer before every attempt, so the date in a signature is always fresh and a refreshed token is
// picked up mid-download. Requests that were redirected to another origin are never signed.

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelagent {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// The value of the Authorization header in `headers` (name compared case-insensitively), "" when absent.
inline std::string authorization_of(const HeaderList& headers) {
  for (const auto& [name, value] : headers) {
    if (name.size() == 13 && std::equal(name.begin(), name.end(), "authorization", [](char a, char b) {
          return (a >= 'A' && a <= 'Z' ? a + 32 : a) == b;
        })) {
      return value;
    }
  }
  return "";
}

// Whether an answer says the credentials a request was signed with may no longer be good: 401 (OCI's
// NotAuthenticated, bearer tokens), S3's 400/403 whose error code is about an expired session token, and
// a bodiless 400/403 to a HEAD (S3 sends no error document for HEAD, so its code is unknown).
inline bool rejects_credentials(long status, std::string_view body, std::string_view method = "GET") {
  if (status == 401) return true;
  if (status != 400 && status != 403) return false;
  if (method == "HEAD" && body.empty()) return true;
  for (std::string_view code : {"<Code>ExpiredToken</Code>", "<Code>TokenRefreshRequired</Code>", "<Code>InvalidToken</Code>"}) {
    if (body.find(code) != std::string_view::npos) return true;
  }
  return false;
}

class RequestSigner {
 public:
  virtual ~RequestSigner() = default;

  // Adds the authentication headers for one request to `headers` (which already holds the request's
  // other headers; the signer may also add headers it signs, such as date or host). `url` is absolute;
  // `body` is the request body ("" for GET/HEAD). Must be thread-safe: engines on several threads may
  // sign concurrently. Throws CredentialsError (errors.hpp) naming what could not be obtained.
  virtual void sign(const std::string& method, const std::string& url, const std::string& body,
                    HeaderList& headers) const = 0;

  // Called after the server rejected the credentials of a request this signer signed (see
  // rejects_credentials; at most once per request or range). `rejected` holds the headers that request was
  // sent with. Renews the credentials when they can be renewed (a session token revoked or expired early)
  // and returns true when one more attempt may succeed; false (the default) for fixed keys. Thread-safe:
  // when the rejected request was signed with credentials that were already replaced (the other ranges of
  // a download come back 401 at about the same time), returns true without renewing again. Throws
  // CredentialsError when renewing fails.
  virtual bool renew_after_rejection(const HeaderList& rejected) const {
    (void)rejected;
    return false;
  }

  // Short description for messages and logs, e.g. "OCI user principal (profile DEFAULT)".
  virtual std::string describe() const = 0;
};

}  // namespace modelagent
