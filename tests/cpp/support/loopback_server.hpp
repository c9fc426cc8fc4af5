#pragma once
// A small HTTP/1.1 server on a loopback address for the download engine's tests: keep-alive, GET/HEAD,
// single byte ranges (206/416), redirects, a request log, and scripted faults (error statuses with
// headers, connections cut mid-body, flipped bytes, ignored Range, throttled, held or stalled responses).
// Header-only so each test executable can include it.
//
// The request log is written before the client can see what it records: a response's status, body
// bytes and end time are logged before its last bytes are sent (and corrected if sending fails), so a
// test that reads the log once the client is done never races the server thread that answered.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace testsupport {

struct Request {
  std::string method;
  std::string target;  // as sent: origin-form "/p?q" or absolute-form (through a proxy)
  std::string path;    // without query
  std::map<std::string, std::string> headers;  // lower-cased names
  bool has_range = false;
  uint64_t range_begin = 0;
  std::optional<uint64_t> range_last;  // inclusive
  double time = 0;                     // seconds since the server started
  double end_time = 0;                 // when the last bytes were handed to the socket (or it was abandoned)
  int status = 0;                      // what was answered
  uint64_t body_bytes = 0;             // body bytes sent (those of a send that failed are not counted)
  bool absolute_form = false;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool has_header(const std::string& name) const { return headers.count(name) > 0; }
};

// Applies to the next `times` requests whose path contains `path` (and, when min_range_begin is set,
// that ask for a range starting at or after it).
// Hold: the request is not answered until release_holds(). StallAfter: the response sends `cut_after`
// body bytes, then waits for release_holds() before sending the rest.
struct Fault {
  enum class Kind { Status, CutAfter, Corrupt, IgnoreRange, Throttle, Hold, StallAfter };
  Kind kind = Kind::Status;
  std::string path;
  int times = 1;
  std::optional<uint64_t> min_range_begin;
  int status = 500;                                          // Status
  std::vector<std::pair<std::string, std::string>> headers;  // Status
  uint64_t cut_after = 0;                                    // CutAfter: body bytes sent before closing;
                                                             // StallAfter: body bytes sent before waiting
  uint64_t corrupt_offset = 0;                               // Corrupt: file offset whose byte is flipped
  double bytes_per_second = 0;                               // Throttle
};

class LoopbackServer {
 public:
  explicit LoopbackServer(std::string address = "127.0.0.1") : address_(std::move(address)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket() failed");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    if (::inet_pton(AF_INET, address_.c_str(), &addr.sin_addr) != 1) throw std::runtime_error("bad address");
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("bind(" + address_ + ") failed: " + std::strerror(errno));
    }
    if (::listen(listen_fd_, 64) != 0) throw std::runtime_error("listen() failed");
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    start_ = std::chrono::steady_clock::now();
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~LoopbackServer() { stop(); }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    gate_cv_.notify_all();
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(connections_);
    }
    for (auto& t : threads) t.join();
  }

  uint16_t port() const { return port_; }
  std::string base_url() const { return "http://" + address_ + ":" + std::to_string(port_); }
  std::string url(const std::string& path) const { return base_url() + path; }

  void add_file(const std::string& path, std::string content,
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    std::lock_guard<std::mutex> lock(mu_);
    files_[path] = Resource{std::make_shared<const std::string>(std::move(content)), std::move(headers)};
  }
  void add_redirect(const std::string& path, const std::string& location, int status = 302) {
    std::lock_guard<std::mutex> lock(mu_);
    redirects_[path] = {status, location};
  }
  void add_fault(Fault f) {
    std::lock_guard<std::mutex> lock(mu_);
    faults_.push_back(std::move(f));
  }
  // When false, Range headers are ignored (200 with the whole body), like a server without range support.
  void set_ranges_supported(bool supported) {
    std::lock_guard<std::mutex> lock(mu_);
    ranges_supported_ = supported;
  }
  // Every response body is sent at most this fast (per connection); 0 = unlimited.
  void set_connection_rate(double bytes_per_second) {
    std::lock_guard<std::mutex> lock(mu_);
    connection_rate_ = bytes_per_second;
  }
  // Releases every request held by a Hold or StallAfter fault (and all later ones).
  void release_holds() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      holds_released_ = true;
    }
    gate_cv_.notify_all();
  }

  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }
  size_t count(const std::string& path) const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<size_t>(std::count_if(log_.begin(), log_.end(), [&](const Request& r) { return r.path == path; }));
  }
  // Most responses to `path` that were in progress at the same moment.
  size_t max_concurrent(const std::string& path) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::pair<double, int>> edges;
    for (const auto& r : log_) {
      if (r.path != path) continue;
      edges.emplace_back(r.time, 1);
      edges.emplace_back(r.end_time > 0 ? r.end_time : elapsed(), -1);
    }
    std::sort(edges.begin(), edges.end());  // at equal times an end (-1) sorts before a start
    size_t current = 0, most = 0;
    for (const auto& [t, d] : edges) {
      current = static_cast<size_t>(static_cast<long>(current) + d);
      most = std::max(most, current);
    }
    return most;
  }
  // Responses currently waiting for release_holds() (Hold or StallAfter).
  size_t held() const {
    std::lock_guard<std::mutex> lock(mu_);
    return held_;
  }
  size_t connections_accepted() const {
    std::lock_guard<std::mutex> lock(mu_);
    return accepted_;
  }

 private:
  struct Resource {
    std::shared_ptr<const std::string> content;
    std::vector<std::pair<std::string, std::string>> headers;
  };

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  void accept_loop() {
    for (;;) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        ::close(fd);
        return;
      }
      ++accepted_;
      client_fds_.insert(fd);
      connections_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static bool send_all(int fd, const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }

  // Reads one request head; false on EOF/error.
  static bool read_head(int fd, std::string& pending, std::string& head) {
    for (;;) {
      auto end = pending.find("\r\n\r\n");
      if (end != std::string::npos) {
        head = pending.substr(0, end);
        pending.erase(0, end + 4);
        return true;
      }
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      pending.append(buf, static_cast<size_t>(n));
      if (pending.size() > 1 << 20) return false;
    }
  }

  static Request parse(const std::string& head) {
    Request r;
    size_t line_end = head.find("\r\n");
    std::string first = head.substr(0, line_end);
    size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
    r.method = first.substr(0, sp1);
    r.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string target = r.target;
    if (target.rfind("http://", 0) == 0) {
      r.absolute_form = true;
      size_t slash = target.find('/', 7);
      target = slash == std::string::npos ? "/" : target.substr(slash);
    }
    r.path = target.substr(0, target.find('?'));
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        r.headers[name] = line.substr(v);
      }
      pos = e + 2;
    }
    std::string range = r.header("range");
    unsigned long long a = 0, b = 0;
    if (std::sscanf(range.c_str(), "bytes=%llu-%llu", &a, &b) == 2) {
      r.has_range = true;
      r.range_begin = a;
      r.range_last = b;
    } else if (std::sscanf(range.c_str(), "bytes=%llu-", &a) == 1) {
      r.has_range = true;
      r.range_begin = a;
    }
    return r;
  }

  // Takes the first matching fault of each kind (consuming one use); returns them.
  std::vector<Fault> take_faults(const Request& r) {
    std::vector<Fault> out;
    std::set<Fault::Kind> seen;
    for (auto& f : faults_) {
      if (f.times <= 0 || seen.count(f.kind)) continue;
      if (!f.path.empty() && r.path.find(f.path) == std::string::npos) continue;
      if (f.min_range_begin && (!r.has_range || r.range_begin < *f.min_range_begin)) continue;
      --f.times;
      seen.insert(f.kind);
      out.push_back(f);
    }
    return out;
  }

  void serve(int fd) {
    std::string pending, head;
    while (read_head(fd, pending, head)) {
      Request r = parse(head);
      r.time = elapsed();
      if (!respond(fd, r)) break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    client_fds_.erase(fd);
    ::close(fd);
  }

  size_t record(const Request& r) {
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back(r);
    return log_.size() - 1;
  }
  // Called before the bytes that end a response are sent: once the client has them, the log is complete.
  void finish_record(size_t index, int status, uint64_t body_bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    log_[index].status = status;
    log_[index].body_bytes = body_bytes;
    log_[index].end_time = elapsed();
  }
  // The status, before the response head is sent.
  void record_status(size_t index, int status) {
    std::lock_guard<std::mutex> lock(mu_);
    log_[index].status = status;
  }
  // Body bytes handed to the socket so far, counted before each send.
  void record_body_bytes(size_t index, uint64_t body_bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    log_[index].body_bytes = body_bytes;
  }
  // Waits for release_holds(); false when the server stops instead.
  bool wait_for_release() {
    std::unique_lock<std::mutex> lock(mu_);
    ++held_;
    gate_cv_.wait(lock, [this] { return holds_released_ || stopping_; });
    --held_;
    return !stopping_;
  }

  bool send_simple(int fd, size_t index, int status, const std::string& reason,
                   const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body,
                   bool head_only) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
    for (const auto& [k, v] : headers) out += k + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    if (!head_only) out += body;
    finish_record(index, status, head_only ? 0 : body.size());
    return send_all(fd, out.data(), out.size());
  }

  // Returns false when the connection must be closed.
  bool respond(int fd, Request r) {
    std::vector<Fault> faults;
    std::optional<Resource> resource;
    std::optional<std::pair<int, std::string>> redirect;
    bool ranges_supported;
    double rate;
    {
      std::lock_guard<std::mutex> lock(mu_);
      faults = take_faults(r);
      auto f = files_.find(r.path);
      if (f != files_.end()) resource = f->second;
      auto red = redirects_.find(r.path);
      if (red != redirects_.end()) redirect = red->second;
      ranges_supported = ranges_supported_;
      rate = connection_rate_;
    }
    size_t index = record(r);
    bool head_only = r.method == "HEAD";
    auto fault = [&](Fault::Kind k) -> const Fault* {
      for (const auto& f : faults) {
        if (f.kind == k) return &f;
      }
      return nullptr;
    };
    if (fault(Fault::Kind::Hold) && !wait_for_release()) return false;
    if (const Fault* s = fault(Fault::Kind::Status)) {
      return send_simple(fd, index, s->status, "Scripted", s->headers, "scripted failure\n", head_only);
    }
    if (redirect) {
      return send_simple(fd, index, redirect->first, "Found", {{"Location", redirect->second}}, "", head_only);
    }
    if (!resource) return send_simple(fd, index, 404, "Not Found", {}, "no such file\n", head_only);

    const std::string& content = *resource->content;
    uint64_t size = content.size();
    uint64_t begin = 0, end = size;  // [begin, end)
    int status = 200;
    bool use_range = r.has_range && ranges_supported && !fault(Fault::Kind::IgnoreRange);
    if (use_range) {
      if (r.range_begin >= size) {
        return send_simple(fd, index, 416, "Range Not Satisfiable",
                           {{"Content-Range", "bytes */" + std::to_string(size)}}, "", head_only);
      }
      begin = r.range_begin;
      end = r.range_last ? std::min<uint64_t>(*r.range_last + 1, size) : size;
      status = 206;
    }
    std::string out = "HTTP/1.1 " + std::to_string(status) + (status == 206 ? " Partial Content" : " OK") + "\r\n";
    out += "Content-Length: " + std::to_string(end - begin) + "\r\n";
    if (ranges_supported) out += "Accept-Ranges: bytes\r\n";
    if (status == 206) {
      out += "Content-Range: bytes " + std::to_string(begin) + "-" + std::to_string(end - 1) + "/" +
             std::to_string(size) + "\r\n";
    }
    for (const auto& [k, v] : resource->headers) out += k + ": " + v + "\r\n";
    out += "\r\n";
    const Fault* cut = fault(Fault::Kind::CutAfter);
    const Fault* corrupt = fault(Fault::Kind::Corrupt);
    const Fault* throttle = fault(Fault::Kind::Throttle);
    const Fault* stall = fault(Fault::Kind::StallAfter);
    if (throttle) rate = throttle->bytes_per_second;
    uint64_t limit = end;
    if (cut) limit = std::min(end, begin + cut->cut_after);
    std::optional<uint64_t> stall_at;
    if (stall && begin + stall->cut_after < limit) stall_at = begin + stall->cut_after;
    if (head_only || begin == limit) finish_record(index, status, 0);  // the head is all there is
    else record_status(index, status);
    if (!send_all(fd, out.data(), out.size())) {
      finish_record(index, status, 0);
      return false;
    }
    if (head_only) return true;
    constexpr size_t kChunk = 64 * 1024;
    std::string chunk;
    uint64_t sent = 0;
    auto started = std::chrono::steady_clock::now();
    for (uint64_t pos = begin; pos < limit;) {
      if (stall_at && pos == *stall_at) {
        stall_at.reset();
        if (!wait_for_release()) {
          finish_record(index, status, sent);
          return false;
        }
      }
      uint64_t chunk_end = std::min<uint64_t>(pos + kChunk, stall_at ? *stall_at : limit);
      size_t n = static_cast<size_t>(chunk_end - pos);
      chunk.assign(content.data() + pos, n);
      if (corrupt && corrupt->corrupt_offset >= pos && corrupt->corrupt_offset < pos + n) {
        chunk[corrupt->corrupt_offset - pos] ^= 0x5a;
      }
      if (rate > 0) {
        double due = static_cast<double>(sent) / rate;
        double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (due > now) std::this_thread::sleep_for(std::chrono::duration<double>(due - now));
        bool stopping;
        {
          std::lock_guard<std::mutex> lock(mu_);
          stopping = stopping_;
        }
        if (stopping) {
          finish_record(index, status, sent);
          return false;
        }
      }
      if (pos + n == limit) finish_record(index, status, sent + n);  // the last bytes of this response
      else record_body_bytes(index, sent + n);
      if (!send_all(fd, chunk.data(), n)) {
        finish_record(index, status, sent);
        return false;
      }
      pos += n;
      sent += n;
    }
    if (cut) return false;  // close mid-body
    return true;
  }

  std::string address_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::condition_variable gate_cv_;
  bool stopping_ = false;
  bool holds_released_ = false;
  bool ranges_supported_ = true;
  double connection_rate_ = 0;
  size_t held_ = 0;
  size_t accepted_ = 0;
  std::set<int> client_fds_;
  std::vector<std::thread> connections_;
  std::map<std::string, Resource> files_;
  std::map<std::string, std::pair<int, std::string>> redirects_;
  std::vector<Fault> faults_;
  std::vector<Request> log_;
};

// Deterministic pseudo-random content of the given size.
inline std::string make_content(size_t size, uint32_t seed = 1) {
  std::string s(size, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

}  // namespace testsupport
