#pragma once
// Exception types of the core. Each maps to a Python exception of the same meaning in
// modelagent._core (see cpp/bindings/module.cpp); messages always name the file, field or URL at fault.

#include <stdexcept>
#include <string>

namespace modelagent {

// Base of every error the core raises on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A storage URI that does not parse (scheme unknown, parts missing or malformed).
class InvalidStorageUri : public Error {
 public:
  using Error::Error;
};

// A model directory without a usable config.json, or a config.json that is malformed.
class ModelConfigError : public Error {
 public:
  using Error::Error;
};

// A safetensors file whose header is malformed, hostile or inconsistent with the file.
class SafetensorsError : public Error {
 public:
  using Error::Error;
};

// A ConfigMap entry (ModelEntry JSON) that cannot be parsed.
class ModelEntryError : public Error {
 public:
  using Error::Error;
};

// Base of every failure to fetch or place a file. Messages name the URL or path at fault.
class DownloadError : public Error {
 public:
  using Error::Error;
};

// The server answered with an HTTP status that cannot succeed on retry (or retries ran out).
class HttpStatusError : public DownloadError {
 public:
  HttpStatusError(const std::string& message, long status, std::string url)
      : DownloadError(message), status_(status), url_(std::move(url)) {}
  long status() const { return status_; }
  const std::string& url() const { return url_; }

 private:
  long status_;
  std::string url_;
};

// 429 responses outlasted the retry budget. retry_after() is the server's last requested wait.
class RateLimitedError : public HttpStatusError {
 public:
  RateLimitedError(const std::string& message, std::string url, double retry_after_seconds)
      : HttpStatusError(message, 429, std::move(url)), retry_after_(retry_after_seconds) {}
  double retry_after() const { return retry_after_; }

 private:
  double retry_after_;
};

// Hugging Face typed errors (dispatched on X-Error-Code, then status; protocols.md section 1.6).
class RepositoryNotFoundError : public HttpStatusError {
 public:
  using HttpStatusError::HttpStatusError;
};
class GatedRepoError : public RepositoryNotFoundError {
 public:
  using RepositoryNotFoundError::RepositoryNotFoundError;
};
class RevisionNotFoundError : public HttpStatusError {
 public:
  using HttpStatusError::HttpStatusError;
};
class EntryNotFoundError : public HttpStatusError {
 public:
  using HttpStatusError::HttpStatusError;
};
class UnauthorizedError : public HttpStatusError {
 public:
  using HttpStatusError::HttpStatusError;
};

// Content did not match its expected digest or size after the retry budget.
class VerificationError : public DownloadError {
 public:
  using DownloadError::DownloadError;
};

// Not enough free space for the plan (checked before any byte is written).
class DiskSpaceError : public DownloadError {
 public:
  using DownloadError::DownloadError;
};

// A destination name that is absolute, contains "..", NUL, is over-long or escapes through a symlink.
class UnsafePathError : public DownloadError {
 public:
  using DownloadError::DownloadError;
};

// Credentials could not be found, read or obtained (config file, key, token endpoint); the message
// names the file, variable or URL at fault.
class CredentialsError : public DownloadError {
 public:
  using DownloadError::DownloadError;
};

// The caller cancelled; partial files are left resumable.
class CancelledError : public DownloadError {
 public:
  using DownloadError::DownloadError;
};

}  // namespace modelagent
