#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <fstream>
#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/http_client.hpp"
#include "modelagent/oci_signer.hpp"
#include "support/hf_test_server.hpp"
#include "support/temp_dir.hpp"

using modelagent::CredentialsError;
using modelagent::HeaderList;
using namespace modelagent::oci;

namespace {

const std::string kDate = "Tue, 14 Nov 2023 22:13:20 GMT";

// One key for the whole suite: RSA generation is the slow part.
const PrivateKey& test_key() {
  static const PrivateKey key = PrivateKey::generate(2048);
  return key;
}

std::string header(const HeaderList& headers, const std::string& name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

int count(const HeaderList& headers, const std::string& name) {
  int n = 0;
  for (const auto& kv : headers) n += kv.first == name;
  return n;
}

// Pulls `field="value"` out of an Authorization header.
std::string auth_field(const std::string& authorization, const std::string& field) {
  auto start = authorization.find(field + "=\"");
  if (start == std::string::npos) return "";
  start += field.size() + 2;
  return authorization.substr(start, authorization.find('"', start) - start);
}

bool verifies(const PrivateKey& key, const std::string& text, const std::string& signature_b64) {
  std::string signature = base64_decode(signature_b64);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, static_cast<EVP_PKEY*>(key.native())) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(text.data()), text.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

std::string pem_with(const PrivateKey& key, bool traditional, const std::string& passphrase) {
  BIO* bio = BIO_new(BIO_s_mem());
  auto* pkey = static_cast<EVP_PKEY*>(key.native());
  const EVP_CIPHER* cipher = passphrase.empty() ? nullptr : EVP_aes_256_cbc();
  auto* pass = reinterpret_cast<unsigned char*>(const_cast<char*>(passphrase.data()));
  int len = static_cast<int>(passphrase.size());
  int ok = traditional ? PEM_write_bio_PrivateKey_traditional(bio, pkey, cipher, pass, len, nullptr, nullptr)
                       : PEM_write_bio_PrivateKey(bio, pkey, cipher, pass, len, nullptr, nullptr);
  EXPECT_EQ(ok, 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

SignOptions at(const std::string& date) {
  SignOptions o;
  o.date = date;
  return o;
}

}  // namespace

TEST(OciSigner, GetSignsDateTargetAndHostInThatOrder) {
  HeaderList headers;
  sign_request("GET", "https://objectstorage.us-phoenix-1.oraclecloud.com/n/ns/b/bucket/o?prefix=a%2Fb&limit=2", "",
               headers, "ocid1.tenancy/ocid1.user/aa:bb", test_key(), at(kDate));
  EXPECT_EQ(header(headers, "date"), kDate);
  EXPECT_EQ(header(headers, "host"), "objectstorage.us-phoenix-1.oraclecloud.com");
  EXPECT_EQ(count(headers, "x-content-sha256"), 0);
  std::string authorization = header(headers, "authorization");
  EXPECT_EQ(authorization.rfind("Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host\","
                                "keyId=\"ocid1.tenancy/ocid1.user/aa:bb\",signature=\"",
                                0),
            0u)
      << authorization;
  EXPECT_EQ(authorization.substr(authorization.size() - 13), "\",version=\"1\"");
  const std::string expected_text =
      "date: " + kDate +
      "\n(request-target): get /n/ns/b/bucket/o?prefix=a%2Fb&limit=2"
      "\nhost: objectstorage.us-phoenix-1.oraclecloud.com";
  EXPECT_EQ(signing_string("GET", "/n/ns/b/bucket/o?prefix=a%2Fb&limit=2", {"date", "(request-target)", "host"},
                           headers),
            expected_text);
  EXPECT_TRUE(verifies(test_key(), expected_text, auth_field(authorization, "signature")));
}

TEST(OciSigner, PutAndPostAlsoSignTheBodyHeaders) {
  for (const std::string method : {"PUT", "POST", "PATCH"}) {
    HeaderList headers;
    sign_request(method, "https://h.example/x", "hello", headers, "k", test_key(), at(kDate));
    EXPECT_EQ(auth_field(header(headers, "authorization"), "headers"),
              "date (request-target) host content-length content-type x-content-sha256")
        << method;
    EXPECT_EQ(header(headers, "content-length"), "5");
    EXPECT_EQ(header(headers, "content-type"), "application/json");
    EXPECT_EQ(header(headers, "x-content-sha256"), "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=");
    std::string text = "date: " + kDate + "\n(request-target): " + (method == "PUT" ? "put" : method == "POST" ? "post" : "patch") +
                       " /x\nhost: h.example\ncontent-length: 5\ncontent-type: application/json\n"
                       "x-content-sha256: LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";
    EXPECT_TRUE(verifies(test_key(), text, auth_field(header(headers, "authorization"), "signature"))) << method;
  }
}

TEST(OciSigner, HeadAndDeleteSignNoBodyHeaders) {
  for (const std::string method : {"HEAD", "DELETE"}) {
    HeaderList headers;
    sign_request(method, "https://h.example/o/a", "", headers, "k", test_key(), at(kDate));
    EXPECT_EQ(auth_field(header(headers, "authorization"), "headers"), "date (request-target) host") << method;
    EXPECT_EQ(count(headers, "content-length"), 0);
  }
}

TEST(OciSigner, ExistingHeadersAreSignedAsTheyAreAndNotDuplicated) {
  HeaderList headers = {{"Content-Type", "application/octet-stream"}, {"Authorization", "Bearer old"}};
  sign_request("POST", "https://h.example/u", "{}", headers, "k", test_key(), at(kDate));
  EXPECT_EQ(count(headers, "content-type"), 0);
  EXPECT_EQ(header(headers, "Content-Type"), "application/octet-stream");
  EXPECT_EQ(count(headers, "Authorization"), 0);
  EXPECT_EQ(count(headers, "authorization"), 1);
  std::string text = signing_string("POST", "/u",
                                    {"date", "(request-target)", "host", "content-length", "content-type",
                                     "x-content-sha256"},
                                    headers);
  EXPECT_NE(text.find("content-type: application/octet-stream"), std::string::npos);
  EXPECT_TRUE(verifies(test_key(), text, auth_field(header(headers, "authorization"), "signature")));
}

TEST(OciSigner, OptionsDropBodyHeadersOrHost) {
  SignOptions put = at(kDate);
  put.body_headers = false;
  HeaderList headers;
  sign_request("PUT", "https://h.example/o/big", "payload", headers, "k", test_key(), put);
  EXPECT_EQ(auth_field(header(headers, "authorization"), "headers"), "date (request-target) host");
  EXPECT_EQ(count(headers, "x-content-sha256"), 0);

  SignOptions federation = at(kDate);
  federation.host = false;
  HeaderList fed;
  sign_request("POST", "https://auth.example/v1/x509", "{}", fed, "t/fed-x509-sha256/AB", test_key(), federation);
  EXPECT_EQ(auth_field(header(fed, "authorization"), "headers"),
            "date (request-target) content-length content-type x-content-sha256");
  EXPECT_EQ(count(fed, "host"), 0);
}

TEST(OciSigner, SignaturesAreDeterministicAndDateDefaultsToNow) {
  HeaderList a, b, now;
  sign_request("GET", "https://h.example/", "", a, "k", test_key(), at(kDate));
  sign_request("GET", "https://h.example/", "", b, "k", test_key(), at(kDate));
  EXPECT_EQ(header(a, "authorization"), header(b, "authorization"));
  sign_request("GET", "https://h.example/", "", now, "k", test_key());
  auto date = header(now, "date");
  ASSERT_EQ(date.size(), kDate.size());
  EXPECT_EQ(date.substr(date.size() - 4), " GMT");
}

TEST(OciSigner, UrlPartsAreTakenAsWritten) {
  EXPECT_EQ(url_host("https://h.example:8443/a?b=c"), "h.example:8443");
  EXPECT_EQ(url_host("http://user:pw@127.0.0.1:9/x"), "127.0.0.1:9");
  EXPECT_EQ(url_request_target("https://h.example"), "/");
  EXPECT_EQ(url_request_target("https://h.example?x=1"), "/?x=1");
  EXPECT_EQ(url_request_target("https://h.example/o/a%20b%2Fc?versionId=1#frag"), "/o/a%20b%2Fc?versionId=1");
  EXPECT_THROW(url_host("not a url"), std::invalid_argument);
  EXPECT_THROW(url_host("https:///no-host"), std::invalid_argument);
  EXPECT_THROW(url_host("://h.example/x"), std::invalid_argument);
  HeaderList headers;
  EXPECT_THROW(sign_request("GET", "/relative", "", headers, "k", test_key()), CredentialsError);
}

TEST(OciSigner, HttpDateIsRfc1123Gmt) {
  EXPECT_EQ(http_date(std::chrono::system_clock::time_point(std::chrono::seconds(1700000000))), kDate);
  EXPECT_EQ(http_date(std::chrono::system_clock::time_point(std::chrono::seconds(0))), "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST(OciSigner, Base64BothAlphabets) {
  EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
  EXPECT_EQ(base64_decode("aGVsbG8="), "hello");
  EXPECT_EQ(base64_decode("aGVsbG8"), "hello");
  EXPECT_EQ(base64_decode("-_8"), base64_decode("+/8="));
  EXPECT_THROW(base64_decode("a*b"), std::invalid_argument);
  EXPECT_EQ(base64_decode("aGVs\nbG8=\r\n"), "hello");
  EXPECT_THROW(base64_decode("aGVsb"), std::invalid_argument);  // 5 characters cannot be whole bytes
  EXPECT_THROW(base64_decode("aG=VsbG8"), std::invalid_argument);  // padding inside the text
}

TEST(OciKeys, LoadsPkcs1AndPkcs8PlainAndEncrypted) {
  const PrivateKey& key = test_key();
  for (bool traditional : {true, false}) {
    std::string plain = pem_with(key, traditional, "");
    EXPECT_NE(plain.find(traditional ? "BEGIN RSA PRIVATE KEY" : "BEGIN PRIVATE KEY"), std::string::npos);
    EXPECT_EQ(PrivateKey::from_pem(plain, "", "plain").fingerprint(), key.fingerprint());
    std::string encrypted = pem_with(key, traditional, "s3cret");
    EXPECT_NE(encrypted.find("ENCRYPTED"), std::string::npos);
    EXPECT_EQ(PrivateKey::from_pem(encrypted, "s3cret", "enc").fingerprint(), key.fingerprint());
    try {
      PrivateKey::from_pem(encrypted, "wrong", "/keys/api.pem");
      ADD_FAILURE() << "wrong passphrase accepted";
    } catch (const CredentialsError& e) {
      EXPECT_NE(std::string(e.what()).find("/keys/api.pem: wrong passphrase"), std::string::npos) << e.what();
    }
    try {
      PrivateKey::from_pem(encrypted, "", "/keys/api.pem");
      ADD_FAILURE() << "encrypted key loaded without passphrase";
    } catch (const CredentialsError& e) {
      EXPECT_NE(std::string(e.what()).find("encrypted and no passphrase"), std::string::npos) << e.what();
    }
  }
}

TEST(OciKeys, RejectsGarbageMissingFilesAndNonRsaKeys) {
  EXPECT_THROW(PrivateKey::from_pem("hello", "", "x"), CredentialsError);
  EXPECT_THROW(PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "", "x"),
               CredentialsError);
  try {
    PrivateKey::from_file("/nonexistent/oci_api_key.pem", "");
    ADD_FAILURE();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/oci_api_key.pem"), std::string::npos);
  }
  EVP_PKEY* ec = EVP_EC_gen("P-256");
  ASSERT_NE(ec, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, ec, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(ec);
  try {
    PrivateKey::from_pem(pem, "", "ec.pem");
    ADD_FAILURE();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("not an RSA key"), std::string::npos);
  }
}

TEST(OciKeys, FingerprintIsColonSeparatedMd5OfPublicKeyDer) {
  const PrivateKey& key = test_key();
  std::string der = key.public_key_der();
  unsigned char digest[16];
  unsigned int n = 0;
  EVP_Digest(der.data(), der.size(), digest, &n, EVP_md5(), nullptr);
  char expected[48] = {0};
  for (int i = 0; i < 16; ++i) std::snprintf(expected + i * 3, 4, i == 15 ? "%02x" : "%02x:", digest[i]);
  EXPECT_EQ(key.fingerprint(), expected);
  EXPECT_EQ(key.public_key_pem().rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
  EXPECT_EQ(PrivateKey::from_pem(key.private_key_pem(), "", "round trip").fingerprint(), key.fingerprint());
}

TEST(OciSigner, SignatureHoldsForTheRequestCurlActuallySends) {
  // The server rebuilds the signing string from what arrived on the wire (target and headers as received)
  // and checks the signature: proves host, (request-target) and body headers survive the HTTP client.
  std::string last_text;
  hf_test::Server server([&](const hf_test::Request& req) {
    std::string authorization = req.header("authorization");
    std::vector<std::string> names;
    std::string list = auth_field(authorization, "headers");
    for (size_t pos = 0; pos <= list.size();) {
      size_t end = list.find(' ', pos);
      if (end == std::string::npos) end = list.size();
      names.push_back(list.substr(pos, end - pos));
      pos = end + 1;
    }
    HeaderList received(req.headers.begin(), req.headers.end());
    std::string method = req.method;
    last_text = signing_string(method, req.target, names, received);
    bool ok = verifies(test_key(), last_text, auth_field(authorization, "signature"));
    return hf_test::Response{ok ? 200 : 401, {}, ok ? "ok" : "bad signature"};
  });
  auto signer = std::make_shared<KeySigner>("k", test_key());
  for (const std::string method : {"GET", "POST"}) {
    modelagent::HttpRequest request;
    request.method = method;
    request.url = server.base_url() + "/n/ns/b/bk/o/dir%2Fa%20b?fields=name,size&limit=2";
    request.body = method == "POST" ? "{\"a\":1}" : "";
    request.signer = signer;
    auto response = modelagent::http_request(request);
    EXPECT_EQ(response.status, 200) << method << ": " << last_text;
  }
}
