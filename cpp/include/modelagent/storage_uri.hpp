#pragma once
// Storage URIs (BaseModel spec.storage.storageUri) parsed into typed values.
// The accepted forms and every rejection rule are listed in docs/wire-contract.md; anything that does not
// parse raises InvalidStorageUri with a message naming the URI and the part at fault.

#include <string>
#include <string_view>
#include <variant>

namespace modelagent {

// Common part of every parsed URI: the text it was parsed from.
struct StorageUriBase {
  std::string uri;
};

// oci://n/<namespace>/b/<bucket>/o/<prefix>, oci://<namespace>@<region>/<bucket>[/<prefix>], oci://<bucket>[/<prefix>]
struct OciStorageUri : StorageUriBase {
  std::string namespace_name;  // empty for the bucket-only form (resolved through the GetNamespace API)
  std::string bucket;
  std::string prefix;  // object-name prefix without a trailing '/'; empty = the whole bucket
  std::string region;  // only from the <namespace>@<region> form
};

// hf://<org>/<name>[@<revision>] or hf://<name>[@<revision>] (legacy un-namespaced repositories)
struct HuggingFaceStorageUri : StorageUriBase {
  std::string repo_id;
  std::string revision;  // "main" when not given
};

// pvc://[<namespace>:]<name>/<subpath>
struct PvcStorageUri : StorageUriBase {
  std::string namespace_name;  // empty = the namespace of the model object
  std::string name;
  std::string subpath;
};

// local:///<absolute path>
struct LocalStorageUri : StorageUriBase {
  std::string path;
};

// vendor://<vendor>/<resource type>/<resource path>
struct VendorStorageUri : StorageUriBase {
  std::string vendor;
  std::string resource_type;
  std::string resource_path;
};

// s3://<bucket>[@<region>][/<prefix>]
struct S3StorageUri : StorageUriBase {
  std::string bucket;
  std::string region;
  std::string prefix;
};

// gs://<bucket>[/<prefix>]
struct GcsStorageUri : StorageUriBase {
  std::string bucket;
  std::string prefix;
};

// az://<account>.blob.core.windows.net/<container>[/<path>] or az://<account>/<container>[/<path>]
struct AzureStorageUri : StorageUriBase {
  std::string account;
  std::string container;
  std::string path;  // blob-name prefix; empty = the whole container
};

// github://<owner>/<repo>[@<tag>]
struct GitHubStorageUri : StorageUriBase {
  std::string owner;
  std::string repo;
  std::string tag;  // "latest" when not given
};

using StorageUri = std::variant<OciStorageUri, HuggingFaceStorageUri, PvcStorageUri, LocalStorageUri,
                                VendorStorageUri, S3StorageUri, GcsStorageUri, AzureStorageUri, GitHubStorageUri>;

// Parses any supported storage URI. Throws InvalidStorageUri; an unsupported or missing scheme gives a
// message containing "unknown storage type".
StorageUri parse_storage_uri(std::string_view uri);

// The scheme of a parsed URI as written before "://": "oci", "hf", "pvc", "local", "vendor", "s3", "gs",
// "az" or "github".
std::string_view storage_scheme(const StorageUri& uri);

// The text the value was parsed from.
const std::string& storage_uri_text(const StorageUri& uri);

}  // namespace modelagent
