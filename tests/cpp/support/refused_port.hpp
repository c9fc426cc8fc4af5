#pragma once
// A loopback address and port where connections are refused, for "server unreachable" tests. The port
// stays bound (without listening, and without SO_REUSEADDR) for the object's lifetime, so no other
// server can take it meanwhile: a port merely freed by stopping a server may be handed to another
// test's server right away (ctest runs test processes in parallel), which would then answer.
// Header-only.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace testsupport {

class RefusedPort {
 public:
  explicit RefusedPort(std::string address = "127.0.0.1") : address_(std::move(address)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    if (::inet_pton(AF_INET, address_.c_str(), &addr.sin_addr) != 1) throw std::runtime_error("bad address");
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::string error = std::strerror(errno);
      ::close(fd_);
      throw std::runtime_error("bind(" + address_ + ") failed: " + error);
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~RefusedPort() { ::close(fd_); }
  RefusedPort(const RefusedPort&) = delete;
  RefusedPort& operator=(const RefusedPort&) = delete;

  uint16_t port() const { return port_; }
  std::string base_url() const { return "http://" + address_ + ":" + std::to_string(port_); }
  std::string url(const std::string& path) const { return base_url() + path; }

 private:
  std::string address_;
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace testsupport
