// The S3 source's pure parts: XML reader, ListObjectsV2 and error documents, keys -> paths,
// ETags -> digests, region/endpoint resolution.

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "modelagent/digest.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/s3.hpp"
#include "support/temp_dir.hpp"

using namespace modelagent;
using namespace modelagent::s3;

namespace {

EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

S3StorageUri uri(std::string bucket, std::string prefix = "", std::string region = "") {
  S3StorageUri u;
  u.bucket = std::move(bucket);
  u.prefix = std::move(prefix);
  u.region = std::move(region);
  return u;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

const char* kListPage =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bucket</Name><Prefix>models%2F</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
    "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
    "<Contents><Key>models/a+b%26c.txt</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
    "<ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;</ETag><Size>1</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>models/%C3%A9t%C3%A9/x.bin</Key><ETag>\"5d41402abc4b2a76b9719d911017c592-2\"</ETag>"
    "<Size>12582912</Size><StorageClass>GLACIER</StorageClass></Contents>"
    "<Contents><Key>models/dir/</Key><ETag>\"d41d8cd98f00b204e9800998ecf8427e\"</ETag><Size>0</Size></Contents>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "</ListBucketResult>";

}  // namespace

TEST(S3Xml, ParsesNestedElementsEntitiesCdataAndComments) {
  auto root = parse_xml(
      "<?xml version='1.0'?><!-- c --><a:Root xmlns:a=\"u\" x='1'><a:Item>&lt;&#65;&#x42;&amp;&gt;</a:Item>"
      "<Item><![CDATA[<raw>&amp;]]></Item><Empty/><!-- inner --></a:Root>\n",
      "doc");
  EXPECT_EQ(root.name, "Root");
  auto items = root.children_named("Item");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0]->text, "<AB&>");
  EXPECT_EQ(items[1]->text, "<raw>&amp;");
  ASSERT_NE(root.child("Empty"), nullptr);
  EXPECT_EQ(root.child("Missing"), nullptr);
  EXPECT_EQ(parse_xml("<a>&#xE9;</a>", "d").text, "\xC3\xA9");
}

TEST(S3Xml, MalformedInputIsAnErrorNamingTheSource) {
  for (const char* bad : {"", "<a>", "<a></b>", "<a>text", "<a x=1></a>", "<a>&bogus;</a>", "<a>&#0;</a>",
                          "<a></a><b></b>", "<!DOCTYPE a><a/>", "<a><![CDATA[x</a>", "<a>&amp</a>", "plain text",
                          "<a x=\"1></a>", "<a>&#xD800;</a>"}) {
    std::string m = error_of([&] { parse_xml(bad, "http://h/list"); });
    EXPECT_NE(m.find("http://h/list: malformed XML"), std::string::npos) << "input: " << bad << " -> " << m;
  }
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  EXPECT_NE(error_of([&] { parse_xml(deep, "d"); }).find("nested too deeply"), std::string::npos);
}

TEST(S3List, ParsesAPageAndDecodesKeys) {
  auto page = parse_list_objects_v2(kListPage, "http://h/b?list-type=2");
  EXPECT_TRUE(page.truncated);
  EXPECT_EQ(page.next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  ASSERT_EQ(page.objects.size(), 3u);
  EXPECT_EQ(page.objects[0].key, "models/a b&c.txt");
  EXPECT_EQ(page.objects[0].etag, "\"0cc175b9c0f1b6a831c399e269772661\"");
  EXPECT_EQ(page.objects[0].size, 1u);
  EXPECT_EQ(page.objects[0].storage_class, "STANDARD");
  EXPECT_EQ(page.objects[1].key, "models/\xC3\xA9t\xC3\xA9/x.bin");
  EXPECT_EQ(page.objects[1].size, 12582912u);
  EXPECT_EQ(page.objects[1].storage_class, "GLACIER");
  EXPECT_EQ(page.objects[2].key, "models/dir/");
}

TEST(S3List, KeysAreLiteralWithoutUrlEncoding) {
  auto page = parse_list_objects_v2(
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a+b%20c</Key><Size>3</Size></Contents>"
      "</ListBucketResult>",
      "u");
  ASSERT_EQ(page.objects.size(), 1u);
  EXPECT_EQ(page.objects[0].key, "a+b%20c");
  EXPECT_FALSE(page.truncated);
}

TEST(S3List, InconsistentDocumentsAreErrorsNamingTheUrl) {
  const std::string url = "http://h/b?list-type=2";
  for (const char* bad : {
           "<Error><Code>x</Code></Error>",
           "<ListBucketResult></ListBucketResult>",
           "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
           "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
           "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Size>1</Size></Contents></ListBucketResult>",
           "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key></Contents></ListBucketResult>",
           "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>-1</Size></Contents>"
           "</ListBucketResult>",
           "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated><Contents>"
           "<Key>bad%zz</Key><Size>1</Size></Contents></ListBucketResult>",
           "<ListBucketResult><IsTruncated>false</IsTruncated>",
       }) {
    std::string m = error_of([&] { parse_list_objects_v2(bad, url); });
    EXPECT_NE(m.find(url), std::string::npos) << bad << " -> " << m;
  }
}

TEST(S3Errors, ErrorDocumentsNameTheCodeAndBucket) {
  EXPECT_EQ(describe_error_body("<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied"
                                "</Message></Error>"),
            "AccessDenied: Access Denied");
  EXPECT_EQ(describe_error_body("<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>"),
            "InvalidIdentityToken");
  EXPECT_EQ(describe_error_body("not xml"), "");
  EXPECT_EQ(describe_error_body("<Error><broken>"), "");

  HttpResponse r;
  r.status = 404;
  r.body = "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
  try {
    throw_s3_error(r, "GET", "http://h/missing/", "missing");
  } catch (const HttpStatusError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_NE(std::string(e.what()).find("bucket 'missing' does not exist"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("NoSuchBucket"), std::string::npos);
  }
  r.status = 403;
  r.body = "<Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error>";
  std::string m = error_of([&] { throw_s3_error(r, "GET", "http://h/b/", "b"); });
  EXPECT_NE(m.find("SignatureDoesNotMatch"), std::string::npos);
  EXPECT_NE(m.find("secret key"), std::string::npos);
  r.body = "";
  EXPECT_NE(error_of([&] { throw_s3_error(r, "HEAD", "http://h/b/k", "b"); }).find("HTTP 403 Forbidden"),
            std::string::npos);
}

TEST(S3Paths, PrefixIsADirectory) {
  EXPECT_EQ(key_to_path("models/llama/config.json", "models/llama"), "config.json");
  EXPECT_EQ(key_to_path("models/llama/a/b.bin", "models/llama"), "a/b.bin");
  EXPECT_EQ(key_to_path("models/llama2/config.json", "models/llama"), std::nullopt);
  EXPECT_EQ(key_to_path("x/models/llama/config.json", "models/llama"), std::nullopt);
  EXPECT_EQ(key_to_path("models/llama/sub/", "models/llama"), std::nullopt);
  EXPECT_EQ(key_to_path("top.txt", ""), "top.txt");
  EXPECT_EQ(key_to_path("a b/\xC3\xA9.txt", ""), "a b/\xC3\xA9.txt");
}

TEST(S3Paths, UnsafeKeysAreRejectedNamingTheKey) {
  for (const char* key : {"p//x", "p/../x", "p/./x", "p/a\\b", "p/../../etc/passwd", "p/x/..", "/abs"}) {
    std::string prefix = std::string(key).starts_with("p/") ? "p" : "";
    try {
      key_to_path(key, prefix);
      ADD_FAILURE() << key;
    } catch (const UnsafePathError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + key + "'"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(key_to_path(std::string("p/a\0b", 5), "p"), UnsafePathError);
}

TEST(S3Paths, KeysFailTheEnginesNameRulesAtPlanningTime) {
  // The same lexical rules as the engine's destination check: a segment over 255 bytes fails while
  // planning, naming the key; a control byte is shown escaped rather than cutting the message.
  std::string long_key = "p/" + std::string(300, 'x') + "/f";
  try {
    key_to_path(long_key, "p");
    ADD_FAILURE() << "no error for a 300-byte segment";
  } catch (const UnsafePathError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("S3 object key 'p/xxx"), std::string::npos) << msg;
    EXPECT_NE(msg.find("segment longer than 255"), std::string::npos) << msg;
  }
  try {
    key_to_path(std::string("p/a\0b", 5), "p");
    ADD_FAILURE() << "no error for a NUL byte";
  } catch (const UnsafePathError& e) {
    EXPECT_NE(std::string(e.what()).find("'p/a\\x00b'"), std::string::npos) << e.what();
  }
}

TEST(S3Etag, DigestKinds) {
  std::string reason;
  auto md5 = digest_from_etag("\"0CC175B9C0F1B6A831C399E269772661\"", "", reason);
  ASSERT_TRUE(md5);
  EXPECT_EQ(md5->kind, DigestKind::Md5);
  EXPECT_EQ(md5->value, "0cc175b9c0f1b6a831c399e269772661");
  auto mp = digest_from_etag("\"5d41402abc4b2a76b9719d911017c592-3\"", "AES256", reason);
  ASSERT_TRUE(mp);
  EXPECT_EQ(mp->kind, DigestKind::Md5Multipart);
  EXPECT_EQ(mp->parts, 3u);
  EXPECT_EQ(mp->value, "5d41402abc4b2a76b9719d911017c592");

  EXPECT_FALSE(digest_from_etag("\"0cc175b9c0f1b6a831c399e269772661\"", "aws:kms", reason));
  EXPECT_NE(reason.find("SSE-KMS"), std::string::npos);
  EXPECT_FALSE(digest_from_etag("\"0cc175b9c0f1b6a831c399e269772661-2\"", "aws:kms:dsse", reason));
  EXPECT_FALSE(digest_from_etag("\"abc\"", "", reason));
  EXPECT_NE(reason.find("'abc'"), std::string::npos);
  EXPECT_FALSE(digest_from_etag("\"5d41402abc4b2a76b9719d911017c592-0\"", "", reason));
  EXPECT_FALSE(digest_from_etag("\"5d41402abc4b2a76b9719d911017c592-x\"", "", reason));
  EXPECT_FALSE(digest_from_etag("", "", reason));
  EXPECT_EQ(reason, "no ETag");
}

TEST(S3Etag, MultipartPartSizesOfBoto3AndTheAwsCliAreTried) {
  // boto3 and the AWS CLI upload in 8 MiB parts (doubling when a file would need over 10000 parts).
  constexpr uint64_t MiB = 1 << 20;
  for (uint64_t part : {8 * MiB, 16 * MiB, 64 * MiB}) {
    uint64_t size = 5 * part + 123;
    Digest d{DigestKind::Md5Multipart, "5d41402abc4b2a76b9719d911017c592", 6, 0};
    auto expected = normalize_digest(d, size, "x");
    EXPECT_NE(std::find(expected.part_sizes.begin(), expected.part_sizes.end(), part), expected.part_sizes.end())
        << part;
  }
}

TEST(S3Config, RegionPrecedence) {
  testsupport::TempDir dir;
  std::ofstream(dir / "config") << "[default]\nregion = ap-south-1\n[profile p]\nregion = eu-north-1\n";
  std::string cfg = (dir / "config").string();
  SourceParameters none;
  SourceParameters with_region{"eu-west-2", "", "", ""};
  EXPECT_EQ(resolve_config(uri("b", "", "us-west-2"), with_region, fake_env({{"AWS_REGION", "x"}})).region,
            "us-west-2");
  EXPECT_EQ(resolve_config(uri("b"), with_region, fake_env({{"AWS_REGION", "x"}})).region, "eu-west-2");
  EXPECT_EQ(resolve_config(uri("b"), none, fake_env({{"AWS_REGION", "r1"}, {"AWS_DEFAULT_REGION", "r2"}})).region,
            "r1");
  EXPECT_EQ(resolve_config(uri("b"), none, fake_env({{"AWS_DEFAULT_REGION", "r2"}})).region, "r2");
  EXPECT_EQ(resolve_config(uri("b"), none, fake_env({{"AWS_CONFIG_FILE", cfg}})).region, "ap-south-1");
  EXPECT_EQ(resolve_config(uri("b"), none, fake_env({{"AWS_CONFIG_FILE", cfg}, {"AWS_PROFILE", "p"}})).region,
            "eu-north-1");
  EXPECT_EQ(resolve_config(uri("b"), none, fake_env({{"HOME", dir.path().string()}})).region, "us-east-1");
}

TEST(S3Config, EndpointsAndAddressingStyle) {
  SourceParameters none;
  auto aws = resolve_config(uri("my-bucket", "models/x", "eu-west-1"), none, fake_env({}));
  EXPECT_FALSE(aws.path_style);
  EXPECT_EQ(aws.bucket_url(), "https://my-bucket.s3.eu-west-1.amazonaws.com/");
  EXPECT_EQ(aws.object_url("models/x/a b+c.json"), "https://my-bucket.s3.eu-west-1.amazonaws.com/models/x/a%20b%2Bc.json");

  auto dotted = resolve_config(uri("my.bucket", "", "eu-west-1"), none, fake_env({}));
  EXPECT_TRUE(dotted.path_style);
  EXPECT_EQ(dotted.bucket_url(), "https://s3.eu-west-1.amazonaws.com/my.bucket/");

  SourceParameters custom{"", "http://127.0.0.1:9000/", "", ""};
  auto minio = resolve_config(uri("b"), custom, fake_env({}));
  EXPECT_TRUE(minio.path_style);
  EXPECT_EQ(minio.bucket_url(), "http://127.0.0.1:9000/b/");

  SourceParameters virtual_hosted{"", "https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com", "false", ""};
  EXPECT_EQ(resolve_config(uri("b"), virtual_hosted, fake_env({})).bucket_url(),
            "https://b.ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com/");

  EXPECT_EQ(resolve_config(uri("b"), none, fake_env({{"AWS_ENDPOINT_URL", "http://e1"}, {"AWS_ENDPOINT_URL_S3", "http://e2"}}))
                .endpoint,
            "http://e2");
  EXPECT_EQ(resolve_config(uri("b"), none, fake_env({{"AWS_ENDPOINT_URL", "http://e1"}})).endpoint, "http://e1");

  SourceParameters bad_endpoint{"", "ftp://x", "", ""};
  EXPECT_NE(error_of([&] { resolve_config(uri("b"), bad_endpoint, fake_env({})); }).find("parameter endpoint 'ftp://x'"),
            std::string::npos);
  SourceParameters bad_style{"", "", "sometimes", ""};
  EXPECT_NE(error_of([&] { resolve_config(uri("b"), bad_style, fake_env({})); }).find("path_style 'sometimes'"),
            std::string::npos);
}
