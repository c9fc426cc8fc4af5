#pragma once
// OCI principals: where the key and keyId that sign OCI requests come from. Each principal is a
// RequestSigner; the token-based ones (instance, resource, OKE workload identity) refresh their session
// token before it expires and may be told to refresh (after a 401).

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "modelagent/http_client.hpp"
#include "modelagent/oci_signer.hpp"
#include "modelagent/request_signer.hpp"

namespace modelagent::oci {

// What selects and configures a principal (spec.storage.parameters of an OCI model). Empty strings mean
// "the environment variable, else the default" as documented per field.
struct AuthSettings {
  std::string auth = "InstancePrincipal";  // InstancePrincipal | UserPrincipal | ResourcePrincipal | OkeWorkloadIdentity
  std::string region;               // overrides the principal's own region
  std::string config_file;          // user principal: OCI_CONFIG_FILE, OCI_CONFIG_PATH, ~/.oci/config
  std::string profile;              // user principal: OCI_CLI_PROFILE, PROFILE, DEFAULT
  std::string metadata_endpoint;    // OCI_METADATA_BASE_URL, http://169.254.169.254/opc/v2
  std::string federation_endpoint;  // OCI_FEDERATION_ENDPOINT, https://auth.{region}.oraclecloud.com
  std::string oke_endpoint;         // https://$KUBERNETES_SERVICE_HOST:12250/resourcePrincipalSessionTokens
  std::string oke_token_path;       // /var/run/secrets/kubernetes.io/serviceaccount/token
  std::string oke_ca_path;          // OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH, .../serviceaccount/ca.crt
  bool verify_tls = true;           // federation and metadata calls over HTTPS
  std::string ca_bundle;            // for those calls; empty = system default
};

inline constexpr const char* kDefaultMetadataEndpoint = "http://169.254.169.254/opc/v2";
inline constexpr const char* kDefaultOkeTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token";
inline constexpr const char* kDefaultOkeCaPath = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
// A session token is renewed when less than this is left before its expiry.
inline constexpr std::chrono::seconds kTokenRefreshMargin{300};
// Until this close to its expiry a token due for renewal is still used while the renewal runs (or after
// it failed: the next signature tries again).
inline constexpr std::chrono::seconds kTokenMinimumValidity{30};

class Principal : public RequestSigner {
 public:
  virtual std::string auth() const = 0;  // one of the AuthSettings::auth names
  virtual std::string region() const = 0;
  virtual std::string tenancy() const = 0;
  // Obtains a new session token now (no-op for API keys). Throws CredentialsError.
  virtual void refresh() {}
};

// Selects the principal named by settings.auth; anything else → CredentialsError naming the allowed values.
std::shared_ptr<Principal> make_principal(const AuthSettings& settings);

std::shared_ptr<Principal> make_user_principal(const AuthSettings& settings);
std::shared_ptr<Principal> make_instance_principal(const AuthSettings& settings);
std::shared_ptr<Principal> make_resource_principal(const AuthSettings& settings);
std::shared_ptr<Principal> make_oke_workload_identity(const AuthSettings& settings);

// ---- OCI config file (as the OCI CLI and SDKs read it) ----

struct ConfigProfile {
  std::string file;     // path read
  std::string profile;  // section used
  std::map<std::string, std::string> values;  // the profile's keys, DEFAULT keys inherited

  // The value of `key`, or throws CredentialsError naming the file, profile and key.
  const std::string& require(const std::string& key) const;
  std::string get(const std::string& key) const;  // "" when absent
};

// Path: `path`, else OCI_CONFIG_FILE, OCI_CONFIG_PATH, ~/.oci/config. Profile: `profile`, else
// OCI_CLI_PROFILE, PROFILE, DEFAULT. Throws CredentialsError (file missing/unreadable, malformed line,
// profile absent).
ConfigProfile load_config_profile(const std::string& path = "", const std::string& profile = "");

// The environment variable's value, "" when unset.
std::string env_value(const char* name);

// "~/x" → "$HOME/x"; other paths unchanged.
std::string expand_home(const std::string& path);

// ---- helpers shared by the token-based principals ----

// Full region identifier for an IMDS region answer: short codes ("phx", "IAD") map through the public
// table; anything else (already "us-phoenix-1", or unknown) is returned lower-cased and trimmed.
std::string region_from_short_code(const std::string& code);

// Short retry budget for identity calls (a dead endpoint must not stall a download for minutes) and the
// TLS settings they use.
RetryPolicy credential_retry_policy();
DownloadOptions credential_http_options(const AuthSettings& settings);

// The instance metadata service base URL: settings, else OCI_METADATA_BASE_URL, else the default.
std::string metadata_endpoint(const AuthSettings& settings);
// GET <metadata base>/<path> with "Authorization: Bearer Oracle"; the body of a 200 answer, else
// CredentialsError naming the URL.
std::string metadata_get(const AuthSettings& settings, const std::string& path);
// The instance's region from IMDS (instance/region), short codes expanded.
std::string metadata_region(const AuthSettings& settings);
// PEM text without its BEGIN/END lines and line breaks (how certificates and keys travel in OCI JSON).
std::string pem_body(const std::string& pem);

// The `exp` claim (seconds since the epoch) of a JWT, or nullopt when absent/unparsable.
std::optional<int64_t> jwt_expiry(const std::string& token);
// A string claim of a JWT's payload, or "" when absent.
std::string jwt_claim(const std::string& token, const std::string& claim);

// Principal signing with an ephemeral session key and keyId "ST$<token>", where the token comes from
// fetch_session(). Renews when the token has less than kTokenRefreshMargin left, or on refresh().
// Thread-safe: one fetch at a time; while a token with more than kTokenMinimumValidity left is renewed,
// other threads keep signing with it.
class SessionTokenPrincipal : public Principal {
 public:
  void sign(const std::string& method, const std::string& url, const std::string& body,
            HeaderList& headers) const override;
  void refresh() override;
  bool renew_after_rejection(const HeaderList& rejected) const override;
  std::string current_token() const;

 protected:
  struct Session {
    PrivateKey key;
    std::string token;
    std::optional<std::chrono::system_clock::time_point> expires;  // when unset: the token's JWT exp claim
  };
  // Produces a new session (new key, new token). Called with the fetch lock held, so subclasses may
  // update mutable state of their own there.
  virtual Session fetch_session() const = 0;
  // Subclasses call this at the end of construction so bad credentials fail at creation time; returns
  // the first session's token.
  std::string start();

 private:
  std::shared_ptr<const Session> valid_session() const;
  std::shared_ptr<const Session> new_session() const;

  mutable std::mutex fetch_mutex_;
  mutable std::mutex state_mutex_;
  mutable std::shared_ptr<const Session> session_;
};

}  // namespace modelagent::oci
