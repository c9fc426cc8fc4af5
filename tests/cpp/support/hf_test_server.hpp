#pragma once
// A small scripted HTTP/1.1 server on a loopback address for the HTTP client and Hugging Face tests:
// one thread per connection, keep-alive, a request log, and a handler that decides each response
// (or asks for the connection to be cut without an answer).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace hf_test {

struct Request {
  std::string method;
  std::string target;  // as sent: origin-form path?query, or absolute-form through a proxy
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string host;  // address the server listens on
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  bool has_header(const std::string& name) const { return headers.count(name) != 0; }
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool cut = false;  // close the connection without answering
};

class Server {
 public:
  using Handler = std::function<Response(const Request&)>;

  explicit Server(Handler handler, const std::string& address = "127.0.0.1")
      : handler_(std::move(handler)), address_(address) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket failed");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) throw std::runtime_error("bad address");
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 64) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("bind/listen failed on " + address);
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~Server() { stop(); }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void stop() {
    if (stopping_.exchange(true)) return;
    ::shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    ::close(listen_fd_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
  }

  int port() const { return port_; }
  std::string base_url() const { return "http://" + address_ + ":" + std::to_string(port_); }
  std::string authority() const { return address_ + ":" + std::to_string(port_); }

  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }
  size_t request_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_.size();
  }
  int connections_accepted() const { return connections_.load(); }

 private:
  void accept_loop() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      int r = ::poll(&p, 1, 100);
      if (r <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      ++connections_;
      std::lock_guard<std::mutex> lock(mu_);
      open_fds_.push_back(fd);
      workers_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  static bool send_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  static const char* reason(int status) {
    switch (status) {
      case 200: return "OK";
      case 206: return "Partial Content";
      case 301: return "Moved Permanently";
      case 302: return "Found";
      case 303: return "See Other";
      case 307: return "Temporary Redirect";
      case 401: return "Unauthorized";
      case 403: return "Forbidden";
      case 404: return "Not Found";
      case 429: return "Too Many Requests";
      case 500: return "Internal Server Error";
      case 503: return "Service Unavailable";
      default: return "Status";
    }
  }

  void serve(int fd) {
    std::string buffer;
    char chunk[65536];
    while (!stopping_) {
      size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return close_fd(fd);
        buffer.append(chunk, static_cast<size_t>(n));
      }
      Request req;
      req.host = address_;
      std::string head = buffer.substr(0, header_end);
      buffer.erase(0, header_end + 4);
      size_t line_end = head.find("\r\n");
      std::string request_line = head.substr(0, line_end);
      size_t sp1 = request_line.find(' ');
      size_t sp2 = request_line.rfind(' ');
      req.method = request_line.substr(0, sp1);
      req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        if (e == std::string::npos) e = head.size();
        std::string line = head.substr(pos, e - pos);
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::string value = line.substr(colon + 1);
          value.erase(0, value.find_first_not_of(' '));
          req.headers[lower(line.substr(0, colon))] = value;
        }
        pos = e + 2;
      }
      size_t content_length = req.has_header("content-length") ? std::stoul(req.header("content-length")) : 0;
      while (buffer.size() < content_length) {
        ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return close_fd(fd);
        buffer.append(chunk, static_cast<size_t>(n));
      }
      req.body = buffer.substr(0, content_length);
      buffer.erase(0, content_length);
      {
        std::lock_guard<std::mutex> lock(mu_);
        log_.push_back(req);
      }
      Response res = handler_(req);
      if (res.cut) return close_fd(fd);
      std::string out = "HTTP/1.1 " + std::to_string(res.status) + " " + reason(res.status) + "\r\n";
      bool has_length = false;
      for (const auto& [k, v] : res.headers) {
        has_length |= lower(k) == "content-length";
        out += k + ": " + v + "\r\n";
      }
      if (!has_length) out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
      out += "\r\n";
      if (req.method != "HEAD") out += res.body;
      if (!send_all(fd, out)) return close_fd(fd);
    }
    close_fd(fd);
  }

  void close_fd(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find(open_fds_.begin(), open_fds_.end(), fd);
    if (it != open_fds_.end()) {
      open_fds_.erase(it);
      ::close(fd);
    }
  }

  Handler handler_;
  std::string address_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<int> open_fds_;
  std::vector<Request> log_;
};

}  // namespace hf_test
