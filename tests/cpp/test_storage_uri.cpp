// Storage URI parsing: every storage_test case of OME v0.1.3 (reference section 11, corrected where section 10
// calls OME wrong) plus the stricter checks this parser adds.

#include <gtest/gtest.h>

#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/storage_uri.hpp"

using namespace modelagent;

namespace {

template <class T>
T parse_as(const std::string& uri) {
  StorageUri parsed = parse_storage_uri(uri);
  EXPECT_TRUE(std::holds_alternative<T>(parsed)) << uri << " parsed as scheme " << storage_scheme(parsed);
  EXPECT_EQ(storage_uri_text(parsed), uri);
  return std::get<T>(parsed);
}

// The error message for a URI that must not parse; fails the test if it parses.
std::string error_for(const std::string& uri) {
  try {
    StorageUri parsed = parse_storage_uri(uri);
    ADD_FAILURE() << "'" << uri << "' parsed as scheme " << storage_scheme(parsed);
  } catch (const InvalidStorageUri& e) {
    return e.what();
  }
  return {};
}

#define EXPECT_REJECTED(uri, fragment)                                                      \
  do {                                                                                      \
    std::string message_ = error_for(uri);                                                  \
    EXPECT_NE(message_.find(fragment), std::string::npos) << "message for '" << (uri) << "': " << message_; \
  } while (0)

}  // namespace

// ---- scheme dispatch (gopher_test, storage_test GetStorageType) ----

TEST(StorageUriScheme, EveryScheme) {
  const std::pair<const char*, const char*> cases[] = {
      {"oci://n/namespace/b/bucket/o/model", "oci"},
      {"hf://meta-llama/Llama-2-7b-hf", "hf"},
      {"pvc://my-pvc/models/llama2", "pvc"},
      {"local:///opt/models/llama", "local"},
      {"vendor://nvidia/models/llama", "vendor"},
      {"s3://my-bucket/models", "s3"},
      {"gs://my-bucket/models", "gs"},
      {"az://account/container/models", "az"},
      {"github://owner/repo", "github"},
  };
  for (const auto& [uri, scheme] : cases) EXPECT_EQ(storage_scheme(parse_storage_uri(uri)), scheme) << uri;
}

TEST(StorageUriScheme, UnknownSchemesSayUnknownStorageType) {
  EXPECT_REJECTED("invalid://storage/uri", "unknown storage type 'invalid'");
  EXPECT_REJECTED("unknown://something", "unknown storage type");
  EXPECT_REJECTED("", "unknown storage type");
  EXPECT_REJECTED("meta-llama/Llama-2-7b", "unknown storage type");
  EXPECT_REJECTED("n/myns/b/mybucket/o/mypath", "unknown storage type");
  EXPECT_REJECTED("/opt/models/llama", "unknown storage type");
  EXPECT_REJECTED("://bucket", "unknown storage type ''");
  // Schemes are lowercase, as OME matches them.
  EXPECT_REJECTED("HF://org/name", "unknown storage type 'HF'");
  EXPECT_REJECTED("s3:bucket/prefix", "unknown storage type");
}

TEST(StorageUriScheme, MessageNamesTheUri) {
  EXPECT_REJECTED("hf://@main", "'hf://@main'");
  EXPECT_REJECTED("pvc://my-pvc", "'pvc://my-pvc'");
}

TEST(StorageUriScheme, WhitespaceControlBytesAndBadUtf8AreRejected) {
  EXPECT_REJECTED(" hf://org/name", "whitespace (byte 0x20 at offset 0)");
  EXPECT_REJECTED("hf://org/name ", "whitespace (byte 0x20 at offset 13)");
  EXPECT_REJECTED("hf://org/na me", "whitespace");
  EXPECT_REJECTED("oci://bucket/a\tb", "whitespace (byte 0x09");
  EXPECT_REJECTED("oci://bucket/model\n", "whitespace (byte 0x0a");
  EXPECT_REJECTED(std::string("oci://bucket/a\0b", 16), "a NUL byte (byte 0x00 at offset 14)");
  EXPECT_REJECTED("oci://bucket/a\x7f", "a control character");
  EXPECT_REJECTED("oci://bucket/\xff", "not valid UTF-8");
  EXPECT_REJECTED("oci://bucket/\xc0\xaf", "not valid UTF-8");   // overlong '/'
  EXPECT_REJECTED("oci://bucket/\xed\xa0\x80", "not valid UTF-8");  // surrogate
  // The NUL is shown escaped, never raw, in the message.
  std::string message = error_for(std::string("oci://b/\0", 9));
  EXPECT_EQ(message.find('\0'), std::string::npos);
  EXPECT_NE(message.find("\\x00"), std::string::npos) << message;
}

TEST(StorageUriScheme, NonAsciiObjectNamesAreKept) {
  auto oci = parse_as<OciStorageUri>("oci://bucket/mod\xc3\xa8les/\xe6\xa8\xa1\xe5\x9e\x8b");
  EXPECT_EQ(oci.prefix, "mod\xc3\xa8les/\xe6\xa8\xa1\xe5\x9e\x8b");
}

// ---- OCI ----

TEST(OciUri, CanonicalForm) {
  auto simple = parse_as<OciStorageUri>("oci://n/myns/b/mybucket/o/mypath");
  EXPECT_EQ(simple.namespace_name, "myns");
  EXPECT_EQ(simple.bucket, "mybucket");
  EXPECT_EQ(simple.prefix, "mypath");
  EXPECT_EQ(simple.region, "");

  EXPECT_EQ(parse_as<OciStorageUri>("oci://n/myns/b/mybucket/o/path/to/my/object").prefix, "path/to/my/object");

  auto special = parse_as<OciStorageUri>("oci://n/my-ns.123/b/my_bucket-123/o/path.with.dots/and-dashes");
  EXPECT_EQ(special.namespace_name, "my-ns.123");
  EXPECT_EQ(special.bucket, "my_bucket-123");
  EXPECT_EQ(special.prefix, "path.with.dots/and-dashes");

  // An '@' inside the object prefix is part of the name, not a region marker.
  EXPECT_EQ(parse_as<OciStorageUri>("oci://n/ns/b/bkt/o/models/v1@2").prefix, "models/v1@2");
}

TEST(OciUri, CanonicalFormWithEmptyPrefixMeansWholeBucket) {
  // NewObjectURI accepts a trailing o/ (prefix ""); so do we, with or without the slash.
  for (const char* uri : {"oci://n/myns/b/mybucket/o/", "oci://n/myns/b/mybucket/o"}) {
    auto v = parse_as<OciStorageUri>(uri);
    EXPECT_EQ(v.namespace_name, "myns") << uri;
    EXPECT_EQ(v.bucket, "mybucket") << uri;
    EXPECT_EQ(v.prefix, "") << uri;
  }
  EXPECT_EQ(parse_as<OciStorageUri>("oci://n/ns/b/bkt/o/models/llama/").prefix, "models/llama");
}

TEST(OciUri, CanonicalFormRejections) {
  EXPECT_REJECTED("oci://n/myns/b/mybucket", "too short");              // no o marker
  EXPECT_REJECTED("oci://n/myns/b/mybucket/x/prefix", "expected the 'o' marker");  // wrong 5th marker
  EXPECT_REJECTED("oci://n/myns/b/mybucket/mypath", "expected the 'o' marker");    // missing object marker
  EXPECT_REJECTED("oci://n/myns/mybucket/o/mypath", "expected the 'b' marker");    // missing bucket marker
  EXPECT_REJECTED("oci://n//b/bucket/o/x", "empty OCI namespace");
  EXPECT_REJECTED("oci://n/ns/b//o/x", "missing bucket name");
  EXPECT_REJECTED("oci://n/ns/b/bucket/o/a//b", "empty segment");
  EXPECT_REJECTED("oci://n/ns/b/bucket/o//a", "empty segment");
  EXPECT_REJECTED("oci://n/ns/b/bucket/o/a/../b", "'..' segment");
  EXPECT_REJECTED("oci://n/ns/b/bucket/o/..", "'..' segment");
  EXPECT_REJECTED("oci://n/ns/b/bucket/o/./a", "'.' segment");
  EXPECT_REJECTED("oci://n/ns/b/bucket/o/a//", "empty segment");
  EXPECT_REJECTED("oci://n/n$s/b/bucket/o/a", "OCI namespace 'n$s'");
  EXPECT_REJECTED("oci://n/ns/b/buc:ket/o/a", "OCI bucket name 'buc:ket'");
}

TEST(OciUri, WrongMarkerOrderIsNotCanonical) {
  // "b/..." is read as the bucket-only form with bucket "b"; the markers are then just a prefix.
  auto v = parse_as<OciStorageUri>("oci://b/mybucket/n/myns/o/mypath");
  EXPECT_EQ(v.namespace_name, "");
  EXPECT_EQ(v.bucket, "b");
  EXPECT_EQ(v.prefix, "mybucket/n/myns/o/mypath");
}

TEST(OciUri, NamespaceAtRegionForm) {
  auto v = parse_as<OciStorageUri>("oci://myns@us-ashburn-1/mybucket/models/llama");
  EXPECT_EQ(v.namespace_name, "myns");
  EXPECT_EQ(v.region, "us-ashburn-1");
  EXPECT_EQ(v.bucket, "mybucket");
  EXPECT_EQ(v.prefix, "models/llama");

  auto no_prefix = parse_as<OciStorageUri>("oci://myns@us-ashburn-1/mybucket");
  EXPECT_EQ(no_prefix.bucket, "mybucket");
  EXPECT_EQ(no_prefix.prefix, "");

  EXPECT_REJECTED("oci://myns@us-ashburn-1", "missing bucket name");
  EXPECT_REJECTED("oci://myns@us-ashburn-1/", "missing bucket name");
  EXPECT_REJECTED("oci://@us-ashburn-1/bucket", "empty OCI namespace");
  EXPECT_REJECTED("oci://myns@/bucket", "empty region");
  EXPECT_REJECTED("oci://myns@us_ashburn/bucket", "region 'us_ashburn'");
  EXPECT_REJECTED("oci://myns@r1/bucket/a/../../etc", "'..' segment");
}

TEST(OciUri, BucketOnlyForm) {
  auto v = parse_as<OciStorageUri>("oci://mybucket/models/llama");
  EXPECT_EQ(v.namespace_name, "");
  EXPECT_EQ(v.region, "");
  EXPECT_EQ(v.bucket, "mybucket");
  EXPECT_EQ(v.prefix, "models/llama");

  auto foo = parse_as<OciStorageUri>("oci://foo/bar");  // scout_test's URI
  EXPECT_EQ(foo.bucket, "foo");
  EXPECT_EQ(foo.prefix, "bar");

  auto bucket_only = parse_as<OciStorageUri>("oci://invalid");  // a bucket named "invalid" is well-formed
  EXPECT_EQ(bucket_only.bucket, "invalid");
  EXPECT_EQ(bucket_only.prefix, "");

  EXPECT_REJECTED("oci://", "missing bucket name");
  EXPECT_REJECTED("oci:///prefix", "missing bucket name");
  EXPECT_REJECTED("oci://bucket//x", "empty segment");
  EXPECT_REJECTED("oci://../x", "OCI bucket name '..'");
}

// ---- Hugging Face ----

TEST(HuggingFaceUri, RepoAndRevision) {
  auto v = parse_as<HuggingFaceStorageUri>("hf://meta-llama/Llama-3-70B-Instruct");
  EXPECT_EQ(v.repo_id, "meta-llama/Llama-3-70B-Instruct");
  EXPECT_EQ(v.revision, "main");

  auto branch = parse_as<HuggingFaceStorageUri>("hf://meta-llama/Llama-3-70B-Instruct@alternative");
  EXPECT_EQ(branch.repo_id, "meta-llama/Llama-3-70B-Instruct");
  EXPECT_EQ(branch.revision, "alternative");

  EXPECT_EQ(parse_as<HuggingFaceStorageUri>("hf://mistralai/Mixtral-8x7B-Instruct-v0.1").repo_id,
            "mistralai/Mixtral-8x7B-Instruct-v0.1");
  auto special = parse_as<HuggingFaceStorageUri>("hf://user-name/model-version_3.1@dev-branch");
  EXPECT_EQ(special.repo_id, "user-name/model-version_3.1");
  EXPECT_EQ(special.revision, "dev-branch");
}

TEST(HuggingFaceUri, RevisionSplitsOnFirstAt) {
  auto v = parse_as<HuggingFaceStorageUri>("hf://org/name@feature@2");
  EXPECT_EQ(v.repo_id, "org/name");
  EXPECT_EQ(v.revision, "feature@2");
  auto pr = parse_as<HuggingFaceStorageUri>("hf://org/name@refs/pr/1");
  EXPECT_EQ(pr.revision, "refs/pr/1");
  auto sha = parse_as<HuggingFaceStorageUri>("hf://org/name@0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(sha.revision, "0123456789abcdef0123456789abcdef01234567");
}

TEST(HuggingFaceUri, LegacyRepoWithoutOrganisation) {
  auto v = parse_as<HuggingFaceStorageUri>("hf://gpt2");
  EXPECT_EQ(v.repo_id, "gpt2");
  EXPECT_EQ(v.revision, "main");
  EXPECT_EQ(parse_as<HuggingFaceStorageUri>("hf://bert-base-uncased@v1").revision, "v1");
}

TEST(HuggingFaceUri, Rejections) {
  EXPECT_REJECTED("hf://", "missing model ID");
  EXPECT_REJECTED("hf://@main", "model ID cannot be empty");
  EXPECT_REJECTED("hf://@branch", "model ID cannot be empty");
  EXPECT_REJECTED("hf://org/name@", "empty revision");
  EXPECT_REJECTED("hf://org/name/extra", "more than one '/'");
  EXPECT_REJECTED("hf://org/", "empty repository name");
  EXPECT_REJECTED("hf:///name", "empty organisation");
  EXPECT_REJECTED("hf://org/-name", "repository name '-name'");
  EXPECT_REJECTED("hf://org/name.", "repository name 'name.'");
  EXPECT_REJECTED("hf://org/na$me", "repository name 'na$me'");
  EXPECT_REJECTED("hf://org/a--b", "contains '--' or '..'");
  EXPECT_REJECTED("hf://org/a..b", "contains '--' or '..'");
  EXPECT_REJECTED("hf://org/name.git", "ends with '.git'");
  EXPECT_REJECTED("hf://../name", "organisation '..'");
  EXPECT_REJECTED("hf://org/" + std::string(97, 'a'), "at most 96");
  EXPECT_NO_THROW(parse_storage_uri("hf://org/" + std::string(96, 'a')));
  EXPECT_REJECTED("hf://org/name@a..b", "revision 'a..b' contains '..'");
  EXPECT_REJECTED("hf://org/name@/main", "starts or ends with '/'");
  EXPECT_REJECTED("hf://org/name@refs//pr", "contains '//'");
  EXPECT_REJECTED("hf://org/name@main.lock", "ends with '.lock'");
  EXPECT_REJECTED("hf://org/name@ma:in", "contains ':'");
  EXPECT_REJECTED("hf://org/name@HEAD@{1}", "contains '@{'");
}

// ---- PVC ----

TEST(PvcUri, NameAndSubpath) {
  auto v = parse_as<PvcStorageUri>("pvc://my-pvc/results");
  EXPECT_EQ(v.namespace_name, "");
  EXPECT_EQ(v.name, "my-pvc");
  EXPECT_EQ(v.subpath, "results");
  EXPECT_EQ(parse_as<PvcStorageUri>("pvc://my-pvc/path/to/results").subpath, "path/to/results");
  auto special = parse_as<PvcStorageUri>("pvc://my-pvc-123/path_with-special.chars");
  EXPECT_EQ(special.name, "my-pvc-123");
  EXPECT_EQ(special.subpath, "path_with-special.chars");
  EXPECT_EQ(parse_as<PvcStorageUri>("pvc://my-pvc/models/llama2").subpath, "models/llama2");
  EXPECT_EQ(parse_as<PvcStorageUri>("pvc://my-pvc/models/").subpath, "models");
  EXPECT_EQ(parse_as<PvcStorageUri>("pvc://data.v1/m").name, "data.v1");
}

TEST(PvcUri, NamespacePrefix) {
  auto v = parse_as<PvcStorageUri>("pvc://team-a:my-pvc/models/llama");
  EXPECT_EQ(v.namespace_name, "team-a");
  EXPECT_EQ(v.name, "my-pvc");
  EXPECT_EQ(v.subpath, "models/llama");
  EXPECT_EQ(parse_as<PvcStorageUri>("pvc://" + std::string(63, 'n') + ":pvc/x").namespace_name, std::string(63, 'n'));
}

TEST(PvcUri, Rejections) {
  EXPECT_REJECTED("pvc://", "missing PVC name");
  EXPECT_REJECTED("pvc:///results", "missing PVC name");
  EXPECT_REJECTED("pvc://my-pvc", "missing subpath");
  EXPECT_REJECTED("pvc://my-pvc/", "missing subpath");
  EXPECT_REJECTED("pvc://ns:my-pvc", "missing subpath");
  EXPECT_REJECTED("pvc://:my-pvc/sub", "empty namespace");
  EXPECT_REJECTED("pvc://ns:/sub", "missing PVC name");
  EXPECT_REJECTED("pvc://a:b:c/sub", "more than one ':'");
  EXPECT_REJECTED("pvc://Team:pvc/sub", "namespace 'Team'");
  EXPECT_REJECTED("pvc://-team:pvc/sub", "namespace '-team'");
  EXPECT_REJECTED("pvc://team-:pvc/sub", "namespace 'team-'");
  EXPECT_REJECTED("pvc://te_am:pvc/sub", "namespace 'te_am'");
  EXPECT_REJECTED("pvc://te.am:pvc/sub", "namespace 'te.am'");
  EXPECT_REJECTED("pvc://" + std::string(64, 'n') + ":pvc/x", "not a valid Kubernetes namespace");
  EXPECT_REJECTED("pvc://My-PVC/sub", "PVC name 'My-PVC'");
  EXPECT_REJECTED("pvc://pvc/../etc", "'..' segment");
  EXPECT_REJECTED("pvc://pvc/a//b", "empty segment");
  EXPECT_REJECTED("pvc://pvc//a", "empty segment");
}

// ---- local ----

TEST(LocalUri, AbsolutePaths) {
  EXPECT_EQ(parse_as<LocalStorageUri>("local:///opt/models/llama").path, "/opt/models/llama");
  EXPECT_EQ(parse_as<LocalStorageUri>("local:///usr/local/share/models/language-models/v1.0").path,
            "/usr/local/share/models/language-models/v1.0");
  EXPECT_EQ(parse_as<LocalStorageUri>("local:///opt/models/llama/").path, "/opt/models/llama");
  EXPECT_EQ(parse_as<LocalStorageUri>("local:///").path, "/");
}

TEST(LocalUri, RelativeAndMalformedPathsAreRejected) {
  EXPECT_REJECTED("local://", "missing path");
  EXPECT_REJECTED("local://./models/gpt", "is relative");  // OME accepts; the agent needs an absolute path
  EXPECT_REJECTED("local://~/models/bert", "is relative");
  EXPECT_REJECTED("local://models/x", "local:///<absolute path>");
  EXPECT_REJECTED("local:///opt/../etc", "'..' segment");
  EXPECT_REJECTED("local:////opt", "empty segment");
  EXPECT_REJECTED("local:///opt//models", "empty segment");
}

// ---- vendor ----

TEST(VendorUri, ThreeParts) {
  auto v = parse_as<VendorStorageUri>("vendor://openai/models/gpt-4");
  EXPECT_EQ(v.vendor, "openai");
  EXPECT_EQ(v.resource_type, "models");
  EXPECT_EQ(v.resource_path, "gpt-4");
  auto azure = parse_as<VendorStorageUri>("vendor://azure/embeddings/text-embedding-ada-002");
  EXPECT_EQ(azure.resource_type, "embeddings");
  EXPECT_EQ(parse_as<VendorStorageUri>("vendor://anthropic/models/v2/claude-2").resource_path, "v2/claude-2");
  EXPECT_EQ(parse_as<VendorStorageUri>("vendor://nvidia/models/llama").vendor, "nvidia");
}

TEST(VendorUri, Rejections) {
  EXPECT_REJECTED("vendor://", "missing vendor name");
  EXPECT_REJECTED("vendor://openai", "missing resource type");
  EXPECT_REJECTED("vendor://openai/models", "missing resource path");
  EXPECT_REJECTED("vendor:///models/gpt-4", "empty vendor name");
  EXPECT_REJECTED("vendor://openai//gpt-4", "missing resource type");
  EXPECT_REJECTED("vendor://openai/models/", "missing resource path");
  EXPECT_REJECTED("vendor://openai/models/a/../b", "'..' segment");
  EXPECT_REJECTED("vendor://open$ai/models/x", "vendor name 'open$ai'");
}

// ---- S3, GCS, Azure, GitHub ----

TEST(S3Uri, BucketRegionPrefix) {
  auto v = parse_as<S3StorageUri>("s3://my-bucket/models/llama");
  EXPECT_EQ(v.bucket, "my-bucket");
  EXPECT_EQ(v.region, "");
  EXPECT_EQ(v.prefix, "models/llama");
  auto r = parse_as<S3StorageUri>("s3://my-bucket@us-west-2/models");
  EXPECT_EQ(r.bucket, "my-bucket");
  EXPECT_EQ(r.region, "us-west-2");
  EXPECT_EQ(r.prefix, "models");
  EXPECT_EQ(parse_as<S3StorageUri>("s3://my.bucket.v2").prefix, "");

  EXPECT_REJECTED("s3://", "missing bucket name");
  EXPECT_REJECTED("s3:///models", "missing bucket name");
  EXPECT_REJECTED("s3://ab/models", "S3 bucket name 'ab'");
  EXPECT_REJECTED("s3://My-Bucket/models", "S3 bucket name 'My-Bucket'");
  EXPECT_REJECTED("s3://bucket-/models", "S3 bucket name 'bucket-'");
  EXPECT_REJECTED("s3://a..b/models", "S3 bucket name 'a..b'");
  EXPECT_REJECTED("s3://" + std::string(64, 'b') + "/m", "3-63");
  EXPECT_REJECTED("s3://bucket@/models", "empty region");
  EXPECT_REJECTED("s3://bucket/a/../b", "'..' segment");
}

TEST(GcsUri, BucketPrefix) {
  auto v = parse_as<GcsStorageUri>("gs://my_bucket/models/llama");
  EXPECT_EQ(v.bucket, "my_bucket");
  EXPECT_EQ(v.prefix, "models/llama");
  EXPECT_EQ(parse_as<GcsStorageUri>("gs://bucket").prefix, "");
  EXPECT_NO_THROW(parse_storage_uri("gs://" + std::string(63, 'a') + "." + std::string(63, 'b') + "/x"));

  EXPECT_REJECTED("gs://", "missing bucket name");
  EXPECT_REJECTED("gs://Bucket/x", "GCS bucket name 'Bucket'");
  EXPECT_REJECTED("gs://" + std::string(64, 'b') + "/x", "GCS bucket name");
  EXPECT_REJECTED("gs://bucket//x", "empty segment");
}

TEST(AzureUri, BothHostForms) {
  auto host = parse_as<AzureStorageUri>("az://myaccount.blob.core.windows.net/models/llama/v1");
  EXPECT_EQ(host.account, "myaccount");
  EXPECT_EQ(host.container, "models");
  EXPECT_EQ(host.path, "llama/v1");
  auto bare = parse_as<AzureStorageUri>("az://myaccount/models/llama");
  EXPECT_EQ(bare.account, "myaccount");
  EXPECT_EQ(bare.container, "models");
  EXPECT_EQ(bare.path, "llama");
  EXPECT_EQ(parse_as<AzureStorageUri>("az://myaccount/models").path, "");

  EXPECT_REJECTED("az://", "missing storage account");
  EXPECT_REJECTED("az://myaccount", "missing container");
  EXPECT_REJECTED("az://myaccount/", "missing container");
  EXPECT_REJECTED("az://myaccount.example.com/c/p", "is not <account>.blob.core.windows.net");
  EXPECT_REJECTED("az://.blob.core.windows.net/cont/p", "is not <account>.blob.core.windows.net");
  EXPECT_REJECTED("az://MyAccount/cont/p", "Azure storage account 'MyAccount'");
  EXPECT_REJECTED("az://myaccount/a--b/p", "Azure container 'a--b'");
  EXPECT_REJECTED("az://myaccount/cont/../p", "'..' segment");
}

TEST(GitHubUri, OwnerRepoTag) {
  auto v = parse_as<GitHubStorageUri>("github://owner/repo");
  EXPECT_EQ(v.owner, "owner");
  EXPECT_EQ(v.repo, "repo");
  EXPECT_EQ(v.tag, "latest");
  auto tagged = parse_as<GitHubStorageUri>("github://owner/repo.name@v1.2.3");
  EXPECT_EQ(tagged.repo, "repo.name");
  EXPECT_EQ(tagged.tag, "v1.2.3");

  EXPECT_REJECTED("github://", "missing owner");
  EXPECT_REJECTED("github://owner", "missing repository");
  EXPECT_REJECTED("github://owner/", "missing repository");
  EXPECT_REJECTED("github://owner/repo/extra", "too many path segments");
  EXPECT_REJECTED("github://owner/repo@", "empty tag");
  EXPECT_REJECTED("github://-owner/repo", "GitHub owner '-owner'");
  EXPECT_REJECTED("github://owner/..", "GitHub repository '..'");
  EXPECT_REJECTED("github://owner/repo@v1..2", "tag 'v1..2' contains '..'");
}
