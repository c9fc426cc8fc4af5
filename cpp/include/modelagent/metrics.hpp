#pragma once
// The agent's Prometheus metrics: one prometheus-cpp registry holding every model_agent_* family (the OME
// v0.1.3 names, types and labels, with buckets that reach hours), per-phase durations, failures by reason,
// build info, and process_* gauges read from /proc at scrape time. Every method is thread-safe.
// Families, labels and bucket boundaries are documented in docs/metrics.md.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace modelagent {

// Bucket upper bounds (seconds) of the histograms; +Inf is implicit.
std::span<const double> download_duration_buckets();      // 1 s ... 6 h
std::span<const double> verification_duration_buckets();  // 0.1 s ... 1 h
std::span<const double> rate_limit_wait_buckets();        // 1 s ... 1 h
std::span<const double> phase_duration_buckets();         // 0.01 s ... 6 h

// The phases of a download task timed by model_agent_phase_duration_seconds{phase}.
enum class DownloadPhase { Queue, Transfer, Verify, Parse };
// "queue" | "transfer" | "verify" | "parse"; throws std::invalid_argument naming the valid phases.
DownloadPhase parse_download_phase(std::string_view phase);
std::string_view download_phase_name(DownloadPhase phase);

// The closed set of values of model_agent_download_failures_by_reason_total{reason} (bounded cardinality).
std::span<const std::string_view> failure_reasons();
bool is_failure_reason(std::string_view reason);

// A model's identity as exported in the model_type, namespace and name labels. model_type is "BaseModel" or
// "ClusterBaseModel"; any other kind is exported as "unknown". A ClusterBaseModel's namespace is always
// exported as "" (cluster-scoped), whatever is passed.
struct MetricsModel {
  std::string_view kind;
  std::string_view namespace_name;
  std::string_view name;
};

// Process statistics as read from procfs; a field is empty when its source could not be read or parsed.
struct ProcessStats {
  std::optional<double> cpu_seconds;            // utime + stime
  std::optional<double> resident_memory_bytes;
  std::optional<double> virtual_memory_bytes;
  std::optional<double> start_time_seconds;     // since the Unix epoch
  std::optional<double> open_fds;
  std::optional<double> max_fds;                // soft limit; empty when unlimited
  std::optional<double> threads;
};
// Reads <proc_root>/<pid>/{stat,fd,limits} and <proc_root>/stat (boot time). Never throws.
ProcessStats read_process_stats(const std::filesystem::path& proc_root = "/proc", std::string_view pid = "self");

class Metrics {
 public:
  // `version` is exported as model_agent_build_info{version}; process_* gauges are read from `proc_root`.
  explicit Metrics(std::string version, std::filesystem::path proc_root = "/proc");
  Metrics();  // the library's own version, /proc
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Durations and counts must be finite and non-negative (std::invalid_argument naming the metric otherwise).
  void download_succeeded(const MetricsModel& model, double seconds);
  // Counts in model_agent_downloads_failed_total (per model) and in ..._failures_by_reason_total{reason};
  // reason must be one of failure_reasons() (std::invalid_argument listing them otherwise).
  void download_failed(const MetricsModel& model, std::string_view reason);
  // One verification pass: model_agent_verifications_total{result="success"|"failure"} and the (unlabelled)
  // verification duration histogram.
  void verification(const MetricsModel& model, bool ok, double seconds);
  void md5_failed(const MetricsModel& model);
  // A rate-limit hit: model_agent_rate_limit_total and the wait observed in model_agent_rate_limit_wait_seconds.
  void rate_limited(const MetricsModel& model, double wait_seconds);
  void bytes_downloaded(const MetricsModel& model, std::uint64_t bytes);
  void phase(DownloadPhase phase, double seconds);
  void set_in_progress(std::int64_t downloads);
  // Removes every series labelled with this model (after the model is deleted). Unknown models are ignored.
  void forget_model(const MetricsModel& model);

  // The whole registry plus process_* gauges in the Prometheus text format 0.0.4.
  std::string exposition() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelagent
