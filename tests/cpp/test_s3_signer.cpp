// SigV4 against AWS's published S3 examples, URI encoding, dates, and the credential chain.

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "modelagent/errors.hpp"
#include "modelagent/s3.hpp"
#include "support/temp_dir.hpp"

using namespace modelagent;
using namespace modelagent::s3;

namespace {

// The example account of the AWS SigV4 documentation.
Credentials example_credentials() {
  Credentials c;
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  return c;
}

std::shared_ptr<const CredentialsProvider> example_provider() {
  return std::make_shared<StaticCredentialsProvider>(example_credentials(), "test");
}

std::chrono::system_clock::time_point may_24_2013() {
  return *parse_iso8601("20130524T000000Z");
}

std::string header(const HeaderList& headers, const std::string& name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "<absent>";
}

EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

void write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

}  // namespace

TEST(S3Signer, AwsExampleGetObjectWithRange) {
  SigV4Signer signer(example_provider(), "us-east-1", "s3", /*unsigned_payload=*/false);
  HeaderList headers = {{"Range", "bytes=0-9"}};
  auto r = signer.sign_at("GET", "https://examplebucket.s3.amazonaws.com/test.txt", "", headers, may_24_2013(),
                          example_credentials());
  EXPECT_EQ(r.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(header(headers, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(header(headers, "x-amz-date"), "20130524T000000Z");
  EXPECT_EQ(header(headers, "x-amz-content-sha256"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(S3Signer, AwsExampleGetBucketLifecycleSubresourceWithoutValue) {
  SigV4Signer signer(example_provider(), "us-east-1", "s3", false);
  HeaderList headers;
  auto r = signer.sign_at("GET", "https://examplebucket.s3.amazonaws.com/?lifecycle", "", headers, may_24_2013(),
                          example_credentials());
  EXPECT_EQ(r.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(S3Signer, AwsExampleListObjectsQueryIsSorted) {
  SigV4Signer signer(example_provider(), "us-east-1", "s3", false);
  HeaderList headers;
  // Written in the opposite order to the example; the canonical query sorts it.
  auto r = signer.sign_at("GET", "https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2", "", headers,
                          may_24_2013(), example_credentials());
  EXPECT_EQ(r.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  EXPECT_NE(r.canonical_request.find("\nmax-keys=2&prefix=J\n"), std::string::npos);
}

TEST(S3Signer, UnsignedPayloadForGetAndBodyHashOtherwise) {
  SigV4Signer signer(example_provider(), "eu-west-1");
  HeaderList get;
  signer.sign_at("GET", "https://b.s3.eu-west-1.amazonaws.com/k", "", get, may_24_2013(), example_credentials());
  EXPECT_EQ(header(get, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
  HeaderList post;
  signer.sign_at("POST", "https://b.s3.eu-west-1.amazonaws.com/k?uploads", "abc", post, may_24_2013(),
                 example_credentials());
  EXPECT_EQ(header(post, "x-amz-content-sha256"), sha256_hex("abc"));
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(S3Signer, SessionTokenIsSentAndSigned) {
  SigV4Signer signer(example_provider(), "us-east-1");
  Credentials c = example_credentials();
  c.session_token = "FQoGZXIvYXdzE//token+/=";
  HeaderList headers = {{"X-Amz-Security-Token", "stale"}, {"Authorization", "stale"}};
  auto r = signer.sign_at("GET", "https://b.s3.amazonaws.com/k", "", headers, may_24_2013(), c);
  EXPECT_EQ(header(headers, "x-amz-security-token"), c.session_token);
  EXPECT_EQ(header(headers, "X-Amz-Security-Token"), "<absent>");
  EXPECT_EQ(header(headers, "Authorization"), "<absent>");
  EXPECT_NE(r.authorization.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"),
            std::string::npos);
}

TEST(S3Signer, HostKeepsNonDefaultPortAndDropsDefault) {
  SigV4Signer signer(example_provider(), "us-east-1");
  HeaderList h1, h2;
  auto a = signer.sign_at("GET", "http://127.0.0.1:9000/b/k", "", h1, may_24_2013(), example_credentials());
  auto b = signer.sign_at("GET", "https://Host.Example:443/b/k", "", h2, may_24_2013(), example_credentials());
  EXPECT_NE(a.canonical_request.find("\nhost:127.0.0.1:9000\n"), std::string::npos);
  EXPECT_NE(b.canonical_request.find("\nhost:host.example\n"), std::string::npos);
}

TEST(S3Signer, PathIsUsedAsEncodedAndQueryIsNormalised) {
  SigV4Signer signer(example_provider(), "us-east-1");
  HeaderList h;
  auto r = signer.sign_at("GET", "https://b.s3.amazonaws.com/dir/a%20b%2Bc.txt?continuation-token=a%2Fb%3D&x=",
                          "", h, may_24_2013(), example_credentials());
  EXPECT_TRUE(r.canonical_request.starts_with("GET\n/dir/a%20b%2Bc.txt\ncontinuation-token=a%2Fb%3D&x=\n"))
      << r.canonical_request;
}

TEST(S3Signer, SignUsesProviderAndFreshDate) {
  SigV4Signer signer(example_provider(), "us-east-1");
  HeaderList h;
  signer.sign("GET", "https://b.s3.amazonaws.com/k", "", h);
  auto date = parse_iso8601(header(h, "x-amz-date"));
  ASSERT_TRUE(date);
  EXPECT_LT(std::chrono::abs(std::chrono::system_clock::now() - *date), std::chrono::hours(1));
  EXPECT_NE(header(h, "authorization").find("Credential=AKIAIOSFODNN7EXAMPLE/"), std::string::npos);
  EXPECT_NE(signer.describe().find("test"), std::string::npos);
}

TEST(S3Encoding, UriEncodeFollowsAwsRules) {
  EXPECT_EQ(uri_encode("a b/c~d-e_f.g", true), "a%20b/c~d-e_f.g");
  EXPECT_EQ(uri_encode("a b/c", false), "a%20b%2Fc");
  EXPECT_EQ(uri_encode("+=&?%", true), "%2B%3D%26%3F%25");
  EXPECT_EQ(uri_encode("\xC3\xA9", true), "%C3%A9");
}

TEST(S3Encoding, UriDecode) {
  EXPECT_EQ(uri_decode("a%20b+c%2B", true), "a b c+");
  EXPECT_EQ(uri_decode("a+b", false), "a+b");
  EXPECT_THROW(uri_decode("bad%2", true), std::invalid_argument);
  EXPECT_THROW(uri_decode("bad%zz", true), std::invalid_argument);
}

TEST(S3Dates, Iso8601) {
  auto t = parse_iso8601("2019-11-01T12:30:05Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(amz_date(*t), "20191101T123005Z");
  EXPECT_EQ(amz_date(*parse_iso8601("2019-11-01T12:30:05.123Z")), "20191101T123005Z");
  EXPECT_FALSE(parse_iso8601("2019-11-01"));
  EXPECT_FALSE(parse_iso8601("yesterday"));
}

TEST(S3Credentials, SecretDataWinsAndAcceptsUpperCaseKeys) {
  ChainInputs in;
  in.secret = {{"AWS_ACCESS_KEY_ID", "SECRETID"}, {"AWS_SECRET_ACCESS_KEY", "s"}, {"aws_session_token", "tok"}};
  in.env = fake_env({{"AWS_ACCESS_KEY_ID", "ENVID"}, {"AWS_SECRET_ACCESS_KEY", "e"}});
  auto p = resolve_credentials(in);
  EXPECT_EQ(p->get().access_key_id, "SECRETID");
  EXPECT_EQ(p->get().session_token, "tok");
  EXPECT_EQ(p->describe(), "the model's Secret");
}

TEST(S3Credentials, HalfASecretIsAnErrorNamingTheKey) {
  ChainInputs in;
  in.secret = {{"aws_access_key_id", "ID"}};
  in.env = fake_env({{"AWS_ACCESS_KEY_ID", "ENVID"}, {"AWS_SECRET_ACCESS_KEY", "e"}});
  try {
    resolve_credentials(in);
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("aws_secret_access_key"), std::string::npos);
  }
}

TEST(S3Credentials, Environment) {
  ChainInputs in;
  in.env = fake_env({{"AWS_ACCESS_KEY_ID", "ENVID"}, {"AWS_SECRET_ACCESS_KEY", "e"}, {"AWS_SESSION_TOKEN", "t"}});
  auto c = resolve_credentials(in)->get();
  EXPECT_EQ(c.access_key_id, "ENVID");
  EXPECT_EQ(c.session_token, "t");
  in.env = fake_env({{"AWS_ACCESS_KEY_ID", "ENVID"}});
  EXPECT_THROW(resolve_credentials(in), CredentialsError);
}

TEST(S3Credentials, SharedCredentialsFileWithProfiles) {
  testsupport::TempDir dir;
  write(dir / "credentials",
        "# comment\n[default]\naws_access_key_id = DEF\naws_secret_access_key = d\n\n"
        "[team]\naws_access_key_id=TEAM\naws_secret_access_key=t\naws_session_token = st\n");
  ChainInputs in;
  in.env = fake_env({{"AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").string()}, {"HOME", dir.path().string()}});
  EXPECT_EQ(resolve_credentials(in)->get().access_key_id, "DEF");
  in.profile = "team";
  auto p = resolve_credentials(in);
  EXPECT_EQ(p->get().access_key_id, "TEAM");
  EXPECT_EQ(p->get().session_token, "st");
  EXPECT_NE(p->describe().find("profile team"), std::string::npos);
  in.profile = "";
  in.env = fake_env({{"AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").string()}, {"AWS_PROFILE", "team"}});
  EXPECT_EQ(resolve_credentials(in)->get().access_key_id, "TEAM");
}

TEST(S3Credentials, ConfigFileProfileSection) {
  testsupport::TempDir dir;
  write(dir / "config", "[profile cfg]\nregion = eu-west-3\naws_access_key_id = CFG\naws_secret_access_key = c\n"
                        "s3 =\n  addressing_style = path\n");
  ChainInputs in;
  in.profile = "cfg";
  in.env = fake_env({{"AWS_CONFIG_FILE", (dir / "config").string()}, {"HOME", dir.path().string()}});
  EXPECT_EQ(resolve_credentials(in)->get().access_key_id, "CFG");
  auto ini = parse_ini("[profile cfg]\ns3 =\n  addressing_style = path\n", "x");
  EXPECT_EQ(ini["profile cfg"]["s3.addressing_style"], "path");
}

TEST(S3Credentials, MissingNamedProfileAndMissingExplicitFileAreErrors) {
  testsupport::TempDir dir;
  write(dir / "credentials", "[default]\naws_access_key_id = DEF\naws_secret_access_key = d\n");
  ChainInputs in;
  in.profile = "nope";
  in.env = fake_env({{"AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").string()}, {"HOME", dir.path().string()}});
  try {
    resolve_credentials(in);
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos);
  }
  in.profile = "";
  in.env = fake_env({{"AWS_SHARED_CREDENTIALS_FILE", (dir / "missing").string()}});
  try {
    resolve_credentials(in);
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("AWS_SHARED_CREDENTIALS_FILE"), std::string::npos);
  }
}

TEST(S3Credentials, NothingConfiguredListsWhatWasTried) {
  testsupport::TempDir dir;
  ChainInputs in;
  in.env = fake_env({{"HOME", dir.path().string()}});
  try {
    resolve_credentials(in);
    FAIL();
  } catch (const CredentialsError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("AWS_WEB_IDENTITY_TOKEN_FILE"), std::string::npos);
    EXPECT_NE(m.find(".aws/credentials"), std::string::npos);
  }
}

TEST(S3Credentials, MalformedIniNamesFileAndLine) {
  try {
    parse_ini("[default]\nthis is not a pair\n", "/x/credentials");
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("/x/credentials:2"), std::string::npos);
  }
  EXPECT_THROW(parse_ini("key = before section\n", "f"), CredentialsError);
  EXPECT_THROW(parse_ini("[broken\n", "f"), CredentialsError);
}

TEST(S3Credentials, WebIdentityNeedsRoleArnAndReadsTheTokenFile) {
  ChainInputs in;
  in.env = fake_env({{"AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"}});
  EXPECT_THROW(resolve_credentials(in), CredentialsError);
  in.env = fake_env({{"AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"},
                     {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r"},
                     {"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9"}});
  auto p = resolve_credentials(in);
  EXPECT_NE(p->describe().find("/nonexistent/token"), std::string::npos);
  try {
    p->get();
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/token"), std::string::npos);
  }
}

TEST(S3Credentials, AssumeRoleResponse) {
  std::string xml =
      "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
      "<AssumeRoleWithWebIdentityResult><Credentials><SessionToken>tok&amp;en</SessionToken>"
      "<SecretAccessKey>sec</SecretAccessKey><Expiration>2030-01-02T03:04:05Z</Expiration>"
      "<AccessKeyId>ASIA1</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>"
      "</AssumeRoleWithWebIdentityResponse>";
  auto c = parse_assume_role_response(xml, "http://sts");
  EXPECT_EQ(c.access_key_id, "ASIA1");
  EXPECT_EQ(c.session_token, "tok&en");
  ASSERT_TRUE(c.expiration);
  EXPECT_EQ(amz_date(*c.expiration), "20300102T030405Z");
  EXPECT_THROW(parse_assume_role_response("<AssumeRoleWithWebIdentityResponse/>", "http://sts"), CredentialsError);
  EXPECT_THROW(parse_assume_role_response("<unclosed>", "http://sts"), CredentialsError);
}
