#pragma once
// The S3 source (s3://bucket[@region]/prefix): AWS Signature Version 4 as a RequestSigner, the credential
// chain (explicit Secret data, environment, web identity through STS, shared credentials/config files),
// region and endpoint resolution (AWS, or any S3-compatible store, virtual-hosted or path-style),
// ListObjectsV2 with a small strict XML reader, S3 error responses, and the plan (keys -> paths, ETags ->
// digests). Operator documentation: docs/s3.md.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modelagent/download_plan.hpp"
#include "modelagent/http_client.hpp"
#include "modelagent/request_signer.hpp"
#include "modelagent/storage_uri.hpp"

namespace modelagent::s3 {

// ---------------------------------------------------------------------------------------------------
// Encoding and hashing helpers
// ---------------------------------------------------------------------------------------------------

// AWS URI encoding: every byte except A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex); '/' is kept
// when keep_slash (object key paths) and encoded otherwise (query names and values).
std::string uri_encode(std::string_view text, bool keep_slash);
// Decodes %XX (and '+' as a space when plus_is_space); throws std::invalid_argument on a bad escape.
std::string uri_decode(std::string_view text, bool plus_is_space);
std::string sha256_hex(std::string_view data);
// Raw HMAC-SHA256.
std::string hmac_sha256(std::string_view key, std::string_view data);

// ---------------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------------

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  // When temporary credentials stop working; nullopt = never.
  std::optional<std::chrono::system_clock::time_point> expiration;
};

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Current credentials (refreshed when needed). Thread-safe. Throws CredentialsError.
  virtual Credentials get() const = 0;
  // Where they come from, e.g. "environment (AWS_ACCESS_KEY_ID)"; never contains a secret.
  virtual std::string describe() const = 0;
  // Obtains new credentials after S3 rejected a request signed with `rejected_access_key_id` (see
  // RequestSigner::renew_after_rejection); true without a new fetch when those were already replaced;
  // false when they cannot be renewed.
  virtual bool renew(const std::string& rejected_access_key_id) const {
    (void)rejected_access_key_id;
    return false;
  }
};

class StaticCredentialsProvider : public CredentialsProvider {
 public:
  StaticCredentialsProvider(Credentials credentials, std::string description);
  Credentials get() const override { return credentials_; }
  std::string describe() const override { return description_; }

 private:
  Credentials credentials_;
  std::string description_;
};

// Looks up an environment variable; nullopt when unset. Tests pass their own.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_environment();

// AssumeRoleWithWebIdentity through STS (unsigned query request, XML answer). The token file is read
// on every refresh (Kubernetes rotates it); credentials are refreshed 5 minutes before they expire (a
// failed early refresh keeps the current keys until 30 seconds before their expiry). While one thread
// refreshes keys that still work, the others keep signing with them instead of waiting for STS.
class WebIdentityCredentialsProvider : public CredentialsProvider {
 public:
  struct Config {
    std::string token_file;
    std::string role_arn;
    std::string session_name;  // default "modelagent-<epoch seconds>"
    std::string sts_endpoint;  // e.g. https://sts.us-east-1.amazonaws.com
    DownloadOptions http;
    RetryPolicy retry;
  };
  explicit WebIdentityCredentialsProvider(Config config);
  Credentials get() const override;
  std::string describe() const override;
  bool renew(const std::string& rejected_access_key_id) const override;

 private:
  Credentials fetch() const;
  Config config_;
  mutable std::mutex fetch_mutex_;  // one STS call at a time; held during the call
  mutable std::mutex state_mutex_;  // guards cached_; never held during a call
  mutable std::optional<Credentials> cached_;
};

// Parses AssumeRoleWithWebIdentity's XML answer (exposed for tests). `url` names the source in errors.
Credentials parse_assume_role_response(std::string_view xml, const std::string& url);

// An INI file as the AWS CLI reads it: sections -> key -> value (keys lower-cased, values trimmed).
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
// Throws CredentialsError naming the file on a line that is neither a section, key = value, comment
// nor the continuation of a nested value.
IniFile parse_ini(std::string_view text, const std::string& file);

struct ChainInputs {
  // Decoded Secret data of the model (aws_access_key_id, ... or AWS_ACCESS_KEY_ID, ...); may be empty.
  std::map<std::string, std::string> secret;
  std::string profile;  // parameter; else AWS_PROFILE; else "default"
  std::string region;   // resolved region (regional STS endpoint)
  EnvLookup env = process_environment();
  DownloadOptions http;
  RetryPolicy retry;
};

// The first source that yields credentials: Secret data, environment, web identity, shared credentials
// file, config file (profile section). A source that is configured but broken (half a key pair, an
// unreadable token file, a missing named profile) throws CredentialsError naming the file, variable or
// URL instead of falling through. When nothing is configured: CredentialsError listing what was tried.
std::shared_ptr<const CredentialsProvider> resolve_credentials(const ChainInputs& inputs);

// ---------------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------------

// What one signature was computed from (for tests and debugging).
struct SigningResult {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;
  std::string authorization;
};

// AWS Signature Version 4 (AWS4-HMAC-SHA256). Adds x-amz-date, x-amz-content-sha256 (UNSIGNED-PAYLOAD for
// bodiless GET/HEAD when unsigned_payload, else the SHA-256 of the body), x-amz-security-token for
// session credentials, and Authorization. Signed headers: host, every x-amz-* header, and content-md5,
// content-type and range when present in the given headers. The URL path is used as it is (already
// URI-encoded, S3 style: no second encoding); the query is decoded and re-encoded, then sorted.
class SigV4Signer : public RequestSigner {
 public:
  SigV4Signer(std::shared_ptr<const CredentialsProvider> credentials, std::string region,
              std::string service = "s3", bool unsigned_payload = true);

  void sign(const std::string& method, const std::string& url, const std::string& body,
            HeaderList& headers) const override;
  std::string describe() const override;
  bool renew_after_rejection(const HeaderList& rejected) const override;

  // Signs as of `when` with the given credentials (deterministic; used by sign() and by tests).
  SigningResult sign_at(const std::string& method, const std::string& url, const std::string& body,
                        HeaderList& headers, std::chrono::system_clock::time_point when,
                        const Credentials& credentials) const;

  const std::string& region() const { return region_; }
  const CredentialsProvider& credentials() const { return *credentials_; }

 private:
  std::shared_ptr<const CredentialsProvider> credentials_;
  std::string region_;
  std::string service_;
  bool unsigned_payload_;
};

// "20130524T000000Z" for a time point (UTC).
std::string amz_date(std::chrono::system_clock::time_point when);
// Inverse of amz_date and of ISO 8601 "2019-11-01T00:00:00Z"/"...00.000Z"; nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);

// ---------------------------------------------------------------------------------------------------
// Minimal XML (only what S3 and STS answer)
// ---------------------------------------------------------------------------------------------------

struct XmlElement {
  std::string name;  // local name (namespace prefix removed)
  std::string text;  // character data directly inside, entities decoded
  std::vector<XmlElement> children;

  const XmlElement* child(std::string_view local_name) const;
  std::vector<const XmlElement*> children_named(std::string_view local_name) const;
};

// Parses one document: optional declaration, comments, processing instructions, elements with attributes
// (ignored), character data, CDATA, the five named entities and numeric references. No DTDs.
// Throws DownloadError "<what>: malformed XML (...) at offset N" on anything else.
XmlElement parse_xml(std::string_view text, const std::string& what);

// ---------------------------------------------------------------------------------------------------
// Configuration, listing, errors, plan
// ---------------------------------------------------------------------------------------------------

struct ResolvedConfig {
  std::string bucket;
  std::string prefix;
  std::string region;
  std::string endpoint;  // scheme://host[:port] without trailing '/'
  bool path_style = false;
  std::string profile;

  // https://bucket.s3.region.amazonaws.com/ or <endpoint>/bucket/ (path-style); ends with '/'.
  std::string bucket_url() const;
  // bucket_url() + URI-encoded key.
  std::string object_url(std::string_view key) const;
};

struct SourceParameters {
  std::string region;
  std::string endpoint;
  std::string path_style;  // "", "true"/"false" (also 1/0, yes/no)
  std::string profile;
};

// Region: URI @region > parameter > AWS_REGION / AWS_DEFAULT_REGION > config file of the profile >
// us-east-1. Endpoint: parameter > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL > AWS. Path-style: parameter,
// else true for a custom endpoint or a bucket name with dots. Throws InvalidStorageUri / CredentialsError
// (unreadable config file) naming what is wrong.
ResolvedConfig resolve_config(const S3StorageUri& uri, const SourceParameters& parameters,
                              const EnvLookup& env = process_environment());

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;  // as listed, quotes included
  std::string storage_class;
};

struct ListPage {
  std::vector<ObjectInfo> objects;
  bool truncated = false;
  std::string next_continuation_token;
};

// Parses a ListObjectsV2 answer; keys are URL-decoded when the answer says EncodingType url.
// Throws DownloadError naming `url` when the document is malformed or lacks a required element.
ListPage parse_list_objects_v2(std::string_view xml, const std::string& url);

// "<Code>: <Message>" of an S3/STS error document, or "" when the body is not one.
std::string describe_error_body(std::string_view body);
// Throws HttpStatusError naming the URL, the bucket (for NoSuchBucket) and the S3 error code.
[[noreturn]] void throw_s3_error(const HttpResponse& response, const std::string& method, const std::string& url,
                                 const std::string& bucket);

class Client {
 public:
  Client(ResolvedConfig config, std::shared_ptr<const SigV4Signer> signer, DownloadOptions http = {},
         RetryPolicy retry = {}, CancelToken* cancel = nullptr, DownloadProgress* progress = nullptr);

  // Every object under the prefix (all pages, `max_keys` per page, 1..1000).
  std::vector<ObjectInfo> list_objects(int max_keys = 1000) const;
  // HEAD of one object, or with `part_number` > 0 of that part of a multipart object (Content-Length is the
  // part's size, x-amz-mp-parts-count the number of parts); throws HttpStatusError on a non-2xx answer.
  HttpResponse head_object(const std::string& key, int part_number = 0) const;

  const ResolvedConfig& config() const { return config_; }
  const std::shared_ptr<const SigV4Signer>& signer() const { return signer_; }

 private:
  ResolvedConfig config_;
  std::shared_ptr<const SigV4Signer> signer_;
  DownloadOptions http_;
  RetryPolicy retry_;
  CancelToken* cancel_;
  DownloadProgress* progress_;  // retries and 429s of the listing and HEAD calls are counted here; may be null
};

// Destination path of a key: the prefix (a directory: "models/llama" keeps "models/llama/x" and
// "models/llama" itself is not matched by "models/llama2/x") is removed from the start. nullopt for
// folder markers (keys ending in '/') and keys outside the prefix. Throws UnsafePathError naming the key
// when the path is unsafe (absolute, "..", ".", empty segments, backslash, NUL).
std::optional<std::string> key_to_path(const std::string& key, const std::string& prefix);

// Digest of an object from its ETag: "<32 hex>" -> md5, "<32 hex>-N" -> md5-multipart with N parts.
// nullopt with `reason` set when it cannot be used (another ETag form, or server-side encryption with
// KMS / customer keys, where the ETag is not the MD5 of the content).
std::optional<Digest> digest_from_etag(const std::string& etag, const std::string& sse, std::string& reason);

struct PlanOptions {
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  int max_keys = 1000;       // ListObjectsV2 page size
  bool verify_etag = true;   // false: every object unverifiable (stores whose ETags are not MD5s)
  int head_concurrency = 8;  // HEAD requests in flight (server-side encryption check)
};

struct S3Plan {
  DownloadPlan plan;
  std::vector<ObjectInfo> objects;  // the planned objects, in plan order
  std::vector<std::pair<std::string, std::string>> excluded;      // key -> reason
  std::vector<std::pair<std::string, std::string>> unverifiable;  // path -> reason
};

// Lists the bucket under the prefix and plans every object. Archived objects (GLACIER, DEEP_ARCHIVE)
// are an error naming the key; every planned object is HEADed (x-amz-server-side-encryption decides
// whether its ETag is an MD5). Every PlannedFile carries the client's signer.
S3Plan plan_download(const Client& client, const PlanOptions& options);

}  // namespace modelagent::s3
