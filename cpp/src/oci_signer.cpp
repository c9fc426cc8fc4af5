// OCI HTTP request signatures (version 1, rsa-sha256) and the RSA key handling behind them.

#include "modelagent/ascii_text.hpp"
#include "modelagent/oci_signer.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "modelagent/digest.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/url_parts.hpp"

namespace modelagent::oci {
namespace {

EVP_PKEY* pkey(const std::shared_ptr<void>& p) { return static_cast<EVP_PKEY*>(p.get()); }

std::shared_ptr<void> own(EVP_PKEY* key) {
  return std::shared_ptr<void>(key, [](void* k) { EVP_PKEY_free(static_cast<EVP_PKEY*>(k)); });
}

std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

const std::string* find_header(const HeaderList& headers, const std::string& name) {
  for (const auto& [key, value] : headers) {
    if (ascii_lower(key) == name) return &value;
  }
  return nullptr;
}

void set_default(HeaderList& headers, const std::string& name, const std::string& value) {
  if (!find_header(headers, name)) headers.emplace_back(name, value);
}

struct PassphraseState {
  const std::string* passphrase;
  bool asked = false;
};

int passphrase_callback(char* buf, int size, int, void* user) {
  auto* state = static_cast<PassphraseState*>(user);
  state->asked = true;
  if (state->passphrase->empty()) return 0;
  int n = static_cast<int>(std::min<size_t>(state->passphrase->size(), static_cast<size_t>(size)));
  std::copy_n(state->passphrase->data(), n, buf);
  return n;
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

bool is_body_method(const std::string& upper_method) {
  return upper_method == "POST" || upper_method == "PUT" || upper_method == "PATCH";
}

std::string sha256(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), digest, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), n);
}

// The authority and the request target of an absolute URL, as written.
std::pair<std::string, std::string> split_url(const std::string& url) {
  auto parts = split_absolute_url(url);
  if (!parts) throw std::invalid_argument("not an absolute URL with a host: " + url);
  return {parts->authority, parts->target};
}

}  // namespace

PrivateKey PrivateKey::from_pem(const std::string& pem, const std::string& passphrase, const std::string& source) {
  ERR_clear_error();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  PassphraseState state{&passphrase};
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, passphrase_callback, &state);
  if (!key) {
    std::string why = openssl_error();
    bool encrypted = pem.find("ENCRYPTED") != std::string::npos;
    if (encrypted && passphrase.empty()) {
      throw CredentialsError("private key " + source + " is encrypted and no passphrase was given");
    }
    if (encrypted) throw CredentialsError("private key " + source + ": wrong passphrase (" + why + ")");
    if (pem.find("-----BEGIN") == std::string::npos) {
      throw CredentialsError("private key " + source + " is not PEM (no -----BEGIN line)");
    }
    throw CredentialsError("private key " + source + " cannot be read: " + why);
  }
  PrivateKey out;
  out.key_ = own(key);
  if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    throw CredentialsError("private key " + source + " is not an RSA key (OCI signs with rsa-sha256)");
  }
  return out;
}

PrivateKey PrivateKey::from_file(const std::string& path, const std::string& passphrase) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CredentialsError("cannot read private key file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return from_pem(text.str(), passphrase, path);
}

PrivateKey PrivateKey::generate(int bits) {
  EVP_PKEY* key = EVP_RSA_gen(static_cast<unsigned int>(bits));
  if (!key) throw CredentialsError("cannot generate an RSA session key: " + openssl_error());
  PrivateKey out;
  out.key_ = own(key);
  return out;
}

std::string PrivateKey::public_key_pem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!key_ || PEM_write_bio_PUBKEY(bio.get(), pkey(key_)) != 1) throw CredentialsError("cannot encode public key");
  return bio_contents(bio.get());
}

std::string PrivateKey::public_key_der() const {
  unsigned char* der = nullptr;
  int n = key_ ? i2d_PUBKEY(pkey(key_), &der) : -1;
  if (n <= 0) throw CredentialsError("cannot encode public key");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

std::string PrivateKey::private_key_pem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!key_ || PEM_write_bio_PrivateKey(bio.get(), pkey(key_), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    throw CredentialsError("cannot encode private key");
  }
  return bio_contents(bio.get());
}

std::string PrivateKey::sign_sha256(const std::string& data) const {
  if (!key_) throw CredentialsError("no private key to sign with");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  size_t length = 0;
  if (EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, pkey(key_)) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    throw CredentialsError("RSA signing failed: " + openssl_error());
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    throw CredentialsError("RSA signing failed: " + openssl_error());
  }
  signature.resize(length);
  return signature;
}

std::string PrivateKey::fingerprint() const {
  std::string der = public_key_der();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(der.data(), der.size(), digest, &n, EVP_md5(), nullptr);
  return colon_hex(std::string(reinterpret_cast<char*>(digest), n));
}

std::string colon_hex(const std::string& bytes, bool upper_case) {
  const char* hex = upper_case ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty()) out += ':';
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

std::string base64_encode(const std::string& bytes) {
  return modelagent::base64_encode(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

std::string base64_decode(const std::string& text) {
  // JWT segments use the URL-safe alphabet without padding; PEM-style text may wrap lines.
  std::string standard;
  standard.reserve(text.size() + 3);
  for (char c : text) {
    if (c == '\n' || c == '\r') continue;
    standard += c == '-' ? '+' : c == '_' ? '/' : c;
  }
  while (!standard.empty() && standard.back() == '=') standard.pop_back();
  if (standard.size() % 4 == 1) throw std::invalid_argument("invalid base64 length");
  standard.append((4 - standard.size() % 4) % 4, '=');
  auto decoded = modelagent::base64_decode(standard);
  if (!decoded) throw std::invalid_argument("invalid base64 character");
  return std::string(decoded->begin(), decoded->end());
}

std::string http_date(std::chrono::system_clock::time_point when) {
  std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string url_host(const std::string& url) { return split_url(url).first; }

std::string url_request_target(const std::string& url) {
  std::string rest = split_url(url).second;
  if (rest.empty() || rest[0] == '?') rest.insert(0, "/");
  return rest;
}

std::string signing_string(const std::string& method, const std::string& request_target,
                           const std::vector<std::string>& signed_headers, const HeaderList& headers) {
  std::string out;
  for (const auto& name : signed_headers) {
    if (!out.empty()) out += '\n';
    if (name == "(request-target)") {
      out += "(request-target): " + ascii_lower(method) + " " + request_target;
      continue;
    }
    const std::string* value = find_header(headers, name);
    if (!value) throw std::invalid_argument("header to sign is missing: " + name);
    out += name + ": " + *value;
  }
  return out;
}

void sign_request(const std::string& method, const std::string& url, const std::string& body, HeaderList& headers,
                  const std::string& key_id, const PrivateKey& key, const SignOptions& options) {
  std::string upper = method;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  std::string target;
  std::string host;
  try {
    target = url_request_target(url);
    host = url_host(url);
  } catch (const std::invalid_argument& e) {
    throw CredentialsError(std::string("cannot sign request: ") + e.what());
  }

  std::vector<std::string> names = {"date", "(request-target)"};
  set_default(headers, "date", options.date.empty() ? http_date(std::chrono::system_clock::now()) : options.date);
  if (options.host) {
    names.push_back("host");
    set_default(headers, "host", host);
  }
  if (is_body_method(upper) && options.body_headers) {
    set_default(headers, "content-type", "application/json");
    set_default(headers, "content-length", std::to_string(body.size()));
    if (!find_header(headers, "x-content-sha256")) headers.emplace_back("x-content-sha256", base64_encode(sha256(body)));
    names.insert(names.end(), {"content-length", "content-type", "x-content-sha256"});
  }
  std::erase_if(headers, [](const auto& kv) { return ascii_lower(kv.first) == "authorization"; });

  std::string text = signing_string(upper, target, names, headers);
  std::string joined;
  for (const auto& name : names) joined += (joined.empty() ? "" : " ") + name;
  headers.emplace_back("authorization", "Signature algorithm=\"rsa-sha256\",headers=\"" + joined + "\",keyId=\"" +
                                            key_id + "\",signature=\"" + base64_encode(key.sign_sha256(text)) +
                                            "\",version=\"1\"");
}

KeySigner::KeySigner(std::string key_id, PrivateKey key, SignOptions options, std::string description)
    : key_id_(std::move(key_id)), key_(std::move(key)), options_(std::move(options)),
      description_(std::move(description)) {}

void KeySigner::sign(const std::string& method, const std::string& url, const std::string& body,
                     HeaderList& headers) const {
  sign_request(method, url, body, headers, key_id_, key_, options_);
}

}  // namespace modelagent::oci
