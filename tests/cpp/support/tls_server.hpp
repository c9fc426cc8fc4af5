#pragma once
// A minimal HTTPS server on 127.0.0.1 for TLS-verification tests: a self-signed certificate for
// 127.0.0.1/localhost generated at start (its PEM written to a file usable as a CA bundle), one file
// served per connection with "Connection: close". Header-only.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

namespace testsupport {

class TlsServer {
 public:
  TlsServer(std::string content, const std::filesystem::path& cert_file)
      : content_(std::move(content)), cert_file_(cert_file) {
    key_ = EVP_EC_gen("P-256");
    if (!key_) throw std::runtime_error("EC key generation failed");
    cert_ = X509_new();
    X509_set_version(cert_, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert_), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert_), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert_), 24 * 3600);
    X509_set_pubkey(cert_, key_);
    X509_NAME* name = X509_get_subject_name(cert_);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert_, name);
    add_extension(NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    add_extension(NID_basic_constraints, "critical,CA:TRUE");
    if (X509_sign(cert_, key_, EVP_sha256()) == 0) throw std::runtime_error("certificate signing failed");
    FILE* pem = std::fopen(cert_file_.c_str(), "w");
    if (!pem) throw std::runtime_error("cannot write " + cert_file_.string());
    PEM_write_X509(pem, cert_);
    std::fclose(pem);

    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, cert_);
    SSL_CTX_use_PrivateKey(ctx_, key_);
    SSL_CTX_set_alpn_select_cb(ctx_, &TlsServer::select_alpn, this);

    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0) {
      throw std::runtime_error("cannot listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }

  ~TlsServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
    SSL_CTX_free(ctx_);
    X509_free(cert_);
    EVP_PKEY_free(key_);
  }

  std::string url(const std::string& path) const { return "https://127.0.0.1:" + std::to_string(port_) + path; }
  int handshakes() const { return handshakes_; }
  // The application protocols (ALPN) the last client offered, in its order of preference.
  std::vector<std::string> offered_protocols() const {
    std::lock_guard<std::mutex> lock(mu_);
    return offered_;
  }
  int requests() const { return requests_; }

 private:
  // Records what the client offers and answers with HTTP/1.1, the only protocol this server speaks.
  static int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                         unsigned int inlen, void* arg) {
    auto* self = static_cast<TlsServer*>(arg);
    std::vector<std::string> offered;
    for (unsigned int i = 0; i < inlen;) {
      unsigned int n = in[i];
      offered.emplace_back(reinterpret_cast<const char*>(in + i + 1), n);
      i += n + 1;
    }
    std::lock_guard<std::mutex> lock(self->mu_);
    self->offered_ = offered;
    for (unsigned int i = 0; i < inlen;) {
      unsigned int n = in[i];
      if (std::string(reinterpret_cast<const char*>(in + i + 1), n) == "http/1.1") {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(n);
        return SSL_TLSEXT_ERR_OK;
      }
      i += n + 1;
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  void add_extension(int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert_, cert_, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(cert_, ext, -1);
    X509_EXTENSION_free(ext);
  }

  void loop() {
    while (!stopping_) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        ++handshakes_;
        std::string head;
        char buf[4096];
        while (head.find("\r\n\r\n") == std::string::npos) {
          int n = SSL_read(ssl, buf, sizeof buf);
          if (n <= 0) break;
          head.append(buf, static_cast<size_t>(n));
        }
        if (head.find("\r\n\r\n") != std::string::npos) {
          ++requests_;
          std::string out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(content_.size()) +
                            "\r\nConnection: close\r\n\r\n" + content_;
          SSL_write(ssl, out.data(), static_cast<int>(out.size()));
        }
        SSL_shutdown(ssl);
      }
      ERR_clear_error();
      SSL_free(ssl);
      ::close(fd);
    }
  }

  std::string content_;
  std::filesystem::path cert_file_;
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> handshakes_{0};
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  std::vector<std::string> offered_;
};

}  // namespace testsupport
