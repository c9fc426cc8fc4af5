// The metrics registry (prometheus-cpp core) and the procfs reader behind the process_* gauges.

#include "modelagent/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "modelagent/version.hpp"

namespace modelagent {

namespace {

constexpr std::array<double, 17> kDownloadBuckets = {1,   2,   5,    10,   20,   30,   60,    120,  300,
                                                     600, 1200, 1800, 3600, 7200, 10800, 14400, 21600};
constexpr std::array<double, 16> kVerificationBuckets = {0.1, 0.25, 0.5, 1,   2,   5,    10,   20,
                                                         30,  60,   120, 300, 600, 1200, 1800, 3600};
constexpr std::array<double, 13> kRateLimitBuckets = {1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600};
constexpr std::array<double, 23> kPhaseBuckets = {0.01, 0.025, 0.05, 0.1,  0.25, 0.5,  1,    2,
                                                  5,    10,    20,   30,   60,   120,  300,  600,
                                                  1200, 1800,  3600, 7200, 10800, 14400, 21600};

constexpr std::array<std::string_view, 17> kFailureReasons = {
    "rate_limited",        "unauthorized", "gated",         "not_found",
    "http_error",          "download",     "verification",  "disk_space",
    "unsafe_path",         "invalid_storage_uri",           "unsupported_storage",
    "invalid_destination", "credentials",  "model_config",  "kubernetes",
    "cancelled",           "other",
};

constexpr std::array<std::string_view, 4> kPhaseNames = {"queue", "transfer", "verify", "parse"};

std::string join(std::span<const std::string_view> items) {
  std::string out;
  for (auto item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

void require_amount(double value, std::string_view metric, std::string_view what) {
  if (!std::isfinite(value) || value < 0) {
    std::ostringstream message;
    message << metric << ": " << what << " must be a finite non-negative number, got " << value;
    throw std::invalid_argument(message.str());
  }
}

std::string_view exported_kind(std::string_view kind) {
  if (kind == "BaseModel" || kind == "ClusterBaseModel") return kind;
  return "unknown";
}

// A model as it appears in labels (see MetricsModel); the key of the per-model series table.
struct ModelLabels {
  std::string kind;
  std::string namespace_name;
  std::string name;
  auto operator<=>(const ModelLabels&) const = default;

  static ModelLabels of(const MetricsModel& model) {
    ModelLabels labels{std::string(exported_kind(model.kind)), std::string(model.namespace_name),
                       std::string(model.name)};
    if (labels.kind == "ClusterBaseModel") labels.namespace_name.clear();
    return labels;
  }
  prometheus::Labels labels() const { return {{"model_type", kind}, {"namespace", namespace_name}, {"name", name}}; }
};

// The series of one model that exist so far (created on first use, as OME does).
struct ModelSeries {
  prometheus::Counter* succeeded = nullptr;
  prometheus::Counter* failed = nullptr;
  prometheus::Counter* verified_ok = nullptr;
  prometheus::Counter* verified_failed = nullptr;
  prometheus::Counter* md5_failed = nullptr;
  prometheus::Counter* rate_limited = nullptr;
  prometheus::Counter* bytes = nullptr;
  prometheus::Histogram* duration = nullptr;
  prometheus::Histogram* rate_limit_wait = nullptr;
};

prometheus::Histogram::BucketBoundaries boundaries(std::span<const double> buckets) {
  return {buckets.begin(), buckets.end()};
}

// ---- procfs ----

std::optional<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

std::optional<double> to_number(std::string_view token) {
  double value = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (ec != std::errc() || end != token.data() + token.size()) return std::nullopt;
  return value;
}

std::vector<std::string_view> split_whitespace(std::string_view text) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) tokens.push_back(text.substr(start, i - start));
  }
  return tokens;
}

std::optional<double> boot_time(const std::filesystem::path& proc_root) {
  auto text = read_text(proc_root / "stat");
  if (!text) return std::nullopt;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    auto tokens = split_whitespace(line);
    if (tokens.size() == 2 && tokens[0] == "btime") return to_number(tokens[1]);
  }
  return std::nullopt;
}

std::optional<double> soft_open_files_limit(const std::filesystem::path& limits_path) {
  auto text = read_text(limits_path);
  if (!text) return std::nullopt;
  constexpr std::string_view kPrefix = "Max open files";
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    if (!std::string_view(line).starts_with(kPrefix)) continue;
    auto tokens = split_whitespace(std::string_view(line).substr(kPrefix.size()));
    if (tokens.empty()) return std::nullopt;
    return to_number(tokens[0]);  // "unlimited" gives nothing
  }
  return std::nullopt;
}

std::optional<double> count_entries(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return std::nullopt;
  double count = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return std::nullopt;
    ++count;
  }
  if (ec) return std::nullopt;
  return count;
}

prometheus::MetricFamily single_value_family(std::string name, std::string help, prometheus::MetricType type,
                                             double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

std::span<const double> download_duration_buckets() { return kDownloadBuckets; }
std::span<const double> verification_duration_buckets() { return kVerificationBuckets; }
std::span<const double> rate_limit_wait_buckets() { return kRateLimitBuckets; }
std::span<const double> phase_duration_buckets() { return kPhaseBuckets; }

DownloadPhase parse_download_phase(std::string_view phase) {
  for (size_t i = 0; i < kPhaseNames.size(); ++i) {
    if (kPhaseNames[i] == phase) return static_cast<DownloadPhase>(i);
  }
  throw std::invalid_argument("model_agent_phase_duration_seconds: unknown phase \"" + std::string(phase) +
                              "\" (expected one of: " + join(kPhaseNames) + ")");
}

std::string_view download_phase_name(DownloadPhase phase) { return kPhaseNames.at(static_cast<size_t>(phase)); }

std::span<const std::string_view> failure_reasons() { return kFailureReasons; }

bool is_failure_reason(std::string_view reason) {
  for (auto known : kFailureReasons) {
    if (known == reason) return true;
  }
  return false;
}

ProcessStats read_process_stats(const std::filesystem::path& proc_root, std::string_view pid) {
  ProcessStats stats;
  const auto process_dir = proc_root / std::string(pid);
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  const long page_size = sysconf(_SC_PAGESIZE);

  if (auto stat = read_text(process_dir / "stat")) {
    // "pid (comm) state ppid ..." where comm may itself contain spaces and parentheses: the fields of
    // interest are counted from the last ')'.
    auto close = stat->rfind(')');
    if (close != std::string::npos) {
      auto fields = split_whitespace(std::string_view(*stat).substr(close + 1));
      auto field = [&](size_t number) -> std::optional<double> {  // proc(5) numbering; field 3 is fields[0]
        if (number < 3 || number - 3 >= fields.size()) return std::nullopt;
        return to_number(fields[number - 3]);
      };
      auto utime = field(14);
      auto stime = field(15);
      if (utime && stime && ticks_per_second > 0) stats.cpu_seconds = (*utime + *stime) / ticks_per_second;
      stats.threads = field(20);
      auto start_ticks = field(22);
      auto booted = boot_time(proc_root);
      if (start_ticks && booted && ticks_per_second > 0) {
        stats.start_time_seconds = *booted + *start_ticks / ticks_per_second;
      }
      stats.virtual_memory_bytes = field(23);
      if (auto rss_pages = field(24); rss_pages && page_size > 0) stats.resident_memory_bytes = *rss_pages * page_size;
    }
  }
  stats.open_fds = count_entries(process_dir / "fd");
  stats.max_fds = soft_open_files_limit(process_dir / "limits");
  return stats;
}

struct Metrics::Impl {
  prometheus::Registry registry;
  std::filesystem::path proc_root;

  prometheus::Family<prometheus::Counter>& succeeded;
  prometheus::Family<prometheus::Counter>& failed;
  prometheus::Family<prometheus::Counter>& failed_by_reason;
  prometheus::Family<prometheus::Counter>& verifications;
  prometheus::Family<prometheus::Counter>& md5_failed;
  prometheus::Family<prometheus::Counter>& rate_limited;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Family<prometheus::Histogram>& duration;
  prometheus::Family<prometheus::Histogram>& verification_duration;
  prometheus::Family<prometheus::Histogram>& rate_limit_wait;
  prometheus::Family<prometheus::Histogram>& phase_duration;
  prometheus::Family<prometheus::Gauge>& in_progress_family;
  prometheus::Family<prometheus::Gauge>& build_info;

  prometheus::Histogram& verification_histogram;
  prometheus::Gauge& in_progress;
  std::array<prometheus::Histogram*, kPhaseNames.size()> phase_histograms{};

  // Guards `models` and the per-model series it points to: a series is only used or removed under it.
  std::mutex mutex;
  std::map<ModelLabels, ModelSeries> models;

  Impl(const std::string& version, std::filesystem::path proc)
      : proc_root(std::move(proc)),
        succeeded(prometheus::BuildCounter()
                      .Name("model_agent_downloads_success_total")
                      .Help("Model downloads that succeeded")
                      .Register(registry)),
        failed(prometheus::BuildCounter()
                   .Name("model_agent_downloads_failed_total")
                   .Help("Model downloads that failed")
                   .Register(registry)),
        failed_by_reason(prometheus::BuildCounter()
                             .Name("model_agent_download_failures_by_reason_total")
                             .Help("Model download failures by error class, over all models")
                             .Register(registry)),
        verifications(prometheus::BuildCounter()
                          .Name("model_agent_verifications_total")
                          .Help("Model verification passes by result")
                          .Register(registry)),
        md5_failed(prometheus::BuildCounter()
                       .Name("model_agent_md5_checksum_failed_total")
                       .Help("Verification passes in which at least one file failed its checksum")
                       .Register(registry)),
        rate_limited(prometheus::BuildCounter()
                         .Name("model_agent_rate_limit_total")
                         .Help("Rate-limit responses (HTTP 429) met while downloading")
                         .Register(registry)),
        bytes(prometheus::BuildCounter()
                  .Name("model_agent_download_bytes_total")
                  .Help("Bytes downloaded")
                  .Register(registry)),
        duration(prometheus::BuildHistogram()
                     .Name("model_agent_download_duration_seconds")
                     .Help("Duration of successful model downloads")
                     .Register(registry)),
        verification_duration(prometheus::BuildHistogram()
                                  .Name("model_agent_verification_duration_seconds")
                                  .Help("Duration of model verification passes")
                                  .Register(registry)),
        rate_limit_wait(prometheus::BuildHistogram()
                            .Name("model_agent_rate_limit_wait_seconds")
                            .Help("Waits requested by rate-limit responses")
                            .Register(registry)),
        phase_duration(prometheus::BuildHistogram()
                           .Name("model_agent_phase_duration_seconds")
                           .Help("Duration of download task phases (queue, transfer, verify, parse), over all models")
                           .Register(registry)),
        in_progress_family(prometheus::BuildGauge()
                               .Name("model_agent_downloads_in_progress")
                               .Help("Model downloads currently running")
                               .Register(registry)),
        build_info(prometheus::BuildGauge()
                       .Name("model_agent_build_info")
                       .Help("Always 1; the version label is the agent's version")
                       .Register(registry)),
        verification_histogram(verification_duration.Add({}, boundaries(kVerificationBuckets))),
        in_progress(in_progress_family.Add({})) {
    build_info.Add({{"version", version}}).Set(1);
    for (size_t i = 0; i < kPhaseNames.size(); ++i) {
      phase_histograms[i] = &phase_duration.Add({{"phase", std::string(kPhaseNames[i])}}, boundaries(kPhaseBuckets));
    }
  }

  static prometheus::Counter& counter(prometheus::Family<prometheus::Counter>& family, prometheus::Counter*& slot,
                                      const ModelLabels& model, prometheus::Labels extra = {}) {
    if (slot == nullptr) {
      auto labels = model.labels();
      labels.merge(extra);
      slot = &family.Add(labels);
    }
    return *slot;
  }

  static prometheus::Histogram& histogram(prometheus::Family<prometheus::Histogram>& family,
                                          prometheus::Histogram*& slot, const ModelLabels& model,
                                          std::span<const double> buckets) {
    if (slot == nullptr) slot = &family.Add(model.labels(), boundaries(buckets));
    return *slot;
  }

  template <typename Record>
  void with_model(const MetricsModel& model, Record record) {
    auto labels = ModelLabels::of(model);
    std::lock_guard lock(mutex);
    record(labels, models[labels]);
  }

  std::vector<prometheus::MetricFamily> process_families() const {
    using prometheus::MetricType;
    auto stats = read_process_stats(proc_root);
    std::vector<prometheus::MetricFamily> families;
    auto add = [&](const std::optional<double>& value, const char* name, const char* help, MetricType type) {
      if (value) families.push_back(single_value_family(name, help, type, *value));
    };
    add(stats.cpu_seconds, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds",
        MetricType::Counter);
    add(stats.resident_memory_bytes, "process_resident_memory_bytes", "Resident memory size in bytes",
        MetricType::Gauge);
    add(stats.virtual_memory_bytes, "process_virtual_memory_bytes", "Virtual memory size in bytes",
        MetricType::Gauge);
    add(stats.start_time_seconds, "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds", MetricType::Gauge);
    add(stats.open_fds, "process_open_fds", "Number of open file descriptors", MetricType::Gauge);
    add(stats.max_fds, "process_max_fds", "Maximum number of open file descriptors (soft limit)", MetricType::Gauge);
    add(stats.threads, "process_threads", "Number of OS threads in the process", MetricType::Gauge);
    return families;
  }
};

Metrics::Metrics(std::string version, std::filesystem::path proc_root)
    : impl_(std::make_unique<Impl>(version, std::move(proc_root))) {}

Metrics::Metrics() : Metrics(kVersion) {}

Metrics::~Metrics() = default;

void Metrics::download_succeeded(const MetricsModel& model, double seconds) {
  require_amount(seconds, "model_agent_download_duration_seconds", "seconds");
  impl_->with_model(model, [&](const ModelLabels& labels, ModelSeries& series) {
    Impl::counter(impl_->succeeded, series.succeeded, labels).Increment();
    Impl::histogram(impl_->duration, series.duration, labels, kDownloadBuckets).Observe(seconds);
  });
}

void Metrics::download_failed(const MetricsModel& model, std::string_view reason) {
  if (!is_failure_reason(reason)) {
    throw std::invalid_argument("model_agent_download_failures_by_reason_total: unknown reason \"" +
                                std::string(reason) + "\" (expected one of: " + join(kFailureReasons) + ")");
  }
  impl_->with_model(model, [&](const ModelLabels& labels, ModelSeries& series) {
    Impl::counter(impl_->failed, series.failed, labels).Increment();
  });
  impl_->failed_by_reason.Add({{"reason", std::string(reason)}}).Increment();
}

void Metrics::verification(const MetricsModel& model, bool ok, double seconds) {
  require_amount(seconds, "model_agent_verification_duration_seconds", "seconds");
  impl_->with_model(model, [&](const ModelLabels& labels, ModelSeries& series) {
    if (ok) {
      Impl::counter(impl_->verifications, series.verified_ok, labels, {{"result", "success"}}).Increment();
    } else {
      Impl::counter(impl_->verifications, series.verified_failed, labels, {{"result", "failure"}}).Increment();
    }
  });
  impl_->verification_histogram.Observe(seconds);
}

void Metrics::md5_failed(const MetricsModel& model) {
  impl_->with_model(model, [&](const ModelLabels& labels, ModelSeries& series) {
    Impl::counter(impl_->md5_failed, series.md5_failed, labels).Increment();
  });
}

void Metrics::rate_limited(const MetricsModel& model, double wait_seconds) {
  require_amount(wait_seconds, "model_agent_rate_limit_wait_seconds", "wait_seconds");
  impl_->with_model(model, [&](const ModelLabels& labels, ModelSeries& series) {
    Impl::counter(impl_->rate_limited, series.rate_limited, labels).Increment();
    Impl::histogram(impl_->rate_limit_wait, series.rate_limit_wait, labels, kRateLimitBuckets).Observe(wait_seconds);
  });
}

void Metrics::bytes_downloaded(const MetricsModel& model, std::uint64_t n) {
  impl_->with_model(model, [&](const ModelLabels& labels, ModelSeries& series) {
    Impl::counter(impl_->bytes, series.bytes, labels).Increment(static_cast<double>(n));
  });
}

void Metrics::phase(DownloadPhase phase, double seconds) {
  require_amount(seconds, "model_agent_phase_duration_seconds", "seconds");
  impl_->phase_histograms.at(static_cast<size_t>(phase))->Observe(seconds);
}

void Metrics::set_in_progress(std::int64_t downloads) {
  if (downloads < 0) {
    throw std::invalid_argument("model_agent_downloads_in_progress: downloads must be non-negative, got " +
                                std::to_string(downloads));
  }
  impl_->in_progress.Set(static_cast<double>(downloads));
}

void Metrics::forget_model(const MetricsModel& model) {
  std::lock_guard lock(impl_->mutex);
  auto found = impl_->models.find(ModelLabels::of(model));
  if (found == impl_->models.end()) return;
  auto& s = found->second;
  for (auto [family, series] : {std::pair{&impl_->succeeded, s.succeeded}, std::pair{&impl_->failed, s.failed},
                                std::pair{&impl_->verifications, s.verified_ok},
                                std::pair{&impl_->verifications, s.verified_failed},
                                std::pair{&impl_->md5_failed, s.md5_failed},
                                std::pair{&impl_->rate_limited, s.rate_limited}, std::pair{&impl_->bytes, s.bytes}}) {
    if (series != nullptr) family->Remove(series);
  }
  if (s.duration != nullptr) impl_->duration.Remove(s.duration);
  if (s.rate_limit_wait != nullptr) impl_->rate_limit_wait.Remove(s.rate_limit_wait);
  impl_->models.erase(found);
}

std::string Metrics::exposition() const {
  auto families = impl_->registry.Collect();
  auto process = impl_->process_families();
  families.insert(families.end(), std::make_move_iterator(process.begin()), std::make_move_iterator(process.end()));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace modelagent
