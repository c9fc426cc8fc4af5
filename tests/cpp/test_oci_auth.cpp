#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "modelagent/errors.hpp"
#include "modelagent/oci_auth.hpp"
#include "support/temp_dir.hpp"

using modelagent::CredentialsError;
using modelagent::HeaderList;
using namespace modelagent::oci;

namespace {

const PrivateKey& test_key() {
  static const PrivateKey key = PrivateKey::generate(2048);
  return key;
}

void write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

// Sets (or unsets, for nullptr) an environment variable for the lifetime of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    had_ = std::getenv(name) != nullptr;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_.c_str(), old_.c_str(), 1);
    else ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::string old_;
  bool had_ = false;
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const CredentialsError& e) {
    return e.what();
  }
  return "(no CredentialsError)";
}

std::string header(const HeaderList& headers, const std::string& name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

std::string jwt_with(const std::string& payload) {
  auto b64url = [](const std::string& s) {
    std::string out = base64_encode(s);
    for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!out.empty() && out.back() == '=') out.pop_back();
    return out;
  };
  return b64url("{\"alg\":\"RS256\"}") + "." + b64url(payload) + ".c2ln";
}

// Environment variables the principals read, cleared so the developer's own setup cannot leak in.
struct CleanEnv {
  ScopedEnv a{"OCI_CONFIG_FILE", nullptr}, b{"OCI_CONFIG_PATH", nullptr}, c{"OCI_CLI_PROFILE", nullptr},
      d{"PROFILE", nullptr}, e{"USE_SESSION_TOKEN", nullptr}, f{"OCI_RESOURCE_PRINCIPAL_VERSION", nullptr},
      g{"OCI_RESOURCE_PRINCIPAL_RPST", nullptr}, h{"OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", nullptr},
      i{"OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE", nullptr}, j{"OCI_RESOURCE_PRINCIPAL_REGION", nullptr},
      k{"KUBERNETES_SERVICE_HOST", nullptr};
};

}  // namespace

TEST(OciConfigFile, ProfileInheritsDefaultAndOverridesIt) {
  CleanEnv env;
  testsupport::TempDir dir;
  write(dir / "config",
        "# comment\n[DEFAULT]\nregion = us-ashburn-1\ntenancy=ocid1.tenancy.t\n\n; another comment\n"
        "[dev]\nuser=ocid1.user.dev\nregion=eu-frankfurt-1\n");
  ConfigProfile dev = load_config_profile((dir / "config").string(), "dev");
  EXPECT_EQ(dev.profile, "dev");
  EXPECT_EQ(dev.get("region"), "eu-frankfurt-1");
  EXPECT_EQ(dev.get("tenancy"), "ocid1.tenancy.t");
  EXPECT_EQ(dev.get("user"), "ocid1.user.dev");
  EXPECT_EQ(dev.get("fingerprint"), "");
  ConfigProfile def = load_config_profile((dir / "config").string(), "");
  EXPECT_EQ(def.profile, "DEFAULT");
  EXPECT_EQ(def.get("region"), "us-ashburn-1");
  std::string missing = message_of([&] { dev.require("fingerprint"); });
  EXPECT_NE(missing.find((dir / "config").string() + ", profile [dev]: missing 'fingerprint'"), std::string::npos)
      << missing;
}

TEST(OciConfigFile, PathAndProfileComeFromTheEnvironment) {
  CleanEnv env;
  testsupport::TempDir dir;
  write(dir / "a", "[A]\nuser=from-a\n[B]\nuser=from-b\n");
  write(dir / "b", "[DEFAULT]\nuser=from-path\n");
  {
    ScopedEnv path("OCI_CONFIG_PATH", (dir / "b").c_str());
    EXPECT_EQ(load_config_profile().get("user"), "from-path");
    ScopedEnv file("OCI_CONFIG_FILE", (dir / "a").c_str());
    ScopedEnv profile("PROFILE", "A");
    EXPECT_EQ(load_config_profile().get("user"), "from-a");
    ScopedEnv cli_profile("OCI_CLI_PROFILE", "B");
    EXPECT_EQ(load_config_profile().get("user"), "from-b");
    EXPECT_EQ(load_config_profile("", "A").get("user"), "from-a");
  }
  ScopedEnv home("HOME", dir.path().c_str());
  std::filesystem::create_directories(dir / ".oci");
  write(dir / ".oci" / "config", "[DEFAULT]\nuser=from-home\n");
  EXPECT_EQ(load_config_profile().get("user"), "from-home");
  EXPECT_EQ(expand_home("~/k.pem"), (dir / "k.pem").string());
  EXPECT_EQ(expand_home("/abs/~/k.pem"), "/abs/~/k.pem");
}

TEST(OciConfigFile, ErrorsNameTheFileLineAndProfile) {
  CleanEnv env;
  testsupport::TempDir dir;
  std::string path = (dir / "config").string();
  EXPECT_NE(message_of([&] { load_config_profile(path, ""); }).find("OCI config file " + path + " does not exist"),
            std::string::npos);
  write(dir / "config", "[DEFAULT]\nuser=u\n[prod]\nuser=p\n");
  std::string no_profile = message_of([&] { load_config_profile(path, "staging"); });
  EXPECT_NE(no_profile.find("has no profile [staging] (profiles: DEFAULT, prod)"), std::string::npos) << no_profile;
  write(dir / "config", "[DEFAULT]\nuser=u\nthis line is wrong\n");
  EXPECT_NE(message_of([&] { load_config_profile(path, ""); }).find(path + " line 3: expected key=value"),
            std::string::npos);
  write(dir / "config", "user=u\n");
  EXPECT_NE(message_of([&] { load_config_profile(path, ""); }).find("line 1: key outside of any [profile]"),
            std::string::npos);
  write(dir / "config", "[DEFAULT\n");
  EXPECT_NE(message_of([&] { load_config_profile(path, ""); }).find("malformed section header"), std::string::npos);
}

TEST(OciUserPrincipal, SignsWithTheConfiguredKeyAndKeyId) {
  CleanEnv env;
  testsupport::TempDir dir;
  write(dir / "key.pem", test_key().private_key_pem());
  write(dir / "config", "[DEFAULT]\ntenancy=ocid1.tenancy.t\nregion=us-phoenix-1\n[p]\nuser=ocid1.user.u\n"
                        "fingerprint=" + test_key().fingerprint() + "\nkey_file=" + (dir / "key.pem").string() + "\n");
  AuthSettings settings;
  settings.auth = "UserPrincipal";
  settings.config_file = (dir / "config").string();
  settings.profile = "p";
  auto principal = make_principal(settings);
  EXPECT_EQ(principal->auth(), "UserPrincipal");
  EXPECT_EQ(principal->tenancy(), "ocid1.tenancy.t");
  EXPECT_EQ(principal->region(), "us-phoenix-1");
  EXPECT_NE(principal->describe().find("profile [p]"), std::string::npos);
  HeaderList headers;
  principal->sign("GET", "https://h.example/n/", "", headers);
  EXPECT_NE(header(headers, "authorization").find("keyId=\"ocid1.tenancy.t/ocid1.user.u/" + test_key().fingerprint() + "\""),
            std::string::npos);
  settings.region = "ap-tokyo-1";
  EXPECT_EQ(make_principal(settings)->region(), "ap-tokyo-1");
}

TEST(OciUserPrincipal, KeyProblemsNameTheProfileAndFile) {
  CleanEnv env;
  testsupport::TempDir dir;
  std::string key_path = (dir / "key.pem").string();
  auto config = [&](const std::string& fingerprint, const std::string& extra) {
    write(dir / "config", "[DEFAULT]\ntenancy=t\nregion=r\nuser=u\nfingerprint=" + fingerprint + "\nkey_file=" +
                              key_path + "\n" + extra);
  };
  AuthSettings settings;
  settings.auth = "UserPrincipal";
  settings.config_file = (dir / "config").string();
  config(test_key().fingerprint(), "");
  std::string no_key = message_of([&] { make_principal(settings); });
  EXPECT_NE(no_key.find("profile [DEFAULT]: key_file: cannot read private key file " + key_path), std::string::npos)
      << no_key;
  write(dir / "key.pem", test_key().private_key_pem());
  config("00:11", "");
  std::string mismatch = message_of([&] { make_principal(settings); });
  EXPECT_NE(mismatch.find("fingerprint 00:11 does not match key_file"), std::string::npos) << mismatch;
  write(dir / "config", "[DEFAULT]\nregion=r\nuser=u\nkey_file=" + key_path + "\n");
  EXPECT_NE(message_of([&] { make_principal(settings); }).find("missing 'tenancy'"), std::string::npos);
}

TEST(OciUserPrincipal, SessionTokenFromSecurityTokenFile) {
  CleanEnv env;
  testsupport::TempDir dir;
  write(dir / "key.pem", test_key().private_key_pem());
  write(dir / "token", "tok.en.value\n");
  write(dir / "config", "[DEFAULT]\ntenancy=t\nregion=r\nfingerprint=" + test_key().fingerprint() + "\nkey_file=" +
                            (dir / "key.pem").string() + "\nsecurity_token_file=" + (dir / "token").string() + "\n");
  AuthSettings settings;
  settings.auth = "UserPrincipal";
  settings.config_file = (dir / "config").string();
  HeaderList headers;
  make_principal(settings)->sign("GET", "https://h.example/", "", headers);
  EXPECT_NE(header(headers, "authorization").find("keyId=\"ST$tok.en.value\""), std::string::npos);
}

TEST(OciPrincipals, UnknownAuthNamesTheAllowedValues) {
  AuthSettings settings;
  settings.auth = "ApiKey";
  std::string message = message_of([&] { make_principal(settings); });
  EXPECT_NE(message.find("'ApiKey'"), std::string::npos);
  EXPECT_NE(message.find("InstancePrincipal, UserPrincipal, ResourcePrincipal, OkeWorkloadIdentity"),
            std::string::npos);
}

TEST(OciPrincipals, RegionShortCodes) {
  EXPECT_EQ(region_from_short_code("phx"), "us-phoenix-1");
  EXPECT_EQ(region_from_short_code("IAD\n"), "us-ashburn-1");
  EXPECT_EQ(region_from_short_code("fra"), "eu-frankfurt-1");
  EXPECT_EQ(region_from_short_code("lhr"), "uk-london-1");
  EXPECT_EQ(region_from_short_code("nrt"), "ap-tokyo-1");
  EXPECT_EQ(region_from_short_code("us-chicago-1"), "us-chicago-1");
  EXPECT_EQ(region_from_short_code("zzz"), "zzz");
}

TEST(OciPrincipals, JwtClaims) {
  std::string token = jwt_with("{\"exp\":1900000000,\"res_tenant\":\"ocid1.tenancy.x\"}");
  EXPECT_EQ(jwt_expiry(token), 1900000000);
  EXPECT_EQ(jwt_claim(token, "res_tenant"), "ocid1.tenancy.x");
  EXPECT_EQ(jwt_claim(token, "missing"), "");
  EXPECT_FALSE(jwt_expiry("not-a-jwt").has_value());
  EXPECT_FALSE(jwt_expiry(jwt_with("[1]")).has_value());
}

TEST(OciResourcePrincipal, TokenAndKeyFromEnvironmentValuesOrFiles) {
  CleanEnv env;
  testsupport::TempDir dir;
  std::string token = jwt_with("{\"exp\":4000000000,\"res_tenant\":\"ocid1.tenancy.rp\"}");
  AuthSettings settings;
  settings.auth = "ResourcePrincipal";
  EXPECT_NE(message_of([&] { make_principal(settings); }).find("OCI_RESOURCE_PRINCIPAL_VERSION is not set"),
            std::string::npos);
  ScopedEnv version("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2");
  ScopedEnv rpst("OCI_RESOURCE_PRINCIPAL_RPST", token.c_str());
  std::string pem = test_key().private_key_pem();
  ScopedEnv key("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", pem.c_str());
  EXPECT_NE(message_of([&] { make_principal(settings); }).find("OCI_RESOURCE_PRINCIPAL_REGION is not set"),
            std::string::npos);
  ScopedEnv region("OCI_RESOURCE_PRINCIPAL_REGION", "iad");
  auto principal = make_principal(settings);
  EXPECT_EQ(principal->region(), "us-ashburn-1");
  EXPECT_EQ(principal->tenancy(), "ocid1.tenancy.rp");
  HeaderList headers;
  principal->sign("GET", "https://h.example/", "", headers);
  EXPECT_NE(header(headers, "authorization").find("keyId=\"ST$" + token + "\""), std::string::npos);

  write(dir / "rpst", token + "\n");
  ScopedEnv rpst_file("OCI_RESOURCE_PRINCIPAL_RPST", (dir / "rpst").c_str());
  ScopedEnv key_file("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", (dir / "missing.pem").c_str());
  std::string missing = message_of([&] { make_principal(settings); });
  EXPECT_NE(missing.find((dir / "missing.pem").string()), std::string::npos) << missing;
  write(dir / "missing.pem", pem);
  EXPECT_EQ(make_principal(settings)->tenancy(), "ocid1.tenancy.rp");
}

TEST(OciOkeWorkloadIdentity, NeedsAServiceHostOrEndpoint) {
  CleanEnv env;
  AuthSettings settings;
  settings.auth = "OkeWorkloadIdentity";
  EXPECT_NE(message_of([&] { make_principal(settings); }).find("KUBERNETES_SERVICE_HOST is not set"),
            std::string::npos);
  settings.oke_endpoint = "https://127.0.0.1:1/resourcePrincipalSessionTokens";
  settings.oke_ca_path = "/nonexistent/ca.crt";
  EXPECT_NE(message_of([&] { make_principal(settings); }).find("/nonexistent/ca.crt"), std::string::npos);
}

TEST(OciInstancePrincipal, MetadataServiceDownNamesTheUrl) {
  AuthSettings settings;
  settings.metadata_endpoint = "http://127.0.0.1:9/opc/v2/";
  EXPECT_EQ(metadata_endpoint(settings), "http://127.0.0.1:9/opc/v2");
  std::string message = message_of([&] { make_principal(settings); });
  EXPECT_NE(message.find("http://127.0.0.1:9/opc/v2/instance/region"), std::string::npos) << message;
}

namespace {

// A session principal whose "service" hands out numbered tokens; counts how often it was asked.
class NumberedTokens : public SessionTokenPrincipal {
 public:
  NumberedTokens(std::function<std::string(int)> token_for, std::optional<std::chrono::seconds> lifetime)
      : token_for_(std::move(token_for)), lifetime_(lifetime) {
    start();
  }
  std::string describe() const override { return "numbered tokens"; }
  std::string auth() const override { return "Test"; }
  std::string region() const override { return "r"; }
  std::string tenancy() const override { return "t"; }
  int fetches() const { return fetches_.load(); }

 protected:
  Session fetch_session() const override {
    int n = ++fetches_;
    Session session;
    session.key = test_key();
    session.token = token_for_(n);
    if (lifetime_) session.expires = std::chrono::system_clock::now() + *lifetime_;
    return session;
  }

 private:
  std::function<std::string(int)> token_for_;
  std::optional<std::chrono::seconds> lifetime_;
  mutable std::atomic<int> fetches_{0};
};

std::string key_id_of(const modelagent::RequestSigner& signer) {
  HeaderList headers;
  signer.sign("GET", "https://h.example/", "", headers);
  std::string authorization = header(headers, "authorization");
  auto start = authorization.find("keyId=\"") + 7;
  return authorization.substr(start, authorization.find('"', start) - start);
}

std::string numbered(int n) { return "token-" + std::to_string(n); }

}  // namespace

TEST(OciSessionToken, ValidTokenIsSharedByConcurrentSigners) {
  NumberedTokens principal(numbered, std::chrono::hours(1));
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) wrong += key_id_of(principal) != "ST$token-1";
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(principal.fetches(), 1);
  principal.refresh();
  EXPECT_EQ(principal.fetches(), 2);
  EXPECT_EQ(key_id_of(principal), "ST$token-2");
}

TEST(OciSessionToken, TokenInsideTheRenewalMarginIsRenewedBeforeSigning) {
  NumberedTokens principal(numbered, std::chrono::seconds(kTokenRefreshMargin.count() - 10));
  EXPECT_EQ(key_id_of(principal), "ST$token-2");
  EXPECT_EQ(key_id_of(principal), "ST$token-3");
  EXPECT_EQ(principal.fetches(), 3);
}

TEST(OciSessionToken, ExpiryDefaultsToTheJwtExpClaim) {
  auto jwt_expiring_in = [](int64_t seconds) {
    return [seconds](int n) {
      auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
      return jwt_with("{\"exp\":" + std::to_string(now.count() + seconds) + ",\"n\":" + std::to_string(n) + "}");
    };
  };
  NumberedTokens lasting(jwt_expiring_in(3600), std::nullopt);
  key_id_of(lasting);
  EXPECT_EQ(lasting.fetches(), 1);
  NumberedTokens expiring(jwt_expiring_in(60), std::nullopt);
  key_id_of(expiring);
  EXPECT_EQ(expiring.fetches(), 2);
  // No expiry known at all: kept until told to refresh.
  NumberedTokens opaque(numbered, std::nullopt);
  key_id_of(opaque);
  EXPECT_EQ(opaque.fetches(), 1);
}

TEST(OciSessionToken, FailedRenewalSurfacesAsCredentialsError) {
  std::atomic<bool> fail{false};
  NumberedTokens principal(
      [&](int n) -> std::string {
        if (fail) throw CredentialsError("federation endpoint http://127.0.0.1:1/v1/x509 answered 401");
        return numbered(n);
      },
      std::chrono::seconds(10));
  fail = true;
  std::string message = message_of([&] { key_id_of(principal); });
  EXPECT_NE(message.find("answered 401"), std::string::npos) << message;
}

TEST(OciSessionToken, FailedEarlyRenewalKeepsTheStillValidTokenAndRetries) {
  std::atomic<bool> fail{false};
  NumberedTokens principal(
      [&](int n) -> std::string {
        if (fail) throw CredentialsError("federation endpoint unreachable");
        return numbered(n);
      },
      std::chrono::seconds(120));
  fail = true;
  EXPECT_EQ(key_id_of(principal), "ST$token-1");
  EXPECT_EQ(key_id_of(principal), "ST$token-1");
  EXPECT_EQ(principal.fetches(), 3);  // the first one plus one renewal attempt per signature
  fail = false;
  EXPECT_EQ(key_id_of(principal), "ST$token-4");
  EXPECT_THROW(
      {
        fail = true;
        principal.refresh();
      },
      CredentialsError);
}
