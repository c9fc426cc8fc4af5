// The download engine's scheduler: one libcurl multi handle on the calling thread drives every range
// transfer of the plan; I/O worker threads write, hash, sync, journal and commit. See
// docs/download-engine.md for the design.

#include "modelagent/ascii_text.hpp"
#include "modelagent/download_engine.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "modelagent/bandwidth_limiter.hpp"
#include "modelagent/digest.hpp"
#include "modelagent/disk_space.hpp"
#include "modelagent/download_file_state.hpp"
#include "modelagent/download_workers.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/http_client.hpp"
#include "modelagent/partial_file.hpp"
#include "modelagent/path_safety.hpp"
#include "modelagent/range_planner.hpp"
#include "modelagent/resume_journal.hpp"
#include "modelagent/verified_stamp.hpp"
#include "modelagent/version.hpp"

namespace modelagent {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr size_t kBufferSize = 4u << 20;         // ≥ 1 MiB per pwrite: small writes halve throughput
constexpr long kCurlReceiveBuffer = 512 * 1024;  // bytes curl reads per callback
constexpr int kMaxRedirects = 10;
constexpr int kMaxFileAttempts = 3;              // whole-file re-fetches after a digest mismatch
constexpr long kPollMillis = 200;                // bounds how late cancellation is noticed
constexpr double kFastConnection = 128.0 * (1 << 20);  // bytes/s beyond which more ranges do not help
constexpr size_t kMaxErrorBody = 512;

void curl_global_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// URLs in messages lose their query: pre-signed CDN URLs carry credentials there.
std::string display_url(const std::string& url) {
  auto q = url.find('?');
  return q == std::string::npos ? url : url.substr(0, q) + "?…";
}

// scheme://host:port of an absolute URL, lower-cased, with the default port filled in.
std::string origin_of(const std::string& url) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *scheme = nullptr, *host = nullptr, *port = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    out = ascii_lower(std::string(scheme ? scheme : "") + "://" + (host ? host : "") + ":" + (port ? port : ""));
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

// Credentials go only where the planned URL pointed; an origin that cannot be parsed counts as foreign.
bool same_origin(const std::string& a, const std::string& b) {
  std::string oa = origin_of(a), ob = origin_of(b);
  return !oa.empty() && oa == ob;
}

bool is_credential_header(const std::string& name) {
  std::string n = ascii_lower(name);
  return n == "authorization" || n == "cookie";
}

bool transient_curl_error(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

class Engine;
struct FileJob;

// One byte range of one file, fetched by one transfer at a time (retried from where it stopped).
struct RangeTask {
  Engine* engine = nullptr;
  FileJob* file = nullptr;
  ByteRange range;           // end == kUnknownSize for a stream of unknown length
  uint64_t pos = 0;          // next byte to receive
  bool whole_file = false;   // no Range header: the response body is the file from byte 0
  int attempts = 0;
  int redirects = 0;
  std::string url;
  bool send_credentials = true;
  bool reset_redirect_once = false;
  bool renewed_credentials = false;  // the signer was asked to renew after a rejection
  HeaderList signed_headers;         // what the signer added to the current attempt
  double ready_at = 0;        // seconds since start; waiting for a backoff until then
  bool transfer_done = false; // the transfer's reference was dropped (finished, cancelled or interrupted)
  bool cancelled = false;     // dropped because its file restarted as one stream; writes still drain
  bool interrupted = false;   // stopped by shutdown: its range is not complete
  bool active = false;
  bool paused_for_buffer = false;
  bool paused_for_hash = false;
  bool paused_for_bandwidth = false;
  // 1 for the transfer plus 1 per buffer being written; the range is complete when it reaches 0.
  std::atomic<int> refs{1};

  // Per-attempt response state.
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  char error_text[CURL_ERROR_SIZE] = {0};
  HttpResponse response;
  bool got_status = false;
  bool validated = false;
  bool discarding = false;
  enum class Abort { None, RangeIgnored, Retry, Fatal } abort = Abort::None;
  std::string abort_reason;
  std::exception_ptr fatal;
  std::shared_ptr<Buffer> buffer;
};

enum class FileState { Pending, Checking, Downloading, Finishing, Done };

struct FileJob {
  const PlannedFile* planned = nullptr;
  std::filesystem::path final_path;
  ExpectedDigest expected;
  uint64_t size = kUnknownSize;
  uint64_t identity = 0;
  FileState state = FileState::Pending;
  bool replacing = false;        // an existing final file did not verify and is being replaced
  bool journaled = false;        // completed ranges are journaled as they finish
  bool no_ranges = false;        // the server ignored Range: one stream from byte 0
  bool switch_pending = false;   // no_ranges was detected inside a callback; act on it after perform
  RangeTask* switch_keeper = nullptr;  // the transfer whose 200 body becomes the whole file
  int file_attempts = 0;
  int active = 0;                // transfers in flight
  int tasks_alive = 0;           // tasks created and not yet drained
  std::string resolved_url;      // where the planned URL redirected to (reused by later ranges)
  bool resolved_credentials = true;
  bool url_settled = false;      // a first response arrived: more ranges may start (at resolved_url)
  std::unique_ptr<PartialFile> partial;
  std::unique_ptr<ResumeJournal> journal;
  std::mutex journal_mu;
  std::unique_ptr<StreamingVerifier> verifier;
  std::atomic<uint64_t> counted{0};  // this file's share of progress.bytes_done
  // Buffers waiting to be written. One worker at a time drains them (parallel pwrites to one file
  // only contend for its inode lock), while another may be hashing what was written.
  std::mutex write_mu;
  std::deque<std::pair<RangeTask*, std::shared_ptr<Buffer>>> write_queue;
  bool writing = false;
  FileResult result;
};

struct Event {
  enum class Kind { RangeDone, Finished, Corrupt, Checked, Fatal };
  Event(Kind k, FileJob* f, RangeTask* t = nullptr, bool success = false, std::string message = {},
        std::exception_ptr failure = nullptr)
      : kind(k), file(f), task(t), ok(success), text(std::move(message)), error(std::move(failure)) {}
  Kind kind;
  FileJob* file;
  RangeTask* task;
  bool ok;
  std::string text;
  std::exception_ptr error;
};

// Holds flock() on <root>/.modelagent/lock so two runs never write the same destination at once.
class RootLock {
 public:
  RootLock(const std::filesystem::path& root, CancelToken* cancel, double timeout_seconds) {
    std::filesystem::path dir = root / kStateDirName;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw DownloadError("cannot create " + dir.string() + ": " + ec.message());
    std::filesystem::path path = dir / "lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw DownloadError("cannot open lock file " + path.string() + ": " + std::strerror(errno));
    auto start = Clock::now();
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        int err = errno;
        ::close(fd_);
        throw DownloadError("cannot lock " + path.string() + ": " + std::strerror(err));
      }
      if (cancel && cancel->is_cancelled()) {
        ::close(fd_);
        throw CancelledError("cancelled while waiting for another download into " + root.string());
      }
      if (timeout_seconds > 0 && seconds_since(start) > timeout_seconds) {
        ::close(fd_);
        throw DownloadError("another download into " + root.string() + " held its lock for over " +
                            std::to_string(static_cast<long>(timeout_seconds)) + " s");
      }
      ::usleep(100 * 1000);
    }
  }
  ~RootLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  RootLock(const RootLock&) = delete;
  RootLock& operator=(const RootLock&) = delete;

 private:
  int fd_ = -1;
};

class Engine {
 public:
  Engine(const DownloadPlan& plan, const std::filesystem::path& root, const DownloadOptions& options,
         CancelToken* cancel, DownloadProgress* progress)
      : plan_(plan),
        root_(root),
        options_(options),
        cancel_(cancel),
        progress_(progress ? progress : &own_progress_),
        limiter_(options.bandwidth_limit),
        buffers_(std::make_shared<BufferPool>(
            kBufferSize, static_cast<size_t>(std::max(24, options.max_connections * 2 + 8)))) {}

  ~Engine() {
    workers_.reset();  // joins the threads; every job has finished
    for (auto& t : tasks_) release_easy(*t);
    for (CURL* e : idle_easy_) curl_easy_cleanup(e);
    if (multi_) curl_multi_cleanup(multi_);
  }

  DownloadReport run();
  size_t body(RangeTask& t, const char* data, size_t n);

 private:
  void validate_options() const;
  void prepare_files();
  void classify(FileJob& f);
  void start_download(FileJob& f);
  void create_tasks(FileJob& f, const IntervalSet& done);
  void loop();
  void start_ready_tasks();
  void begin_transfer(RangeTask& t);
  void finish_transfer(RangeTask& t, CURLcode code);
  void schedule_retry(RangeTask& t, const std::string& why, long status, double server_wait);
  void drop_transfer_ref(RangeTask& t);
  void switch_to_single_stream(FileJob& f, RangeTask* keeper);
  void release_easy(RangeTask& t);
  void apply_pauses();
  void process_events();
  void maybe_finish(FileJob& f);
  void restart_file(FileJob& f, const std::string& why);
  void file_done(FileJob& f);
  void shutdown(std::exception_ptr error);
  void update_rate();
  double now() const { return seconds_since(start_); }
  void post(Event e);
  std::string where(const FileJob& f) const;
  void validate(RangeTask& t);
  void submit_buffer(RangeTask& t);
  void drain_writes(FileJob* f);
  void write_one(RangeTask* t, std::shared_ptr<Buffer> b);
  void hash_job(FileJob* f);
  void wake_if_waiting();
  void range_complete_job(RangeTask* t);
  void finish_job(FileJob* f);
  void check_existing_job(FileJob* f);

  const DownloadPlan& plan_;
  std::filesystem::path root_;
  DownloadOptions options_;
  CancelToken* cancel_;
  DownloadProgress own_progress_;
  DownloadProgress* progress_;
  BandwidthLimiter limiter_;
  std::shared_ptr<BufferPool> buffers_;
  std::atomic<long> retain_budget_{0};  // buffers the files may keep for hashing (see StreamingVerifier)
  Clock::time_point start_ = Clock::now();
  CURLM* multi_ = nullptr;
  std::vector<CURL*> idle_easy_;
  std::vector<std::unique_ptr<FileJob>> files_;
  std::list<std::unique_ptr<RangeTask>> tasks_;
  std::map<std::string, double> origin_blocked_until_;
  int active_ = 0;
  size_t files_done_ = 0;
  bool bandwidth_paused_ = false;
  bool stopping_ = false;
  double next_wake_ = 0;  // earliest time a waiting task may start (0 = none seen)
  int per_file_limit_ = 1;        // current cap on one file's parallel ranges (ramps up)
  bool per_file_limit_hit_ = false;
  bool paused_locally_ = false;   // a transfer waited for a buffer or the hash since the last rate update
  int ramp_from_ = 0;             // the limit before the last increase, until that increase is judged
  double ramp_base_rate_ = 0;     // the total rate before the last increase
  double ramp_frozen_until_ = 0;  // an increase that did not pay off stops further ones until then
  double ramp_rate_sum_ = 0;      // total rates of the windows since the last increase
  int ramp_windows_ = 0;
  int window_active_ = -1;        // transfers active at the start of the current rate window
  std::mutex events_mu_;
  std::vector<Event> events_;
  uint64_t rate_bytes_ = 0;
  double rate_time_ = 0;
  double rate_ = 0;
  // Set while a transfer waits for a buffer or for the hash: workers then wake the network loop
  // after each write or hash step instead of letting it sleep out its poll timeout.
  std::atomic<bool> wake_on_progress_{false};
  std::unique_ptr<WorkerPool> workers_;  // last: destroyed first, while everything its jobs touch exists
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<RangeTask*>(user);
  size_t n = size * count;
  std::string line(data, n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (the first, or the one after a 1xx): forget earlier headers.
    t.response = HttpResponse{};
    auto sp = line.find(' ');
    t.response.status = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
    t.got_status = true;
    return n;
  }
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = ascii_lower(line.substr(0, colon));
    size_t v = colon + 1;
    while (v < line.size() && (line[v] == ' ' || line[v] == '\t')) ++v;
    t.response.headers.emplace(std::move(name), line.substr(v));
  }
  return n;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<RangeTask*>(user);
  return t.engine->body(t, data, size * count);
}

std::string Engine::where(const FileJob& f) const {
  return f.planned->relative_path + " (" + display_url(f.planned->url) + ")";
}

void Engine::post(Event e) {
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    events_.push_back(std::move(e));
  }
  if (multi_) curl_multi_wakeup(multi_);
}

// ---------------------------------------------------------------------------------------------
// Setup

void Engine::validate_options() const {
  auto bad = [](const std::string& field, const std::string& value, const std::string& rule) {
    throw DownloadError("invalid download option " + field + "=" + value + ": " + rule);
  };
  if (options_.max_connections < 1) bad("max_connections", std::to_string(options_.max_connections), "must be at least 1");
  if (options_.connections_per_file < 1) {
    bad("connections_per_file", std::to_string(options_.connections_per_file), "must be at least 1");
  }
  if (options_.chunk_size < (64u << 10)) bad("chunk_size", std::to_string(options_.chunk_size), "must be at least 65536");
  if (options_.max_attempts < 1) bad("max_attempts", std::to_string(options_.max_attempts), "must be at least 1");
  auto non_negative = [&](const char* field, double v) {
    if (!(v >= 0) || std::isinf(v)) bad(field, std::to_string(v), "must be a finite number >= 0");
  };
  non_negative("retry_base_seconds", options_.retry_base_seconds);
  non_negative("retry_cap_seconds", options_.retry_cap_seconds);
  non_negative("total_timeout_seconds", options_.total_timeout_seconds);
  non_negative("connect_timeout_seconds", options_.connect_timeout_seconds);
  non_negative("low_speed_timeout_seconds", options_.low_speed_timeout_seconds);
}

void Engine::prepare_files() {
  uint64_t total = 0;
  for (size_t i = 0; i < plan_.files.size(); ++i) {
    const PlannedFile& p = plan_.files[i];
    auto f = std::make_unique<FileJob>();
    f->planned = &p;
    f->final_path = root_ / p.relative_path;
    f->size = p.size;
    f->result.relative_path = p.relative_path;
    f->result.size = p.size == kUnknownSize ? 0 : p.size;
    if (p.url.empty()) throw DownloadError("no URL for " + p.relative_path);
    f->expected = normalize_digest(p.digest, p.size, p.relative_path);
    std::string identity_text = "v1|" + std::to_string(p.size) + "|" + digest_kind_name(f->expected.kind) + "|" +
                                stamp_digest_text(f->expected);
    if (f->expected.kind == DigestKind::None) identity_text += "|" + p.url.substr(0, p.url.find('?'));
    f->identity = fnv1a64(identity_text);
    if (p.size != kUnknownSize) total += p.size;
    files_.push_back(std::move(f));
  }
  progress_->bytes_total.store(total);
  progress_->files_total.store(static_cast<uint32_t>(files_.size()));
}

void Engine::classify(FileJob& f) {
  struct stat st {};
  if (::lstat(f.final_path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      throw DownloadError("cannot place " + f.planned->relative_path + ": " + f.final_path.string() +
                          " exists and is a directory");
    }
    if (S_ISREG(st.st_mode)) {
      uint64_t have = static_cast<uint64_t>(st.st_size);
      bool size_ok = f.size == kUnknownSize || have == f.size;
      if (size_ok && f.expected.kind != DigestKind::None) {
        if (stamp_is_valid(root_, f.planned->relative_path, f.expected)) {
          f.result.size = have;
          f.result.verified = true;
          f.result.digest_hex = stamp_digest_text(f.expected);
          f.result.note = "already present; verified-stamp unchanged";
          f.counted = have;
          progress_->bytes_done.fetch_add(have);
          file_done(f);
          return;
        }
        f.state = FileState::Checking;
        workers_->submit([this, pf = &f] { check_existing_job(pf); });
        return;
      }
      if (size_ok && f.size != kUnknownSize) {
        f.result.size = have;
        f.result.note = "already present with the planned size; the plan has no digest to verify against";
        f.counted = have;
        progress_->bytes_done.fetch_add(have);
        file_done(f);
        return;
      }
      f.replacing = true;
    }
  }
  start_download(f);
}

void Engine::check_existing_job(FileJob* f) {
  try {
    auto r = hash_file(f->final_path, f->expected, cancel_);
    if (r.matches) write_stamp(root_, f->planned->relative_path, f->expected);
    Event e{Event::Kind::Checked, f};
    e.ok = r.matches;
    e.text = r.hex;
    post(std::move(e));
  } catch (...) {
    post(Event{Event::Kind::Fatal, f, nullptr, false, "", std::current_exception()});
  }
}

void Engine::start_download(FileJob& f) {
  f.state = FileState::Downloading;
  remove_stamp(root_, f.planned->relative_path);
  std::filesystem::path journal_path = journal_path_for(f.final_path);
  std::optional<IntervalSet> done;
  struct stat st {};
  if (f.size != kUnknownSize && f.size > 0 && ::stat(partial_path_for(f.final_path).c_str(), &st) == 0 &&
      static_cast<uint64_t>(st.st_size) == f.size) {
    done = ResumeJournal::load(journal_path, f.identity, f.size);
  }
  bool resume = done && !done->empty();
  if (!resume) ResumeJournal::remove(journal_path);
  f.partial = std::make_unique<PartialFile>(f.final_path, f.size, resume);
  f.verifier = std::make_unique<StreamingVerifier>(*f.partial, f.expected, f.size, &retain_budget_);
  IntervalSet present;
  if (resume) {
    present = *done;
    f.verifier->mark_present(present);
    f.counted = present.total();
    progress_->bytes_done.fetch_add(present.total());
    f.journal = std::make_unique<ResumeJournal>(journal_path, f.identity, f.size, /*fresh=*/false);
  }
  create_tasks(f, present);
}

void Engine::create_tasks(FileJob& f, const IntervalSet& done) {
  std::vector<ByteRange> ranges;
  bool whole = f.size == kUnknownSize || f.size == 0 || f.no_ranges;
  if (whole) {
    ranges.push_back({0, f.size});
  } else {
    uint64_t chunk = effective_chunk_size(f.size, options_.chunk_size, options_.connections_per_file);
    ranges = plan_ranges(f.size, chunk, done);
    f.journaled = ranges.size() > 1 || !done.empty();
    if (f.journaled && !f.journal) {
      f.journal = std::make_unique<ResumeJournal>(journal_path_for(f.final_path), f.identity, f.size, /*fresh=*/true);
    }
  }
  for (const auto& r : ranges) {
    auto t = std::make_unique<RangeTask>();
    t->engine = this;
    t->file = &f;
    t->range = r;
    t->pos = r.begin;
    // A range that is the whole file is a plain GET (Content-Length still checks the size).
    t->whole_file = whole || (ranges.size() == 1 && r.begin == 0 && r.end == f.size);
    t->url = f.resolved_url.empty() ? f.planned->url : f.resolved_url;
    t->send_credentials = f.resolved_url.empty() ? true : f.resolved_credentials;
    ++f.tasks_alive;
    tasks_.push_back(std::move(t));
  }
  if (ranges.empty()) maybe_finish(f);  // everything was journaled already
}

// ---------------------------------------------------------------------------------------------
// Transfers

void Engine::start_ready_tasks() {
  next_wake_ = 0;
  if (stopping_ || bandwidth_paused_) return;
  double t_now = now();
  auto wake_at = [&](double when) { next_wake_ = next_wake_ == 0 ? when : std::min(next_wake_, when); };
  bool any_origin_blocked = std::any_of(origin_blocked_until_.begin(), origin_blocked_until_.end(),
                                        [&](const auto& entry) { return entry.second > t_now; });
  for (auto& tp : tasks_) {
    if (active_ >= options_.max_connections) break;
    RangeTask& t = *tp;
    if (t.active || t.transfer_done) continue;
    if (t.ready_at > t_now) {
      wake_at(t.ready_at);
      continue;
    }
    FileJob& f = *t.file;
    if (f.state != FileState::Downloading || f.switch_pending) continue;
    if (f.active >= per_file_limit_) {
      per_file_limit_hit_ = per_file_limit_ < options_.connections_per_file;
      continue;
    }
    // One request first, so a redirecting URL (a hub) is resolved once rather than once per range.
    if (!f.url_settled && f.active > 0) continue;
    if (t.attempts == 0 && t.redirects == 0 && !f.resolved_url.empty()) {
      t.url = f.resolved_url;
      t.send_credentials = f.resolved_credentials;
    }
    if (any_origin_blocked) {
      auto blocked = origin_blocked_until_.find(origin_of(t.url));
      if (blocked != origin_blocked_until_.end() && blocked->second > t_now) {
        wake_at(blocked->second);
        continue;
      }
    }
    begin_transfer(t);
  }
}

void Engine::begin_transfer(RangeTask& t) {
  FileJob& f = *t.file;
  CURL* e = nullptr;
  if (!idle_easy_.empty()) {
    e = idle_easy_.back();
    idle_easy_.pop_back();
    curl_easy_reset(e);
  } else {
    e = curl_easy_init();
    if (!e) throw DownloadError("libcurl could not create a transfer handle");
  }
  t.easy = e;
  t.response = HttpResponse{};
  t.got_status = false;
  t.validated = false;
  t.discarding = false;
  t.abort = RangeTask::Abort::None;
  t.abort_reason.clear();
  t.error_text[0] = '\0';

  HeaderList request_headers = f.planned->headers;
  t.signed_headers.clear();
  if (f.planned->signer && t.send_credentials) {
    f.planned->signer->sign("GET", t.url, "", request_headers);
    t.signed_headers = request_headers;
  }
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request_headers) {
    if (!t.send_credentials && is_credential_header(name)) continue;
    if (ascii_lower(name) == "range") continue;  // ranges are the engine's business
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  }
  t.header_list = headers;

  curl_easy_setopt(e, CURLOPT_URL, t.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);  // redirects are followed here, dropping credentials
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error_text);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, kCurlReceiveBuffer);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_seconds * 1000));
  // A bandwidth cap can legitimately hold a transfer under 1 KiB/s; then only the cap governs speed.
  bool capped_slow = options_.bandwidth_limit > 0 &&
                     options_.bandwidth_limit < 4096ull * static_cast<uint64_t>(options_.max_connections);
  if (options_.low_speed_timeout_seconds > 0 && !capped_slow) {
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(options_.low_speed_timeout_seconds)));
  }
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  if (!options_.ca_bundle.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_bundle.c_str());
  std::string agent = options_.user_agent.empty() ? std::string("modelagent/") + kVersion : options_.user_agent;
  curl_easy_setopt(e, CURLOPT_USERAGENT, agent.c_str());
  std::string range;
  if (!t.whole_file) {
    range = std::to_string(t.pos) + "-" + (t.range.end == kUnknownSize ? "" : std::to_string(t.range.end - 1));
  } else if (t.pos > 0) {
    range = std::to_string(t.pos) + "-";  // continuing a stream after a broken connection
  }
  if (!range.empty()) curl_easy_setopt(e, CURLOPT_RANGE, range.c_str());

  ++t.attempts;
  t.active = true;
  ++active_;
  ++f.active;
  CURLMcode mc = curl_multi_add_handle(multi_, e);
  if (mc != CURLM_OK) throw DownloadError(std::string("libcurl refused a transfer: ") + curl_multi_strerror(mc));
}

void Engine::release_easy(RangeTask& t) {
  if (!t.easy) return;
  if (multi_) curl_multi_remove_handle(multi_, t.easy);
  idle_easy_.push_back(t.easy);
  t.easy = nullptr;
  curl_slist_free_all(t.header_list);
  t.header_list = nullptr;
  if (t.active) {
    t.active = false;
    --active_;
    --t.file->active;
  }
  t.paused_for_buffer = false;
  t.paused_for_bandwidth = false;
  t.paused_for_hash = false;
}

// Decides, at the first body byte (or at the end of an empty body), what to do with a response.
void Engine::validate(RangeTask& t) {
  FileJob& f = *t.file;
  long status = t.response.status;
  if (!t.got_status) {
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    t.response.status = status;
  }
  if (status < 200 || status >= 300) {
    t.discarding = true;  // redirect or error: the body is at most a message
    return;
  }
  f.url_settled = true;
  if (t.url != f.planned->url && f.resolved_url.empty()) {
    f.resolved_url = t.url;
    f.resolved_credentials = t.send_credentials;
  }
  auto fail_size = [&](uint64_t server_size) {
    t.abort = RangeTask::Abort::Fatal;
    t.fatal = std::make_exception_ptr(VerificationError(
        "size mismatch for " + where(f) + ": the server has " + std::to_string(server_size) +
        " bytes, the plan expects " + std::to_string(f.size)));
  };
  bool asked_range = !t.whole_file || t.pos > 0;
  if (status == 206) {
    std::string cr = t.response.header("content-range");
    unsigned long long a = 0, b = 0;
    char total_text[32] = {0};
    if (std::sscanf(cr.c_str(), "bytes %llu-%llu/%31s", &a, &b, total_text) != 3 || b < a) {
      t.abort = RangeTask::Abort::Retry;
      t.abort_reason = "206 response with unusable Content-Range \"" + cr + "\"";
      return;
    }
    if (std::strcmp(total_text, "*") != 0) {
      uint64_t total = std::strtoull(total_text, nullptr, 10);
      if (f.size != kUnknownSize && total != f.size) return fail_size(total);
      if (f.size == kUnknownSize) {
        f.size = total;
        t.range.end = total;
        progress_->bytes_total.fetch_add(total);
      }
    }
    if (a != t.pos || (t.range.end != kUnknownSize && b + 1 > t.range.end)) {
      t.abort = RangeTask::Abort::Retry;
      t.abort_reason = "server answered bytes " + std::to_string(a) + "-" + std::to_string(b) +
                       " to a request for bytes from " + std::to_string(t.pos);
      return;
    }
    t.validated = true;
    return;
  }
  if (status == 200) {
    if (asked_range && t.range.begin != 0) {
      t.abort = RangeTask::Abort::RangeIgnored;  // this body starts at byte 0, not where this range does
      return;
    }
    std::string cl = t.response.header("content-length");
    if (!cl.empty()) {
      uint64_t length = std::strtoull(cl.c_str(), nullptr, 10);
      if (f.size != kUnknownSize && length != f.size) return fail_size(length);
      if (f.size == kUnknownSize) {
        f.size = length;
        progress_->bytes_total.fetch_add(length);
      }
    }
    if (asked_range) {
      // The server ignored Range but this range starts at 0: keep the stream as the whole file.
      t.buffer.reset();  // bytes kept from an earlier attempt arrive again in this body
      t.pos = 0;
      t.whole_file = true;
      f.no_ranges = true;
      f.switch_pending = true;
      f.switch_keeper = &t;
    }
    t.range = {0, f.size};
    t.validated = true;
    return;
  }
  t.discarding = true;  // other 2xx: no content we can use; reported at the end of the transfer
}

size_t Engine::body(RangeTask& t, const char* data, size_t n) {
  if (!t.validated && !t.discarding) {
    validate(t);
    if (t.abort != RangeTask::Abort::None) return 0;  // aborts the transfer; finish_transfer acts on it
  }
  if (t.discarding) {
    size_t keep = std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, t.response.body.size()));
    t.response.body.append(data, keep);
    return n;
  }
  if (limiter_.enabled() && limiter_.wait_seconds(now()) > 0) {
    // Over the cap: leave the data with curl (and TCP flow control) until the bucket refills.
    t.paused_for_bandwidth = true;
    bandwidth_paused_ = true;
    return CURL_WRITEFUNC_PAUSE;
  }
  if (t.range.end != kUnknownSize && t.pos + n > t.range.end) {
    t.abort = RangeTask::Abort::Retry;
    t.abort_reason = "server sent more bytes than requested";
    return 0;
  }
  if (n == 0) return 0;
  size_t room = t.buffer ? t.buffer->capacity - t.buffer->size : 0;
  auto wanted_from = [&](uint64_t offset) {
    return t.range.end == kUnknownSize ? kBufferSize
                                       : static_cast<size_t>(std::min<uint64_t>(kBufferSize, t.range.end - offset));
  };
  if (room < n) {
    // Needs a fresh buffer. Before consuming anything: wait if the hash cannot keep up with this
    // stream (so its bytes are still hashed from memory), or if no buffer is free.
    if (t.file->verifier->too_far_ahead(t.range.begin, t.pos)) {
      t.paused_for_hash = true;
      paused_locally_ = true;
      wake_on_progress_ = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    auto next = buffers_->try_acquire(wanted_from(t.pos + room));
    if (!next) {
      t.paused_for_buffer = true;
      paused_locally_ = true;
      wake_on_progress_ = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    const char* p = data;
    size_t left = n;
    if (room > 0) {
      std::memcpy(t.buffer->data + t.buffer->size, p, room);
      t.buffer->size += room;
      p += room;
      left -= room;
    }
    submit_buffer(t);
    uint64_t offset = t.pos + room;
    for (;;) {
      next->offset = offset;
      size_t take = std::min(left, next->capacity);
      std::memcpy(next->data, p, take);
      next->size = take;
      p += take;
      left -= take;
      offset += take;
      t.buffer = std::move(next);
      if (left == 0) break;
      // Only when curl hands over more than a buffer at once (after a pause): exceed the pool briefly.
      submit_buffer(t);
      next = buffers_->acquire(wanted_from(offset));
    }
  } else {
    std::memcpy(t.buffer->data + t.buffer->size, data, n);
    t.buffer->size += n;
  }
  t.pos += n;
  progress_->bytes_fetched.fetch_add(n, std::memory_order_relaxed);
  limiter_.consume(n, now());
  if (t.buffer && t.buffer->size == t.buffer->capacity) submit_buffer(t);
  return n;
}

void Engine::submit_buffer(RangeTask& t) {
  if (!t.buffer) return;
  if (t.buffer->size == 0) {
    t.buffer.reset();
    return;
  }
  t.refs.fetch_add(1);
  FileJob& f = *t.file;
  bool start_writer = false;
  {
    std::lock_guard<std::mutex> lock(f.write_mu);
    f.write_queue.emplace_back(&t, std::move(t.buffer));
    start_writer = !f.writing;
    f.writing = true;
  }
  t.buffer.reset();
  if (start_writer) workers_->submit([this, pf = &f] { drain_writes(pf); });
}

void Engine::drop_transfer_ref(RangeTask& t) {
  if (t.transfer_done) return;
  t.transfer_done = true;
  if (t.refs.fetch_sub(1) == 1) workers_->submit([this, tp = &t] { range_complete_job(tp); });
}

void Engine::finish_transfer(RangeTask& t, CURLcode code) {
  FileJob& f = *t.file;
  if (code == CURLE_OK && !t.validated && !t.discarding && t.abort == RangeTask::Abort::None) validate(t);
  long status = t.response.status;
  if (status == 0) curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  std::string redirect;
  if (status >= 300 && status < 400) {
    char* location = nullptr;
    curl_easy_getinfo(t.easy, CURLINFO_REDIRECT_URL, &location);
    if (location) redirect = location;
  }
  std::string curl_detail = t.error_text[0] ? std::string(t.error_text) : std::string(curl_easy_strerror(code));
  release_easy(t);

  switch (t.abort) {
    case RangeTask::Abort::RangeIgnored:
      t.buffer.reset();
      switch_to_single_stream(f, f.switch_pending ? f.switch_keeper : nullptr);
      return;
    case RangeTask::Abort::Fatal:
      std::rethrow_exception(t.fatal);
    case RangeTask::Abort::Retry:
      schedule_retry(t, t.abort_reason, 0, -1);
      return;
    case RangeTask::Abort::None:
      break;
  }
  if (code != CURLE_OK) {
    if (transient_curl_error(code)) {
      schedule_retry(t, curl_detail, 0, -1);
      return;
    }
    throw DownloadError("cannot download " + where(f) + " from " + display_url(t.url) + ": " + curl_detail);
  }
  if (status >= 300 && status < 400) {
    if (redirect.empty()) {
      throw HttpStatusError("HTTP " + std::to_string(status) + " without a Location header for " + where(f), status,
                            display_url(t.url));
    }
    if (++t.redirects > kMaxRedirects) {
      throw DownloadError("too many redirects (over " + std::to_string(kMaxRedirects) + ") for " + where(f));
    }
    if (!same_origin(redirect, t.url)) t.send_credentials = false;
    t.url = redirect;
    --t.attempts;  // following a redirect is not a failed attempt
    t.ready_at = 0;
    return;
  }
  if (status >= 200 && status < 300 && t.validated) {
    if (t.range.end == kUnknownSize) {  // a stream of unknown length ended
      f.size = t.pos;
      t.range.end = t.pos;
      progress_->bytes_total.fetch_add(t.pos);
    }
    if (t.pos != t.range.end) {
      schedule_retry(t, "connection closed after " + std::to_string(t.pos - t.range.begin) + " of " +
                            std::to_string(t.range.end - t.range.begin) + " bytes",
                     0, -1);
      return;
    }
    submit_buffer(t);
    drop_transfer_ref(t);
    return;
  }
  std::string detail = t.response.header("x-error-message");
  if (detail.empty()) {
    detail = t.response.body.substr(0, 200);
    std::replace_if(detail.begin(), detail.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  }
  if (is_retryable_status(status)) {
    schedule_retry(t, "HTTP " + std::to_string(status) + (detail.empty() ? "" : ": " + detail), status,
                   server_requested_wait(t.response));
    return;
  }
  if (f.planned->signer && t.send_credentials && !t.renewed_credentials &&
      rejects_credentials(status, t.response.body)) {
    // A session token revoked or expired early: renew it and try once more.
    t.renewed_credentials = true;
    bool renewed = false;
    try {
      renewed = f.planned->signer->renew_after_rejection(t.signed_headers);
    } catch (const CredentialsError& e) {
      throw HttpStatusError("HTTP " + std::to_string(status) + " for " + where(f) + " from " + display_url(t.url) +
                                (detail.empty() ? "" : ": " + detail) + "; renewing the credentials (" +
                                f.planned->signer->describe() + ") failed: " + e.what(),
                            status, display_url(t.url));
    }
    if (renewed) {
      progress_->retries.fetch_add(1);
      t.ready_at = 0;
      return;
    }
  }
  if (!t.reset_redirect_once && t.url != f.planned->url &&
      (status == 401 || status == 403 || status == 404 || status == 410)) {
    // A redirect target (often a pre-signed URL) expired: start again from the planned URL, once.
    t.reset_redirect_once = true;
    if (f.resolved_url == t.url) f.resolved_url.clear();
    t.url = f.planned->url;
    t.send_credentials = true;
    t.redirects = 0;
    t.ready_at = 0;
    return;
  }
  if (status == 416) {
    std::string cr = t.response.header("content-range");
    throw VerificationError("size mismatch for " + where(f) + ": the server cannot serve bytes from " +
                            std::to_string(t.pos) + (cr.empty() ? "" : " (Content-Range: " + cr + ")") +
                            "; the plan expects " + std::to_string(f.size) + " bytes");
  }
  throw HttpStatusError("HTTP " + std::to_string(status) + " for " + where(f) + " from " + display_url(t.url) +
                            (detail.empty() ? "" : ": " + detail),
                        status, display_url(t.url));
}

void Engine::schedule_retry(RangeTask& t, const std::string& why, long status, double server_wait) {
  FileJob& f = *t.file;
  // Keep what arrived up to the last 4 KiB boundary and continue from there: the retry's buffers stay
  // aligned for direct I/O (at most 4 KiB arrive twice) and no buffer is held during the wait.
  if (t.buffer && t.buffer->offset % kBufferAlignment == 0) {
    uint64_t end = t.buffer->offset + t.buffer->size;
    uint64_t aligned_end = end / kBufferAlignment * kBufferAlignment;
    t.buffer->size = static_cast<size_t>(aligned_end - t.buffer->offset);
    t.pos = aligned_end;
  }
  submit_buffer(t);
  bool rate_limited = status == 429;
  progress_->retries.fetch_add(1);
  if (rate_limited) progress_->rate_limited.fetch_add(1);
  constexpr double kMaxServerWait = 300;
  double remaining = options_.total_timeout_seconds > 0 ? options_.total_timeout_seconds - now() : 1e18;
  bool out_of_attempts = t.attempts >= options_.max_attempts;
  bool wait_too_long = server_wait > kMaxServerWait || server_wait > remaining;
  if (out_of_attempts || wait_too_long) {
    std::string message = "giving up on " + where(f) + " after " + std::to_string(t.attempts) + " attempt(s): " + why;
    if (wait_too_long && !out_of_attempts) {
      message += " (the server asks to wait " + std::to_string(static_cast<long>(server_wait)) + " s)";
    }
    if (rate_limited) throw RateLimitedError(message, display_url(t.url), std::max(0.0, server_wait));
    if (status > 0) throw HttpStatusError(message, status, display_url(t.url));
    throw DownloadError(message);
  }
  RetryPolicy policy;
  policy.base_seconds = options_.retry_base_seconds;
  policy.cap_seconds = options_.retry_cap_seconds;
  double delay = server_wait >= 0 ? server_wait : backoff_seconds(policy, t.attempts);
  if (rate_limited) {
    double current = progress_->rate_limit_wait_seconds.load();
    progress_->rate_limit_wait_seconds.store(current + delay);
    // Everyone talking to that server waits, not just this range.
    double& until = origin_blocked_until_[origin_of(t.url)];
    until = std::max(until, now() + delay);
  }
  t.ready_at = now() + delay;
}

void Engine::switch_to_single_stream(FileJob& f, RangeTask* keeper) {
  f.no_ranges = true;
  f.switch_pending = false;
  f.switch_keeper = nullptr;
  f.journaled = false;
  for (auto& tp : tasks_) {
    RangeTask& t = *tp;
    if (t.file != &f || &t == keeper || t.transfer_done) continue;
    if (t.active) release_easy(t);
    t.buffer.reset();
    t.cancelled = true;
    drop_transfer_ref(t);
  }
  if (!keeper) create_tasks(f, IntervalSet{});
}

void Engine::apply_pauses() {
  if (bandwidth_paused_ && limiter_.wait_seconds(now()) <= 0) {
    bandwidth_paused_ = false;
    for (auto& tp : tasks_) {
      if (!tp->active || !tp->paused_for_bandwidth) continue;
      tp->paused_for_bandwidth = false;
      tp->paused_for_buffer = false;
      tp->paused_for_hash = false;
      curl_easy_pause(tp->easy, CURLPAUSE_CONT);  // may deliver held data (and pause again) right away
    }
  }
  if (bandwidth_paused_) return;
  bool still_waiting = false;
  for (auto& tp : tasks_) {
    RangeTask& t = *tp;
    if (!t.active) continue;
    if (t.paused_for_hash) {
      if (t.file->verifier->too_far_ahead(t.range.begin, t.pos)) {
        still_waiting = true;
        continue;
      }
      t.paused_for_hash = false;
      curl_easy_pause(t.easy, CURLPAUSE_CONT);
    }
    if (t.paused_for_buffer) {
      if (buffers_->exhausted()) {
        still_waiting = true;
        continue;
      }
      t.paused_for_buffer = false;
      curl_easy_pause(t.easy, CURLPAUSE_CONT);
    }
    if (t.paused_for_buffer || t.paused_for_hash) still_waiting = true;  // paused again while resuming
  }
  wake_on_progress_ = still_waiting;
}

// ---------------------------------------------------------------------------------------------
// Worker jobs

void Engine::wake_if_waiting() {
  if (wake_on_progress_.load(std::memory_order_relaxed)) curl_multi_wakeup(multi_);
}

void Engine::drain_writes(FileJob* f) {
  // A bounded batch, then back to the end of the queue, so other files' jobs are not starved.
  for (int batch = 0; batch < 16; ++batch) {
    std::pair<RangeTask*, std::shared_ptr<Buffer>> next;
    {
      std::lock_guard<std::mutex> lock(f->write_mu);
      if (f->write_queue.empty()) {
        f->writing = false;
        return;
      }
      next = std::move(f->write_queue.front());
      f->write_queue.pop_front();
    }
    write_one(next.first, std::move(next.second));
  }
  workers_->submit([this, f] { drain_writes(f); });
}

void Engine::write_one(RangeTask* t, std::shared_ptr<Buffer> b) {
  FileJob& f = *t->file;
  try {
    f.partial->write_at(b->data, b->size, b->offset);
    uint64_t newly = 0;
    bool start_hashing = f.verifier->record_written(b, &newly);
    f.counted.fetch_add(newly);
    progress_->bytes_done.fetch_add(newly, std::memory_order_relaxed);
    if (start_hashing) workers_->submit([this, pf = &f] { hash_job(pf); });
  } catch (...) {
    post(Event{Event::Kind::Fatal, &f, nullptr, false, "", std::current_exception()});
  }
  b.reset();
  wake_if_waiting();
  if (t->refs.fetch_sub(1) == 1) workers_->submit([this, t] { range_complete_job(t); });
}

void Engine::hash_job(FileJob* f) {
  constexpr uint64_t kHashBatch = 64ull << 20;  // then back to the queue, so other files get a turn
  auto pass = StreamingVerifier::Pass::Done;
  try {
    pass = f->verifier->hash_pass(kHashBatch);
  } catch (...) {
    post(Event{Event::Kind::Fatal, f, nullptr, false, "", std::current_exception()});
  }
  wake_if_waiting();
  if (pass == StreamingVerifier::Pass::Continue) workers_->submit([this, f] { hash_job(f); });
  if (pass == StreamingVerifier::Pass::FinishDue) workers_->submit([this, f] { finish_job(f); });
}

void Engine::range_complete_job(RangeTask* t) {
  FileJob& f = *t->file;
  try {
    if (!t->cancelled && !t->interrupted && f.journaled && f.journal) {
      std::lock_guard<std::mutex> lock(f.journal_mu);
      f.partial->sync_data();  // data first, then the record that vouches for it
      f.journal->append(t->range.begin, t->range.end);
    }
  } catch (...) {
    post(Event{Event::Kind::Fatal, &f, nullptr, false, "", std::current_exception()});
  }
  post(Event{Event::Kind::RangeDone, &f, t});
}

void Engine::finish_job(FileJob* f) {
  try {
    auto finished = f->verifier->try_finish(f->size);
    if (!finished) return;  // a hash pass is running or queued; it schedules this again when done
    auto& verdict = *finished;
    if (!verdict.complete) {
      post(Event{Event::Kind::Corrupt, f, nullptr, false, "incomplete content"});
      return;
    }
    if (!verdict.matches && !remaining_candidates(f->expected).part_sizes.empty()) {
      // The streaming hash assumed the likeliest part size; the others are tried from the page cache.
      auto other = hash_file(f->partial->path(), remaining_candidates(f->expected), cancel_);
      if (other.matches) {
        verdict.matches = true;
        verdict.hex = other.hex;
      }
    }
    if (f->expected.kind != DigestKind::None && !verdict.matches) {
      post(Event{Event::Kind::Corrupt, f, nullptr, false,
                 "content does not match its " + std::string(digest_kind_name(f->expected.kind)) +
                     " digest: expected " + stamp_digest_text(f->expected) + ", got " + verdict.hex});
      return;
    }
    if (f->planned->size == kUnknownSize) f->partial->set_length(f->size);
    f->partial->commit();
    ResumeJournal::remove(journal_path_for(f->final_path));
    write_stamp(root_, f->planned->relative_path, f->expected);
    post(Event{Event::Kind::Finished, f, nullptr, true, verdict.hex});
  } catch (...) {
    post(Event{Event::Kind::Fatal, f, nullptr, false, "", std::current_exception()});
  }
}

// ---------------------------------------------------------------------------------------------
// Events and the main loop

void Engine::maybe_finish(FileJob& f) {
  if (f.state != FileState::Downloading || f.tasks_alive > 0 || stopping_) return;
  f.state = FileState::Finishing;
  workers_->submit([this, pf = &f] { finish_job(pf); });
}

void Engine::restart_file(FileJob& f, const std::string& why) {
  ++f.file_attempts;
  f.partial->discard();
  ResumeJournal::remove(journal_path_for(f.final_path));
  f.journal.reset();
  progress_->bytes_done.fetch_sub(f.counted.exchange(0));
  if (f.file_attempts >= kMaxFileAttempts) {
    throw VerificationError(where(f) + ": " + why + " (after " + std::to_string(f.file_attempts) +
                            " downloads; the partial file was deleted)");
  }
  progress_->retries.fetch_add(1);
  f.state = FileState::Downloading;
  f.partial = std::make_unique<PartialFile>(f.final_path, f.size, /*keep_existing=*/false);
  f.verifier = std::make_unique<StreamingVerifier>(*f.partial, f.expected, f.size, &retain_budget_);
  create_tasks(f, IntervalSet{});
}

void Engine::file_done(FileJob& f) {
  f.state = FileState::Done;
  ++files_done_;
  progress_->files_done.fetch_add(1);
}

void Engine::process_events() {
  std::vector<Event> events;
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    events.swap(events_);
  }
  for (auto& e : events) {
    switch (e.kind) {
      case Event::Kind::Fatal:
        std::rethrow_exception(e.error);
      case Event::Kind::RangeDone: {
        FileJob& f = *e.file;
        if (f.switch_keeper == e.task) f.switch_keeper = nullptr;
        tasks_.remove_if([&](const std::unique_ptr<RangeTask>& t) { return t.get() == e.task; });
        --f.tasks_alive;
        maybe_finish(f);
        break;
      }
      case Event::Kind::Finished: {
        FileJob& f = *e.file;
        f.partial.reset();
        f.journal.reset();
        f.result.size = f.size;
        f.result.downloaded = true;
        f.result.verified = f.expected.kind != DigestKind::None;
        f.result.digest_hex = e.text;
        if (f.expected.kind == DigestKind::None) f.result.note = "no digest in the plan; only the size was checked";
        else if (f.replacing) f.result.note = "replaced an existing file that did not match";
        if (f.file_attempts > 0) {
          f.result.note += std::string(f.result.note.empty() ? "" : "; ") + "re-fetched " +
                           std::to_string(f.file_attempts) + " time(s) after a digest mismatch";
        }
        file_done(f);
        break;
      }
      case Event::Kind::Corrupt:
        restart_file(*e.file, e.text);
        break;
      case Event::Kind::Checked: {
        FileJob& f = *e.file;
        if (e.ok) {
          f.result.size = f.size == kUnknownSize ? std::filesystem::file_size(f.final_path) : f.size;
          f.result.verified = true;
          f.result.digest_hex = e.text;
          f.result.note = "already present; re-hashed and matched";
          f.counted = f.result.size;
          progress_->bytes_done.fetch_add(f.result.size);
          file_done(f);
        } else {
          f.replacing = true;
          start_download(f);
        }
        break;
      }
    }
  }
}

void Engine::update_rate() {
  double t = now();
  if (t - rate_time_ < 0.25) return;
  uint64_t fetched = progress_->bytes_fetched.load();
  double instant = static_cast<double>(fetched - rate_bytes_) / (t - rate_time_);
  rate_ = rate_ == 0 ? instant : 0.7 * rate_ + 0.3 * instant;
  progress_->bytes_per_second.store(rate_);
  // A file starts as one stream and gets parallel ranges only while connections are individually
  // slow: more connections help against per-connection limits and long round trips, but on a fast
  // link they only add CPU (server and client) and out-of-order data that must be read back from
  // disk to be hashed. A window in which transfers waited for the disk or the hash says nothing
  // about the link (the slowness was ours), so it does not count.
  // Connections that are slow only because this machine is busy (CPU shared with other work) look
  // like a throttled link too; an increase is therefore kept only if the total rate grew with it.
  double per_connection = active_ > 0 ? instant / active_ : 0;
  if (ramp_from_ > 0) {
    // Judged over two windows: new connections need a moment, and ranges end at random times.
    ramp_rate_sum_ += instant;
    if (++ramp_windows_ >= 2) {
      if (ramp_rate_sum_ / ramp_windows_ < ramp_base_rate_ * 1.5) {
        per_file_limit_ = ramp_from_;
        ramp_frozen_until_ = t + 5.0;
      }
      ramp_from_ = 0;
    }
  } else if (per_file_limit_hit_ && !paused_locally_ && active_ > 0 && active_ == window_active_ &&
             per_connection < kFastConnection && t >= ramp_frozen_until_) {
    // Only a steady window (the same transfers throughout, so connection set-up and first requests
    // do not count) gives the base rate the increase is judged against.
    // Grow in proportion to how slow connections are: a throttled link gets its ranges at once.
    double factor = std::clamp(kFastConnection / std::max(per_connection, 1.0), 2.0, 64.0);
    int grown = static_cast<int>(std::min<double>(options_.connections_per_file, std::ceil(per_file_limit_ * factor)));
    if (grown > per_file_limit_) {
      ramp_from_ = per_file_limit_;
      ramp_base_rate_ = instant;
      ramp_rate_sum_ = 0;
      ramp_windows_ = 0;
      per_file_limit_ = grown;
    }
  }
  window_active_ = active_;
  per_file_limit_hit_ = false;
  paused_locally_ = false;
  rate_bytes_ = fetched;
  rate_time_ = t;
}

void Engine::loop() {
  while (files_done_ < files_.size()) {
    process_events();
    if (cancel_ && cancel_->is_cancelled()) {
      throw CancelledError("download into " + root_.string() + " cancelled after " + std::to_string(files_done_) +
                           " of " + std::to_string(files_.size()) + " files; partial files are kept for resuming");
    }
    if (options_.total_timeout_seconds > 0 && now() > options_.total_timeout_seconds) {
      throw DownloadError("download into " + root_.string() + " did not finish within " +
                          std::to_string(options_.total_timeout_seconds) + " s (" + std::to_string(files_done_) +
                          " of " + std::to_string(files_.size()) + " files done)");
    }
    start_ready_tasks();
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi_, &running);
    if (mc != CURLM_OK) throw DownloadError(std::string("libcurl multi failure: ") + curl_multi_strerror(mc));
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      RangeTask* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      finish_transfer(*t, msg->data.result);
    }
    for (auto& f : files_) {
      if (f->switch_pending) switch_to_single_stream(*f, f->switch_keeper);
    }
    apply_pauses();
    start_ready_tasks();  // what finished just now frees connections: start more before sleeping
    update_rate();

    long timeout = kPollMillis;
    long curl_timeout = -1;
    curl_multi_timeout(multi_, &curl_timeout);
    if (curl_timeout >= 0) timeout = std::min(timeout, curl_timeout);
    double t_now = now();
    if (next_wake_ > 0) timeout = std::min(timeout, static_cast<long>((next_wake_ - t_now) * 1000) + 1);
    if (bandwidth_paused_) timeout = std::min(timeout, static_cast<long>(limiter_.wait_seconds(t_now) * 1000) + 1);
    if (timeout > 0) curl_multi_poll(multi_, nullptr, 0, static_cast<int>(timeout), nullptr);
  }
}

// Stops every transfer, lets queued writes land, records what is on disk in the resume journals.
void Engine::shutdown(std::exception_ptr) {
  stopping_ = true;
  for (auto& tp : tasks_) {
    RangeTask& t = *tp;
    if (t.transfer_done) continue;
    if (t.active) release_easy(t);
    submit_buffer(t);
    t.interrupted = true;
    drop_transfer_ref(t);
  }
  if (workers_) workers_->wait_idle();
  std::vector<Event> events;
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    events.swap(events_);
  }
  for (auto& e : events) {
    if (e.kind == Event::Kind::Finished) {
      e.file->partial.reset();
      file_done(*e.file);
    } else if (e.kind == Event::Kind::Corrupt) {
      e.file->partial->discard();
      ResumeJournal::remove(journal_path_for(e.file->final_path));
      e.file->journal.reset();
      e.file->state = FileState::Pending;
    }
  }
  for (auto& fp : files_) {
    FileJob& f = *fp;
    if (f.state != FileState::Downloading || !f.partial || !f.verifier || f.size == kUnknownSize || f.size == 0) {
      continue;
    }
    try {
      IntervalSet written = f.verifier->written();
      if (written.empty()) continue;
      f.partial->sync_data();
      if (!f.journal) {
        f.journal = std::make_unique<ResumeJournal>(journal_path_for(f.final_path), f.identity, f.size, true);
      }
      for (const auto& r : written.ranges()) f.journal->append(r.begin, std::min(r.end, f.size));
    } catch (...) {
      // Best effort: without a journal the next run simply starts this file again.
    }
  }
}

DownloadReport Engine::run() {
  validate_options();
  validate_plan_paths(plan_, root_);  // before anything is written
  prepare_files();
  std::error_code ec;
  std::filesystem::create_directories(root_, ec);
  if (ec) throw DownloadError("cannot create destination " + root_.string() + ": " + ec.message());
  RootLock lock(root_, cancel_, options_.total_timeout_seconds);
  ensure_disk_space(root_, bytes_still_needed(plan_, root_), plan_.files.size());

  curl_global_once();
  multi_ = curl_multi_init();
  if (!multi_) throw DownloadError("libcurl could not create a multi handle");
  curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(options_.max_connections));
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(options_.max_connections * 2));
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
  // Writing, hashing and syncing run beside the network thread; a little more than one per core,
  // since writers and syncs block in the kernel.
  int threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency() + 1, 3u, 5u));
  workers_ = std::make_unique<WorkerPool>(threads);
  per_file_limit_ = 1;
  // Every active transfer may hold one buffer it is filling; kept buffers get at most the rest but a
  // few, so a transfer can always get its next buffer once written ones are released.
  retain_budget_ = std::max<long>(0, static_cast<long>(buffers_->capacity()) - options_.max_connections - 4);

  try {
    for (auto& f : files_) classify(*f);
    loop();
  } catch (...) {
    auto error = std::current_exception();
    shutdown(error);
    std::rethrow_exception(error);
  }
  workers_->wait_idle();

  DownloadReport report;
  for (auto& f : files_) report.files.push_back(f->result);
  report.bytes_fetched = progress_->bytes_fetched.load();
  report.seconds = now();
  return report;
}

}  // namespace

DownloadReport run_download(const DownloadPlan& plan, const std::filesystem::path& root,
                            const DownloadOptions& options, CancelToken* cancel, DownloadProgress* progress) {
  Engine engine(plan, root, options, cancel, progress);
  return engine.run();
}

}  // namespace modelagent
