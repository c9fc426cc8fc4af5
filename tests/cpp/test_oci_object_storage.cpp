#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/oci_object_storage.hpp"
#include "support/loopback_server.hpp"

namespace oci = modelagent::oci;
using modelagent::DigestKind;

namespace {

oci::ObjectSummary object(const std::string& name, uint64_t size, const std::string& md5 = "1B2M2Y8AsgTpgAmY7PhCfg==") {
  oci::ObjectSummary o;
  o.name = name;
  o.size = size;
  o.md5 = md5;
  o.etag = "etag-" + name;
  return o;
}

std::vector<std::string> paths(const oci::Selection& s) {
  std::vector<std::string> out;
  for (const auto& o : s.selected) out.push_back(o.relative_path);
  return out;
}

std::string reason(const oci::Selection& s, const std::string& name) {
  for (const auto& e : s.excluded) {
    if (e.path == name) return e.reason;
  }
  return "";
}

template <typename E, typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected exception not thrown";
  return "";
}

class HeaderSigner : public modelagent::RequestSigner {
 public:
  void sign(const std::string& method, const std::string& url, const std::string&,
            modelagent::HeaderList& headers) const override {
    headers.emplace_back("Authorization", "Test " + method + " " + url);
  }
  std::string describe() const override { return "test principal"; }
};

modelagent::HttpResponse response(long status, std::string body, std::multimap<std::string, std::string> headers = {}) {
  modelagent::HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

}  // namespace

// ---- URIs and URLs ----

TEST(OciUri, ThreeFormsParse) {
  auto canonical = oci::parse_uri("oci://n/myns/b/models/o/llama/7b");
  EXPECT_EQ(canonical.namespace_name, "myns");
  EXPECT_EQ(canonical.bucket, "models");
  EXPECT_EQ(canonical.prefix, "llama/7b");
  auto regional = oci::parse_uri("oci://myns@us-ashburn-1/models/llama");
  EXPECT_EQ(regional.namespace_name, "myns");
  EXPECT_EQ(regional.region, "us-ashburn-1");
  EXPECT_EQ(regional.prefix, "llama");
  auto bucket_only = oci::parse_uri("oci://models");
  EXPECT_EQ(bucket_only.namespace_name, "");
  EXPECT_EQ(bucket_only.bucket, "models");
  EXPECT_EQ(bucket_only.prefix, "");
  EXPECT_THROW(oci::parse_uri("hf://org/name"), modelagent::InvalidStorageUri);
  EXPECT_THROW(oci::parse_uri("oci://n/ns/b"), modelagent::InvalidStorageUri);
}

TEST(OciUri, EndpointSelection) {
  EXPECT_EQ(oci::endpoint_for_region("eu-frankfurt-1"), "https://objectstorage.eu-frankfurt-1.oraclecloud.com");
  EXPECT_THROW(oci::endpoint_for_region("eu/frankfurt"), std::invalid_argument);
  ::unsetenv(oci::kEndpointEnv);
  EXPECT_EQ(oci::resolve_endpoint("", "us-phoenix-1"), "https://objectstorage.us-phoenix-1.oraclecloud.com");
  EXPECT_EQ(oci::resolve_endpoint("http://127.0.0.1:9/", "us-phoenix-1"), "http://127.0.0.1:9");
  ::setenv(oci::kEndpointEnv, "http://127.0.0.1:8/", 1);
  EXPECT_EQ(oci::resolve_endpoint("", "us-phoenix-1"), "http://127.0.0.1:8");
  EXPECT_EQ(oci::resolve_endpoint("http://explicit", ""), "http://explicit");
  ::unsetenv(oci::kEndpointEnv);
  auto msg = message_of<modelagent::CredentialsError>([] { oci::resolve_endpoint("", ""); });
  EXPECT_NE(msg.find("region"), std::string::npos) << msg;
  EXPECT_NE(msg.find(oci::kEndpointEnv), std::string::npos) << msg;
}

TEST(OciUri, RequestUrls) {
  const std::string ep = "https://os.example";
  EXPECT_EQ(oci::namespace_url(ep), "https://os.example/n/");
  EXPECT_EQ(oci::object_url(ep, "ns", "bkt", "models/llama/model 1.safetensors"),
            "https://os.example/n/ns/b/bkt/o/models%2Fllama%2Fmodel%201.safetensors");
  EXPECT_EQ(oci::list_url(ep, "ns", "bkt", "models/llama/", "", 1000),
            "https://os.example/n/ns/b/bkt/o?fields=name%2Csize%2Cetag%2Cmd5%2CtimeCreated%2CtimeModified%2C"
            "storageTier%2CarchivalState&prefix=models%2Fllama%2F&limit=1000");
  // The pagination token goes back as 'start'.
  EXPECT_EQ(oci::list_url(ep, "ns", "bkt", "", "a/b c", 3),
            "https://os.example/n/ns/b/bkt/o?fields=name%2Csize%2Cetag%2Cmd5%2CtimeCreated%2CtimeModified%2C"
            "storageTier%2CarchivalState&limit=3&start=a%2Fb%20c");
  EXPECT_EQ(oci::directory_prefix(""), "");
  EXPECT_EQ(oci::directory_prefix("models/llama"), "models/llama/");
  EXPECT_EQ(oci::directory_prefix("models/llama//"), "models/llama/");
}

// ---- listing and responses ----

TEST(OciList, ParsesPageWithAllFields) {
  auto page = oci::parse_list_page(
      R"({"objects":[{"name":"m/a.bin","size":12,"etag":"e1","md5":"abc==","timeCreated":"2024-01-01T00:00:00Z",
      "timeModified":"2024-01-02T00:00:00Z","storageTier":"Standard","archivalState":null},{"name":"m/","size":0}],
      "prefixes":[],"nextStartWith":"m/b"})",
      "http://x/list");
  ASSERT_EQ(page.objects.size(), 2u);
  EXPECT_EQ(page.objects[0].name, "m/a.bin");
  EXPECT_EQ(page.objects[0].size, 12u);
  EXPECT_EQ(page.objects[0].etag, "e1");
  EXPECT_EQ(page.objects[0].md5, "abc==");
  EXPECT_EQ(page.objects[0].storage_tier, "Standard");
  EXPECT_EQ(page.objects[0].archival_state, "");
  EXPECT_EQ(page.objects[0].time_modified, "2024-01-02T00:00:00Z");
  EXPECT_EQ(page.next_start_with, "m/b");
  EXPECT_EQ(oci::parse_list_page(R"({"objects":[]})", "u").next_start_with, "");
}

TEST(OciList, MalformedListingNamesTheField) {
  auto msg = message_of<modelagent::DownloadError>([] { oci::parse_list_page("{oops", "http://x/l"); });
  EXPECT_NE(msg.find("http://x/l"), std::string::npos) << msg;
  msg = message_of<modelagent::DownloadError>([] { oci::parse_list_page(R"({"items":[]})", "u"); });
  EXPECT_NE(msg.find("'objects'"), std::string::npos) << msg;
  msg = message_of<modelagent::DownloadError>([] { oci::parse_list_page(R"({"objects":[{"size":1}]})", "u"); });
  EXPECT_NE(msg.find("'name'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("object #0"), std::string::npos) << msg;
  msg = message_of<modelagent::DownloadError>(
      [] { oci::parse_list_page(R"({"objects":[{"name":"a","size":1},{"name":"b"}]})", "u"); });
  EXPECT_NE(msg.find("object #1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'b'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'size'"), std::string::npos) << msg;
  msg = message_of<modelagent::DownloadError>([] { oci::parse_list_page(R"({"objects":[{"name":"a","size":-4}]})", "u"); });
  EXPECT_NE(msg.find("'size'"), std::string::npos) << msg;
  msg = message_of<modelagent::DownloadError>([] { oci::parse_list_page(R"({"objects":[{"name":"a","size":"4"}]})", "u"); });
  EXPECT_NE(msg.find("'size'"), std::string::npos) << msg;
  msg = message_of<modelagent::DownloadError>(
      [] { oci::parse_list_page(R"({"objects":[{"name":"a","size":4,"md5":7}]})", "u"); });
  EXPECT_NE(msg.find("'md5'"), std::string::npos) << msg;
  msg = message_of<modelagent::DownloadError>(
      [] { oci::parse_list_page(R"({"objects":[],"nextStartWith":3})", "u"); });
  EXPECT_NE(msg.find("'nextStartWith'"), std::string::npos) << msg;
}

TEST(OciList, NamespaceBodyIsAJsonString) {
  EXPECT_EQ(oci::parse_namespace("\"axabc123\"", "u"), "axabc123");
  EXPECT_THROW(oci::parse_namespace("axabc123", "u"), modelagent::DownloadError);
  EXPECT_THROW(oci::parse_namespace("{\"namespace\":\"x\"}", "u"), modelagent::DownloadError);
  EXPECT_THROW(oci::parse_namespace("\"\"", "u"), modelagent::DownloadError);
}

TEST(OciList, HeadHeaders) {
  auto head = oci::parse_head(response(200, "",
                                       {{"content-length", "42"},
                                        {"etag", "e"},
                                        {"opc-multipart-md5", "abc==-3"},
                                        {"opc-meta-md5", "xyz=="},
                                        {"archival-state", "Restored"}}));
  EXPECT_EQ(head.size, 42u);
  EXPECT_EQ(head.etag, "e");
  EXPECT_EQ(head.content_md5, "");
  EXPECT_EQ(head.multipart_md5, "abc==-3");
  EXPECT_EQ(head.meta_md5, "xyz==");
  EXPECT_EQ(head.archival_state, "Restored");
}

TEST(OciErrors, StatusMapping) {
  oci::ErrorContext ctx{"ns", "bkt", "m/a.bin", "OCI user principal (profile DEFAULT)"};
  EXPECT_NO_THROW(oci::raise_for_status(response(200, ""), "u", ctx));
  auto r401 = response(401, R"({"code":"NotAuthenticated","message":"The required information to complete authentication was not provided."})",
                       {{"opc-request-id", "req-401"}});
  auto msg = message_of<modelagent::CredentialsError>([&] { oci::raise_for_status(r401, "http://x/o", ctx); });
  EXPECT_NE(msg.find("NotAuthenticated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("req-401"), std::string::npos) << msg;
  EXPECT_NE(msg.find("profile DEFAULT"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'m/a.bin'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("clock"), std::string::npos) << msg;

  auto r404 = response(404, R"({"code":"BucketNotFound","message":"Either the bucket named 'bkt' does not exist"})",
                       {{"opc-request-id", "req-404"}});
  try {
    oci::raise_for_status(r404, "http://x/l", {"ns", "bkt", "", ""});
    FAIL();
  } catch (const modelagent::HttpStatusError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.url(), "http://x/l");
    std::string m = e.what();
    EXPECT_NE(m.find("bucket not found"), std::string::npos) << m;
    EXPECT_NE(m.find("'ns'"), std::string::npos) << m;
    EXPECT_NE(m.find("req-404"), std::string::npos) << m;
  }
  // A HEAD 404 has no body: the object is named anyway.
  msg = message_of<modelagent::HttpStatusError>([&] { oci::raise_for_status(response(404, ""), "u", ctx); });
  EXPECT_NE(msg.find("object not found: object 'm/a.bin'"), std::string::npos) << msg;
  msg = message_of<modelagent::HttpStatusError>([&] {
    oci::raise_for_status(response(404, R"({"code":"NotAuthorizedOrNotFound","message":"no"})"), "u",
                          {"ns", "bkt", "", "p"});
  });
  EXPECT_NE(msg.find("not authorized"), std::string::npos) << msg;

  try {
    oci::raise_for_status(response(429, R"({"code":"TooManyRequests","message":"slow"})", {{"retry-after", "7"}}), "u", ctx);
    FAIL();
  } catch (const modelagent::RateLimitedError& e) {
    EXPECT_EQ(e.retry_after(), 7);
  }
  msg = message_of<modelagent::HttpStatusError>([&] { oci::raise_for_status(response(500, "<html>"), "u", ctx); });
  EXPECT_NE(msg.find("HTTP 500"), std::string::npos) << msg;
}

// ---- selection ----

TEST(OciSelect, PrefixIsADirectoryRemovedOnlyAtTheStart) {
  std::vector<oci::ObjectSummary> objects = {object("models/llama/config.json", 3),
                                             object("models/llama/sub/models/llama/x.bin", 4),
                                             object("models/llama2/config.json", 5)};
  auto s = oci::select_objects(objects, "models/llama", {});
  EXPECT_EQ(paths(s), (std::vector<std::string>{"config.json", "sub/models/llama/x.bin"}));
  EXPECT_NE(reason(s, "models/llama2/config.json").find("outside the prefix"), std::string::npos);
  // A trailing '/' in the URI prefix changes nothing; no prefix keeps whole names.
  EXPECT_EQ(paths(oci::select_objects(objects, "models/llama/", {})).size(), 2u);
  EXPECT_EQ(paths(oci::select_objects({object("a/b", 1)}, "", {})), (std::vector<std::string>{"a/b"}));
}

TEST(OciSelect, FolderMarkersAndReservedPathsAreSkipped) {
  std::vector<oci::ObjectSummary> objects = {object("m/", 0), object("m/sub/", 0), object("m/a", 1),
                                             object("m/.modelagent/download.json", 2), object("m/odd/", 9)};
  auto s = oci::select_objects(objects, "m", {});
  EXPECT_EQ(paths(s), (std::vector<std::string>{"a"}));
  EXPECT_EQ(reason(s, "m/"), "folder marker");
  EXPECT_EQ(reason(s, "m/sub/"), "folder marker");
  EXPECT_EQ(reason(s, "m/.modelagent/download.json"), "reserved path");
  EXPECT_NE(reason(s, "m/odd/").find("not empty"), std::string::npos);
}

TEST(OciSelect, UnsafeNamesAreRejectedNamingTheObject) {
  for (const std::string& name : std::vector<std::string>{"m/../etc/passwd", "m/a/../../x", "m//abs", "m/./x", std::string("m/a\0b", 5),
                                 "m/a\\..\\b", "m/" + std::string(300, 'x')}) {
    auto msg = message_of<modelagent::UnsafePathError>(
        [&] { oci::select_objects({object("m/ok", 1), object(name, 1)}, "m", {}); });
    std::string shown = name.find('\0') == std::string::npos ? name : "m/a\\x00b";
    EXPECT_NE(msg.find("'" + shown + "'"), std::string::npos) << msg;
  }
  // No prefix: a leading '/' is an absolute path.
  auto msg = message_of<modelagent::UnsafePathError>([] { oci::select_objects({object("/etc/x", 1)}, "", {}); });
  EXPECT_NE(msg.find("absolute"), std::string::npos) << msg;
}

TEST(OciSelect, IncludeExcludeAndArchived) {
  std::vector<oci::ObjectSummary> objects = {object("m/config.json", 1), object("m/model.safetensors", 2),
                                             object("m/model.bin", 3), object("m/sub/x.safetensors", 4)};
  auto s = oci::select_objects(objects, "m", {{"*.safetensors", "*.json"}, {"model.*"}});
  EXPECT_EQ(paths(s), (std::vector<std::string>{"config.json"}));
  EXPECT_EQ(reason(s, "m/model.safetensors"), "excluded by pattern 'model.*'");
  EXPECT_EQ(reason(s, "m/sub/x.safetensors"), "not included");
  EXPECT_THROW(oci::select_objects(objects, "m", {{"[oops"}, {}}), std::invalid_argument);

  auto cold = object("m/cold.bin", 5);
  cold.archival_state = "Archived";
  auto warming = object("m/warming.bin", 5);
  warming.storage_tier = "Archive";
  warming.archival_state = "Restoring";
  auto restored = object("m/restored.bin", 5);
  restored.storage_tier = "Archive";
  restored.archival_state = "Restored";
  auto msg = message_of<modelagent::DownloadError>(
      [&] { oci::select_objects({cold, warming, restored, object("m/ok", 1)}, "m", {}); });
  EXPECT_NE(msg.find("'m/cold.bin'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'m/warming.bin'"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("restored.bin"), std::string::npos) << msg;
  // Excluded archived objects do not matter.
  EXPECT_EQ(paths(oci::select_objects({cold, restored}, "m", {{}, {"cold.bin"}})),
            (std::vector<std::string>{"restored.bin"}));
}

// ---- digests ----

TEST(OciDigest, SinglePartFromListingOrHead) {
  auto o = object("a", 0, "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_FALSE(oci::needs_head(o));
  auto c = oci::choose_digest(o, nullptr);
  EXPECT_EQ(c.digest.kind, DigestKind::Md5);
  EXPECT_EQ(c.digest.value, "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_EQ(c.source, "listing md5");

  oci::ObjectHead head;
  head.content_md5 = "XUFAKrxLKna5cZ2REBfFkg==";
  c = oci::choose_digest(object("a", 5, ""), &head);
  EXPECT_EQ(c.digest.kind, DigestKind::Md5);
  EXPECT_EQ(c.digest.value, "XUFAKrxLKna5cZ2REBfFkg==");
  EXPECT_EQ(c.source, "Content-MD5");
}

TEST(OciDigest, MultipartAndMetaMd5) {
  const uint64_t mib = 1 << 20;
  auto o = object("big", 300 * mib, "");
  EXPECT_TRUE(oci::needs_head(o));
  EXPECT_TRUE(oci::needs_head(object("big", 300 * mib, "abcdefghijklmnopqrstuw==-3")));
  oci::ObjectHead head;
  head.multipart_md5 = "XUFAKrxLKna5cZ2REBfFkg==-3";  // 3 parts of 128 MiB (OCI CLI/SDK default)
  auto c = oci::choose_digest(o, &head);
  EXPECT_EQ(c.digest.kind, DigestKind::Md5Multipart);
  EXPECT_EQ(c.digest.value, "XUFAKrxLKna5cZ2REBfFkg==-3");
  EXPECT_EQ(c.source, "opc-multipart-md5");

  head.meta_md5 = "1B2M2Y8AsgTpgAmY7PhCfg==";
  c = oci::choose_digest(o, &head);
  EXPECT_EQ(c.digest.kind, DigestKind::Md5);
  EXPECT_EQ(c.digest.value, "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_EQ(c.source, "opc-meta-md5");

  // A malformed opc-meta-md5 falls back to the multipart digest.
  head.meta_md5 = "not-an-md5";
  c = oci::choose_digest(o, &head);
  EXPECT_EQ(c.digest.kind, DigestKind::Md5Multipart);

  // The listing's "<b64>-N" value is used when no HEAD was made.
  c = oci::choose_digest(object("big", 300 * mib, "XUFAKrxLKna5cZ2REBfFkg==-3"), nullptr);
  EXPECT_EQ(c.digest.kind, DigestKind::Md5Multipart);
}

TEST(OciDigest, NothingUsableIsUnverifiableWithTheReason) {
  oci::ObjectHead head;
  auto c = oci::choose_digest(object("x", 10, ""), &head);
  EXPECT_EQ(c.digest.kind, DigestKind::None);
  EXPECT_NE(c.unverifiable.find("no Content-MD5"), std::string::npos) << c.unverifiable;

  // 99999 non-empty parts cannot make up 10 bytes.
  head.multipart_md5 = "XUFAKrxLKna5cZ2REBfFkg==-99999";
  c = oci::choose_digest(object("x", 10, ""), &head);
  EXPECT_EQ(c.digest.kind, DigestKind::None);
  EXPECT_NE(c.unverifiable.find("opc-multipart-md5"), std::string::npos) << c.unverifiable;

  head = {};
  head.content_md5 = "zz";
  c = oci::choose_digest(object("x", 10, ""), &head);
  EXPECT_EQ(c.digest.kind, DigestKind::None);
  EXPECT_NE(c.unverifiable.find("Content-MD5 'zz'"), std::string::npos) << c.unverifiable;
}

TEST(OciPlan, EntriesCarryUrlSizeDigestSignerAndIfMatch) {
  auto signer = std::make_shared<HeaderSigner>();
  std::vector<oci::ObjectSummary> objects = {object("m/a b.json", 3), object("m/big", 20, "")};
  auto selection = oci::select_objects(objects, "m", {});
  std::map<std::string, oci::ObjectHead> heads;
  heads["m/big"] = oci::ObjectHead{};
  auto plan = oci::plan_objects("http://os", "ns", "bkt", selection, heads, signer);
  ASSERT_EQ(plan.plan.files.size(), 2u);
  const auto& f = plan.plan.files[0];
  EXPECT_EQ(f.relative_path, "a b.json");
  EXPECT_EQ(f.url, "http://os/n/ns/b/bkt/o/m%2Fa%20b.json");
  EXPECT_EQ(f.size, 3u);
  EXPECT_EQ(f.digest.kind, DigestKind::Md5);
  EXPECT_EQ(f.signer.get(), signer.get());
  ASSERT_EQ(f.headers.size(), 1u);
  EXPECT_EQ(f.headers[0].first, "If-Match");
  EXPECT_EQ(f.headers[0].second, "etag-m/a b.json");
  ASSERT_EQ(plan.unverifiable.size(), 1u);
  EXPECT_EQ(plan.unverifiable[0].path, "big");
}

// ---- API calls against a loopback server ----

TEST(OciClient, NamespaceHeadAndErrorsThroughHttpWithSigner) {
  testsupport::LoopbackServer server;
  server.add_file("/n/", "\"fakens\"", {{"Content-Type", "application/json"}});
  server.add_file("/n/fakens/b/bkt/o/m%2Fx.bin", "hello",
                  {{"Content-MD5", "XUFAKrxLKna5cZ2REBfFkg=="}, {"opc-meta-md5", "abc"}});
  oci::ClientOptions options;
  options.endpoint = server.base_url();
  options.signer = std::make_shared<HeaderSigner>();
  options.retry.base_seconds = 0.01;
  EXPECT_EQ(oci::get_namespace(options), "fakens");
  auto head = oci::head_object(options, "fakens", "bkt", "m/x.bin");
  EXPECT_EQ(head.size, 5u);
  EXPECT_EQ(head.content_md5, "XUFAKrxLKna5cZ2REBfFkg==");
  EXPECT_EQ(head.meta_md5, "abc");
  auto requests = server.requests();
  ASSERT_GE(requests.size(), 2u);
  EXPECT_EQ(requests[0].header("authorization"), "Test GET " + server.base_url() + "/n/");
  EXPECT_EQ(requests[1].method, "HEAD");
  EXPECT_EQ(requests[1].header("authorization"), "Test HEAD " + server.url("/n/fakens/b/bkt/o/m%2Fx.bin"));

  auto msg = message_of<modelagent::HttpStatusError>([&] { oci::head_object(options, "fakens", "bkt", "m/gone"); });
  EXPECT_NE(msg.find("'m/gone'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'bkt'"), std::string::npos) << msg;
}
