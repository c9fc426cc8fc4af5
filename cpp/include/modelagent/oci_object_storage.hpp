#pragma once
// The OCI Object Storage source: turns oci://... into a DownloadPlan of signed, ranged GETs.
// Protocol facts: /work/shared/reference/protocols.md section 2.1. User-facing rules (URI forms, prefix
// handling, verification, parameters): docs/oci.md. Request signing is the principal's job
// (oci_auth.hpp); every API call here and every planned file carries the principal as its signer.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modelagent/download_plan.hpp"
#include "modelagent/http_client.hpp"
#include "modelagent/request_signer.hpp"

namespace modelagent::oci {

// Environment variable overriding the Object Storage endpoint (tests, dedicated endpoints).
inline constexpr const char* kEndpointEnv = "OCI_OBJECT_STORAGE_ENDPOINT";
// ListObjects fields we ask for (the service returns only the name by default).
inline constexpr const char* kListFields = "name,size,etag,md5,timeCreated,timeModified,storageTier,archivalState";
inline constexpr int kMaxPageSize = 1000;

// ---- URIs and URLs (oci_object_storage_uri.cpp) ----

struct Location {
  std::string namespace_name;  // "" = look it up with GetNamespace
  std::string bucket;
  std::string prefix;  // as written in the URI, without a trailing '/'; "" = the whole bucket
  std::string region;  // only from the <namespace>@<region> form
};

// Parses the three oci:// forms (through parse_storage_uri). Throws InvalidStorageUri naming the URI.
Location parse_uri(std::string_view uri);

// https://objectstorage.{region}.oraclecloud.com; throws std::invalid_argument for a malformed region.
std::string endpoint_for_region(const std::string& region);

// The endpoint to use: `explicit_endpoint` when non-empty, else OCI_OBJECT_STORAGE_ENDPOINT, else the
// region's endpoint (trailing '/' stripped). Throws CredentialsError when all three are empty.
std::string resolve_endpoint(const std::string& explicit_endpoint, const std::string& region);

// Percent-encodes one path parameter the way the OCI SDKs do: everything except A-Z a-z 0-9 - . _ ~,
// including '/' (object names are a single path parameter).
std::string encode_path_parameter(std::string_view text);

// The prefix as a directory: "" stays "", anything else gets exactly one trailing '/'.
std::string directory_prefix(const std::string& prefix);

std::string namespace_url(const std::string& endpoint);  // {endpoint}/n/
std::string object_url(const std::string& endpoint, const std::string& namespace_name, const std::string& bucket,
                       const std::string& object_name);
// {endpoint}/n/{ns}/b/{bucket}/o?fields=...&prefix=...&limit=...[&start=...]
std::string list_url(const std::string& endpoint, const std::string& namespace_name, const std::string& bucket,
                     const std::string& prefix, const std::string& start, int limit);

// ---- API responses (oci_object_storage_list.cpp) ----

struct ObjectSummary {
  std::string name;
  uint64_t size = 0;
  std::string etag;
  std::string md5;  // listing md5: base64, or "<base64>-<parts>" for multipart objects; "" when absent
  std::string time_created;
  std::string time_modified;
  std::string storage_tier;
  std::string archival_state;
};

struct ListPage {
  std::vector<ObjectSummary> objects;
  std::string next_start_with;  // "" = last page
};

// One ListObjects response. Throws DownloadError naming `url`, the object index and the field for
// malformed JSON, a missing name or size, or wrongly typed fields.
ListPage parse_list_page(std::string_view body, const std::string& url);

// The GetNamespace body (a JSON string). Throws DownloadError naming `url` when it is not one.
std::string parse_namespace(std::string_view body, const std::string& url);

// Integrity metadata of one object from a HEAD response.
struct ObjectHead {
  uint64_t size = kUnknownSize;
  std::string etag;
  std::string content_md5;    // Content-MD5 (single-part objects)
  std::string multipart_md5;  // opc-multipart-md5 "<base64>-<parts>"
  std::string meta_md5;       // opc-meta-md5 (user metadata some uploaders set)
  std::string archival_state;
};
ObjectHead parse_head(const HttpResponse& response);

// ---- errors (oci_object_storage_list.cpp) ----

struct ErrorContext {
  std::string namespace_name;
  std::string bucket;
  std::string object;  // "" for namespace/bucket-level calls
  std::string principal;  // RequestSigner::describe() of the credentials used, for 401s
};

// Returns for 1xx/2xx. Otherwise throws, naming namespace/bucket/object, the service's code and message
// and the opc-request-id: CredentialsError (401 NotAuthenticated: signature or clock), RateLimitedError
// (429), HttpStatusError (everything else, e.g. 404 NotAuthorizedOrNotFound / ObjectNotFound).
void raise_for_status(const HttpResponse& response, const std::string& url, const ErrorContext& context);

// ---- the client (oci_object_storage_list.cpp) ----

struct ClientOptions {
  std::string endpoint;  // resolved base URL, no trailing '/'
  std::shared_ptr<const RequestSigner> signer;
  RetryPolicy retry;
  DownloadOptions http;  // TLS, timeouts and user agent of the API calls
  double request_timeout_seconds = 60;
  int page_size = kMaxPageSize;  // ListObjects limit (1..1000)
  int head_concurrency = 8;      // HEAD requests in flight while planning
};

// Every call below takes an optional `progress` whose retries and rate-limit counters its API requests add
// to (see http_request).
std::string get_namespace(const ClientOptions& options, CancelToken* cancel = nullptr,
                          DownloadProgress* progress = nullptr);

// Every object whose name starts with `prefix` (used as given), following nextStartWith.
std::vector<ObjectSummary> list_objects(const ClientOptions& options, const std::string& namespace_name,
                                        const std::string& bucket, const std::string& prefix,
                                        CancelToken* cancel = nullptr, DownloadProgress* progress = nullptr);

ObjectHead head_object(const ClientOptions& options, const std::string& namespace_name, const std::string& bucket,
                       const std::string& object_name, CancelToken* cancel = nullptr,
                       DownloadProgress* progress = nullptr);

// ---- selection, digests and the plan (oci_object_storage_plan.cpp) ----

struct ObjectFilter {
  std::vector<std::string> include;  // glob patterns on the destination path; empty = everything
  std::vector<std::string> exclude;
};

struct SelectedObject {
  ObjectSummary object;
  std::string relative_path;  // destination path: the name without the directory prefix
};

struct Skipped {
  std::string path;  // object name
  std::string reason;
};

struct Selection {
  std::vector<SelectedObject> selected;
  std::vector<Skipped> excluded;  // folder markers, patterns, reserved paths
};

// Maps object names to destination paths and applies the filter. `prefix` is the URI prefix; it is
// treated as a directory ("models/llama" covers "models/llama/..." but not "models/llama2/..."), and
// removed only at the start of each name. Zero-byte names ending in '/' are folder markers (skipped).
// Throws UnsafePathError naming the object for names that would escape the destination ("..", ".",
// empty segments, absolute, NUL, backslash, over-long); DownloadError naming every archived object
// (archivalState Archived/Restoring) that was selected; std::invalid_argument for a malformed pattern.
Selection select_objects(const std::vector<ObjectSummary>& objects, const std::string& prefix,
                         const ObjectFilter& filter);

// True when the listing alone cannot give the digest to verify against (no md5, or a multipart one):
// such objects get a HEAD so opc-meta-md5 / opc-multipart-md5 can be read.
bool needs_head(const ObjectSummary& object);

struct DigestChoice {
  Digest digest;           // DigestKind::None when nothing usable was found
  std::string unverifiable;  // why, when digest.kind == None
  std::string source;      // "Content-MD5", "opc-meta-md5", "opc-multipart-md5", "listing md5"
};

// Picks what to verify an object against: opc-meta-md5 (plain MD5 of the whole object) when present and
// well-formed, else Content-MD5 / the listing md5, else opc-multipart-md5 "<b64>-N" (composite MD5 of N
// parts, part size inferred by the engine). A value the engine could not use (malformed, no part size
// giving N parts) makes the object unverifiable with the reason, never a silent pass.
DigestChoice choose_digest(const ObjectSummary& object, const ObjectHead* head);

struct Plan {
  std::string namespace_name;  // resolved
  std::string endpoint;
  DownloadPlan plan;
  std::vector<ObjectSummary> objects;  // listing entry of each planned file, in plan order
  std::vector<Skipped> excluded;
  std::vector<Skipped> unverifiable;  // destination path, reason
};

// Plan entries for selected objects: GET URL, size, digest, signer. `heads` holds HEAD results by
// object name for the objects that needed one.
Plan plan_objects(const std::string& endpoint, const std::string& namespace_name, const std::string& bucket,
                  const Selection& selection, const std::map<std::string, ObjectHead>& heads,
                  std::shared_ptr<const RequestSigner> signer);

// The whole planning step: namespace lookup when the location has none, listing under the directory
// prefix, selection, HEADs where needed (concurrently), plan. Throws DownloadError naming the URI when
// nothing is listed under the prefix.
Plan build_plan(const ClientOptions& options, const Location& location, const ObjectFilter& filter,
                CancelToken* cancel = nullptr, DownloadProgress* progress = nullptr);

}  // namespace modelagent::oci
