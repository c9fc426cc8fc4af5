#pragma once
// OCI request signing: HTTP Signatures (draft-cavage-http-signatures-08) with signature version 1 and
// rsa-sha256, as every OCI service verifies them. Key material helpers (PEM loading, fingerprints,
// ephemeral session keys) shared by the OCI principals in oci_auth.hpp.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "modelagent/request_signer.hpp"

namespace modelagent::oci {

// An RSA private key (OpenSSL EVP_PKEY underneath); cheap to copy, immutable, thread-safe to use.
class PrivateKey {
 public:
  PrivateKey() = default;

  // Parses PKCS#1 ("RSA PRIVATE KEY", also legacy-encrypted) or PKCS#8 ("PRIVATE KEY", "ENCRYPTED PRIVATE
  // KEY") PEM text. `source` names where it came from in error messages. Throws CredentialsError when the
  // text is no RSA private key, is encrypted without a passphrase, or the passphrase is wrong.
  static PrivateKey from_pem(const std::string& pem, const std::string& passphrase, const std::string& source);
  static PrivateKey from_file(const std::string& path, const std::string& passphrase);
  // A fresh RSA key (ephemeral session keys are 2048 bits).
  static PrivateKey generate(int bits = 2048);

  bool valid() const { return key_ != nullptr; }
  std::string public_key_pem() const;   // SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----"
  std::string public_key_der() const;   // SubjectPublicKeyInfo DER
  std::string private_key_pem() const;  // unencrypted PKCS#8
  // RSA PKCS#1 v1.5 signature over SHA-256 of `data` (raw bytes).
  std::string sign_sha256(const std::string& data) const;
  // Colon-separated lower-case hex MD5 of the public key DER (an OCI API key fingerprint).
  std::string fingerprint() const;

  void* native() const { return key_.get(); }  // EVP_PKEY*

 private:
  std::shared_ptr<void> key_;
};

std::string base64_encode(const std::string& bytes);
// "ab:cd:..." (or upper-case "AB:CD:...") hex of raw bytes, the form of OCI key and certificate fingerprints.
std::string colon_hex(const std::string& bytes, bool upper_case = false);
// Accepts the standard and the URL-safe alphabets, padding optional. Throws std::invalid_argument.
std::string base64_decode(const std::string& text);

// RFC 1123 date in GMT, e.g. "Thu, 05 Jan 2014 21:31:40 GMT".
std::string http_date(std::chrono::system_clock::time_point when);

// Host (with the port when the URL names one) and request target (path?query, "/" when empty) exactly
// as written in an absolute URL. Throws std::invalid_argument when the URL has no scheme://host.
std::string url_host(const std::string& url);
std::string url_request_target(const std::string& url);

struct SignOptions {
  // Sign content-length, content-type and x-content-sha256 on POST/PUT/PATCH. Object Storage
  // PutObject/UploadPart are signed without them.
  bool body_headers = true;
  // Sign host (every OCI API call except the x509 federation request).
  bool host = true;
  // RFC 1123 date to sign; empty = now.
  std::string date;
};

// The signing string for `signed_headers` (lower-case names, in order) over `headers` (names compared
// case-insensitively). Throws std::invalid_argument when a listed header is missing.
std::string signing_string(const std::string& method, const std::string& request_target,
                           const std::vector<std::string>& signed_headers, const HeaderList& headers);

// Adds what OCI signs and is missing (date, host; for body methods content-type application/json,
// content-length, x-content-sha256) to `headers`, then sets `authorization`. Headers already present are
// kept and signed as they are, like the official SDKs do.
void sign_request(const std::string& method, const std::string& url, const std::string& body, HeaderList& headers,
                  const std::string& key_id, const PrivateKey& key, const SignOptions& options = {});

// Signs with one fixed key and keyId (an API key, or a session token via "ST$<token>").
class KeySigner : public RequestSigner {
 public:
  KeySigner(std::string key_id, PrivateKey key, SignOptions options = {}, std::string description = "OCI API key");
  void sign(const std::string& method, const std::string& url, const std::string& body,
            HeaderList& headers) const override;
  std::string describe() const override { return description_; }
  const std::string& key_id() const { return key_id_; }

 private:
  std::string key_id_;
  PrivateKey key_;
  SignOptions options_;
  std::string description_;
};

}  // namespace modelagent::oci
