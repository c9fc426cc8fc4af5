#pragma once
// Per-request authentication for sources whose credentials must be computed for each request
// (OCI request signatures, AWS SigV4, short-lived tokens). The download engine and the HTTP client call
// the signer before every attempt, so the date in a signature is always fresh and a refreshed token is
// picked up mid-download. Requests that were redirected to another origin are never signed.

#include <string>
#include <utility>
#include <vector>

namespace modelagent {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

class RequestSigner {
 public:
  virtual ~RequestSigner() = default;

  // Adds the authentication headers for one request to `headers` (which already holds the request's
  // other headers; the signer may also add headers it signs, such as date or host). `url` is absolute;
  // `body` is the request body ("" for GET/HEAD). Must be thread-safe: engines on several threads may
  // sign concurrently. Throws CredentialsError (errors.hpp) naming what could not be obtained.
  virtual void sign(const std::string& method, const std::string& url, const std::string& body,
                    HeaderList& headers) const = 0;

  // Short description for messages and logs, e.g. "OCI user principal (profile DEFAULT)".
  virtual std::string describe() const = 0;
};

}  // namespace modelagent
