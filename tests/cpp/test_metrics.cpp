// The metrics registry: OME's model_agent_* families (names, types, labels), buckets that reach hours,
// counting, forgetting a model, input checks, thread safety, process_* gauges from procfs, and an exposition
// that a strict parser of the text format 0.0.4 accepts.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "modelagent/metrics.hpp"

using namespace modelagent;
namespace fs = std::filesystem;

namespace {

// ---- a strict parser of the Prometheus text exposition format 0.0.4 ----

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram|...
  std::map<std::string, std::string> help;
  std::vector<Sample> samples;

  std::vector<Sample> find(const std::string& name, const std::map<std::string, std::string>& match = {}) const {
    std::vector<Sample> found;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) ok = false;
      }
      if (ok) found.push_back(s);
    }
    return found;
  }
  // The value of the one sample with these labels; fails the test when there is not exactly one.
  double value(const std::string& name, const std::map<std::string, std::string>& match = {}) const {
    auto found = find(name, match);
    if (found.size() != 1) {
      ADD_FAILURE() << "expected exactly one sample of " << name << ", found " << found.size();
      return std::nan("");
    }
    return found[0].value;
  }
  bool has_family(const std::string& name) const {
    for (const auto& s : samples) {
      if (family_of(s.name) == name) return true;
    }
    return false;
  }
  std::string family_of(const std::string& sample_name) const {
    if (types.count(sample_name)) return sample_name;
    for (std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (sample_name.size() > suffix.size() && sample_name.ends_with(suffix)) {
        auto base = sample_name.substr(0, sample_name.size() - suffix.size());
        auto it = types.find(base);
        if (it != types.end() && it->second == "histogram") return base;
      }
    }
    return "";
  }
};

bool is_name_char(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}

double parse_value(const std::string& token) {
  if (token == "+Inf") return INFINITY;
  if (token == "-Inf") return -INFINITY;
  if (token == "NaN") return NAN;
  size_t used = 0;
  double value = std::stod(token, &used);
  if (used != token.size()) throw std::runtime_error("bad sample value: " + token);
  return value;
}

Exposition parse_exposition(const std::string& text) {
  if (!text.empty() && text.back() != '\n') throw std::runtime_error("exposition does not end with a newline");
  Exposition out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      auto rest = line.substr(7);
      auto space = rest.find(' ');
      if (space == std::string::npos) throw std::runtime_error("malformed comment: " + line);
      auto name = rest.substr(0, space);
      auto text_part = rest.substr(space + 1);
      if (line[2] == 'T') {
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
        if (!kTypes.count(text_part)) throw std::runtime_error("unknown type: " + line);
        if (out.types.count(name)) throw std::runtime_error("TYPE given twice: " + name);
        out.types[name] = text_part;
      } else {
        out.help[name] = text_part;
      }
      continue;
    }
    if (line[0] == '#') continue;
    Sample sample;
    size_t i = 0;
    while (i < line.size() && is_name_char(line[i], i == 0)) ++i;
    if (i == 0) throw std::runtime_error("sample without a name: " + line);
    sample.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t start = i;
        while (i < line.size() && is_name_char(line[i], i == start)) ++i;
        auto key = line.substr(start, i - start);
        if (key.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          throw std::runtime_error("malformed label in: " + line);
        }
        i += 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (++i >= line.size()) throw std::runtime_error("dangling escape in: " + line);
            if (line[i] == 'n') {
              value += '\n';
            } else if (line[i] == '\\' || line[i] == '"') {
              value += line[i];
            } else {
              throw std::runtime_error("bad escape in: " + line);
            }
          } else {
            value += line[i];
          }
          ++i;
        }
        if (i >= line.size()) throw std::runtime_error("unterminated label value in: " + line);
        ++i;
        if (sample.labels.count(key)) throw std::runtime_error("label given twice in: " + line);
        sample.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) throw std::runtime_error("unterminated label set in: " + line);
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') throw std::runtime_error("no value in: " + line);
    std::istringstream rest(line.substr(i + 1));
    std::string value_token, timestamp, extra;
    rest >> value_token >> timestamp >> extra;
    if (value_token.empty() || !extra.empty()) throw std::runtime_error("malformed sample: " + line);
    sample.value = parse_value(value_token);
    if (out.family_of(sample.name).empty()) throw std::runtime_error("sample before its TYPE: " + line);
    out.samples.push_back(std::move(sample));
  }
  return out;
}

Exposition scrape(const Metrics& metrics) { return parse_exposition(metrics.exposition()); }

const MetricsModel kLlama{"BaseModel", "team-a", "llama-3-8b"};
const MetricsModel kQwen{"ClusterBaseModel", "", "qwen2-7b"};

std::map<std::string, std::string> labels_of(const MetricsModel& m) {
  return {{"model_type", std::string(m.kind)}, {"namespace", std::string(m.namespace_name)}, {"name", std::string(m.name)}};
}

std::set<std::string> label_names(const Sample& s) {
  std::set<std::string> names;
  for (const auto& [k, v] : s.labels) names.insert(k);
  return names;
}

std::string format_bound(double bound) {
  std::ostringstream out;
  out << bound;
  return out.str();
}

fs::path make_temp_dir() {
  std::string templ = (fs::temp_directory_path() / "metrics-test-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return templ;
}

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

// ---- names, types, labels ----

TEST(Metrics, EveryFamilyHasItsOmeNameTypeAndLabels) {
  Metrics metrics("9.9.9");
  metrics.download_succeeded(kLlama, 12);
  metrics.download_failed(kLlama, "rate_limited");
  metrics.verification(kLlama, true, 1);
  metrics.verification(kLlama, false, 1);
  metrics.md5_failed(kLlama);
  metrics.rate_limited(kLlama, 30);
  metrics.bytes_downloaded(kLlama, 100);
  metrics.phase(DownloadPhase::Transfer, 3);
  auto e = scrape(metrics);

  const std::set<std::string> model{"model_type", "namespace", "name"};
  struct Expected {
    std::string name, type;
    std::set<std::string> labels;
  };
  const std::vector<Expected> expected = {
      {"model_agent_downloads_success_total", "counter", model},
      {"model_agent_downloads_failed_total", "counter", model},
      {"model_agent_verifications_total", "counter", {"model_type", "namespace", "name", "result"}},
      {"model_agent_md5_checksum_failed_total", "counter", model},
      {"model_agent_rate_limit_total", "counter", model},
      {"model_agent_download_duration_seconds", "histogram", model},
      {"model_agent_verification_duration_seconds", "histogram", {}},
      {"model_agent_download_bytes_total", "counter", model},
      {"model_agent_rate_limit_wait_seconds", "histogram", model},
      {"model_agent_download_failures_by_reason_total", "counter", {"reason"}},
      {"model_agent_phase_duration_seconds", "histogram", {"phase"}},
      {"model_agent_downloads_in_progress", "gauge", {}},
      {"model_agent_build_info", "gauge", {"version"}},
  };
  for (const auto& family : expected) {
    SCOPED_TRACE(family.name);
    ASSERT_EQ(e.types.count(family.name), 1u);
    EXPECT_EQ(e.types.at(family.name), family.type);
    EXPECT_FALSE(e.help[family.name].empty());
    bool seen = false;
    for (const auto& s : e.samples) {
      if (e.family_of(s.name) != family.name) continue;
      seen = true;
      auto names = label_names(s);
      if (s.name.ends_with("_bucket")) names.erase("le");
      EXPECT_EQ(names, family.labels) << s.name;
    }
    EXPECT_TRUE(seen);
  }
  for (const auto& s : e.samples) {
    EXPECT_FALSE(s.name.starts_with("go_")) << s.name;  // no Go runtime metrics faked
  }
}

TEST(Metrics, BeforeAnyEventOnlyUnlabelledAndFixedSeriesExist) {
  Metrics metrics("1.2.3");
  auto e = scrape(metrics);
  EXPECT_EQ(e.value("model_agent_build_info", {{"version", "1.2.3"}}), 1);
  EXPECT_EQ(e.value("model_agent_downloads_in_progress"), 0);
  EXPECT_EQ(e.value("model_agent_verification_duration_seconds_count"), 0);
  for (std::string phase : {"queue", "transfer", "verify", "parse"}) {
    EXPECT_EQ(e.value("model_agent_phase_duration_seconds_count", {{"phase", phase}}), 0) << phase;
  }
  EXPECT_EQ(e.find("model_agent_phase_duration_seconds_count").size(), 4u);
  EXPECT_FALSE(e.has_family("model_agent_downloads_success_total"));
  EXPECT_FALSE(e.has_family("model_agent_download_duration_seconds"));
  EXPECT_FALSE(e.has_family("model_agent_download_failures_by_reason_total"));
}

TEST(Metrics, DefaultConstructorExportsTheLibraryVersion) {
  Metrics metrics;
  auto e = scrape(metrics);
  auto info = e.find("model_agent_build_info");
  ASSERT_EQ(info.size(), 1u);
  EXPECT_FALSE(info[0].labels.at("version").empty());
  EXPECT_NE(info[0].labels.at("version").find('.'), std::string::npos);
}

// ---- buckets ----

TEST(MetricsBuckets, ReachHoursAndIncrease) {
  auto check = [](std::span<const double> b, double first, double last) {
    ASSERT_FALSE(b.empty());
    EXPECT_DOUBLE_EQ(b.front(), first);
    EXPECT_DOUBLE_EQ(b.back(), last);
    for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
  };
  check(download_duration_buckets(), 1, 6 * 3600);
  check(verification_duration_buckets(), 0.1, 3600);
  check(rate_limit_wait_buckets(), 1, 3600);
  check(phase_duration_buckets(), 0.01, 6 * 3600);
}

TEST(MetricsBuckets, ExposedBoundariesAreTheDocumentedOnes) {
  Metrics metrics("t");
  metrics.download_succeeded(kLlama, 1);
  metrics.rate_limited(kLlama, 1);
  auto e = scrape(metrics);
  auto check = [&](const std::string& family, std::span<const double> bounds,
                   const std::map<std::string, std::string>& match) {
    SCOPED_TRACE(family);
    auto buckets = e.find(family + "_bucket", match);
    ASSERT_EQ(buckets.size(), bounds.size() + 1);
    for (size_t i = 0; i < bounds.size(); ++i) {
      EXPECT_DOUBLE_EQ(parse_value(buckets[i].labels.at("le")), bounds[i]);
    }
    EXPECT_EQ(buckets.back().labels.at("le"), "+Inf");
  };
  check("model_agent_download_duration_seconds", download_duration_buckets(), labels_of(kLlama));
  check("model_agent_rate_limit_wait_seconds", rate_limit_wait_buckets(), labels_of(kLlama));
  check("model_agent_verification_duration_seconds", verification_duration_buckets(), {});
  check("model_agent_phase_duration_seconds", phase_duration_buckets(), {{"phase", "parse"}});
}

TEST(MetricsBuckets, HourLongDownloadLandsInAFiniteBucket) {
  Metrics metrics("t");
  metrics.download_succeeded(kLlama, 5400);  // 1.5 h: OME's 51.2 s top bucket would put it in +Inf
  metrics.download_succeeded(kLlama, 3600);  // bounds are inclusive
  auto e = scrape(metrics);
  auto bucket = [&](const std::string& le) {
    auto match = labels_of(kLlama);
    match["le"] = le;
    return e.value("model_agent_download_duration_seconds_bucket", match);
  };
  EXPECT_EQ(bucket(format_bound(1800)), 0);
  EXPECT_EQ(bucket(format_bound(3600)), 1);
  EXPECT_EQ(bucket(format_bound(7200)), 2);
  EXPECT_EQ(bucket("+Inf"), 2);
  EXPECT_EQ(e.value("model_agent_download_duration_seconds_count", labels_of(kLlama)), 2);
  EXPECT_DOUBLE_EQ(e.value("model_agent_download_duration_seconds_sum", labels_of(kLlama)), 9000);
}

TEST(MetricsBuckets, PhasesAreObservedSeparately) {
  Metrics metrics("t");
  metrics.phase(DownloadPhase::Queue, 0.02);
  metrics.phase(DownloadPhase::Transfer, 7200);
  metrics.phase(DownloadPhase::Transfer, 60);
  metrics.phase(parse_download_phase("verify"), 90);
  auto e = scrape(metrics);
  EXPECT_EQ(e.value("model_agent_phase_duration_seconds_count", {{"phase", "queue"}}), 1);
  EXPECT_EQ(e.value("model_agent_phase_duration_seconds_count", {{"phase", "transfer"}}), 2);
  EXPECT_DOUBLE_EQ(e.value("model_agent_phase_duration_seconds_sum", {{"phase", "transfer"}}), 7260);
  EXPECT_EQ(e.value("model_agent_phase_duration_seconds_count", {{"phase", "verify"}}), 1);
  EXPECT_EQ(e.value("model_agent_phase_duration_seconds_count", {{"phase", "parse"}}), 0);
  EXPECT_EQ(e.value("model_agent_phase_duration_seconds_bucket", {{"phase", "queue"}, {"le", "0.025"}}), 1);
  EXPECT_EQ(e.value("model_agent_phase_duration_seconds_bucket", {{"phase", "queue"}, {"le", "0.01"}}), 0);
}

// ---- counting ----

TEST(Metrics, CountersIncreasePerModel) {
  Metrics metrics("t");
  metrics.download_succeeded(kLlama, 10);
  metrics.download_succeeded(kLlama, 20);
  metrics.download_succeeded(kQwen, 5);
  metrics.download_failed(kLlama, "rate_limited");
  metrics.download_failed(kQwen, "rate_limited");
  metrics.download_failed(kQwen, "verification");
  metrics.verification(kLlama, true, 2);
  metrics.verification(kLlama, true, 3);
  metrics.verification(kLlama, false, 4);
  metrics.md5_failed(kLlama);
  metrics.rate_limited(kQwen, 30);
  metrics.rate_limited(kQwen, 120);
  metrics.bytes_downloaded(kLlama, 50'000'000'000ULL);
  metrics.bytes_downloaded(kLlama, 1);
  metrics.set_in_progress(3);
  auto e = scrape(metrics);
  auto llama = labels_of(kLlama);
  auto qwen = labels_of(kQwen);
  EXPECT_EQ(e.value("model_agent_downloads_success_total", llama), 2);
  EXPECT_EQ(e.value("model_agent_downloads_success_total", qwen), 1);
  EXPECT_EQ(e.value("model_agent_downloads_failed_total", llama), 1);
  EXPECT_EQ(e.value("model_agent_downloads_failed_total", qwen), 2);
  EXPECT_EQ(e.value("model_agent_download_failures_by_reason_total", {{"reason", "rate_limited"}}), 2);
  EXPECT_EQ(e.value("model_agent_download_failures_by_reason_total", {{"reason", "verification"}}), 1);
  auto ok = llama;
  ok["result"] = "success";
  auto bad = llama;
  bad["result"] = "failure";
  EXPECT_EQ(e.value("model_agent_verifications_total", ok), 2);
  EXPECT_EQ(e.value("model_agent_verifications_total", bad), 1);
  EXPECT_EQ(e.value("model_agent_verification_duration_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(e.value("model_agent_verification_duration_seconds_sum"), 9);
  EXPECT_EQ(e.value("model_agent_md5_checksum_failed_total", llama), 1);
  EXPECT_EQ(e.value("model_agent_rate_limit_total", qwen), 2);
  EXPECT_EQ(e.value("model_agent_rate_limit_wait_seconds_count", qwen), 2);
  EXPECT_DOUBLE_EQ(e.value("model_agent_rate_limit_wait_seconds_sum", qwen), 150);
  EXPECT_DOUBLE_EQ(e.value("model_agent_download_bytes_total", llama), 50'000'000'001.0);
  EXPECT_EQ(e.value("model_agent_downloads_in_progress"), 3);
  metrics.set_in_progress(0);
  EXPECT_EQ(scrape(metrics).value("model_agent_downloads_in_progress"), 0);
}

TEST(Metrics, ModelTypeAndNamespaceFollowOme) {
  Metrics metrics("t");
  metrics.download_succeeded({"ClusterBaseModel", "ome", "shared"}, 1);  // cluster-scoped: namespace ""
  metrics.download_succeeded({"InferenceService", "ns", "odd"}, 1);
  auto e = scrape(metrics);
  EXPECT_EQ(e.value("model_agent_downloads_success_total",
                    {{"model_type", "ClusterBaseModel"}, {"namespace", ""}, {"name", "shared"}}),
            1);
  EXPECT_EQ(e.value("model_agent_downloads_success_total", {{"model_type", "unknown"}, {"name", "odd"}}), 1);
  EXPECT_TRUE(e.find("model_agent_downloads_success_total", {{"namespace", "ome"}}).empty());
}

TEST(Metrics, LabelValuesAreEscaped) {
  Metrics metrics("t");
  const std::string name = "we\"ird\\na\nme";
  metrics.md5_failed({"BaseModel", "ns", name});
  auto e = scrape(metrics);
  EXPECT_EQ(e.value("model_agent_md5_checksum_failed_total", {{"name", name}}), 1);
}

// ---- forgetting a model ----

TEST(Metrics, ForgetRemovesEverySeriesOfThatModelOnly) {
  Metrics metrics("t");
  for (const auto& m : {kLlama, kQwen}) {
    metrics.download_succeeded(m, 1);
    metrics.download_failed(m, "download");
    metrics.verification(m, true, 1);
    metrics.verification(m, false, 1);
    metrics.md5_failed(m);
    metrics.rate_limited(m, 1);
    metrics.bytes_downloaded(m, 10);
  }
  metrics.forget_model(kLlama);
  auto e = scrape(metrics);
  for (const auto& s : e.samples) {
    if (s.labels.count("name")) EXPECT_EQ(s.labels.at("name"), "qwen2-7b") << s.name;
  }
  EXPECT_EQ(e.value("model_agent_downloads_success_total", labels_of(kQwen)), 1);
  EXPECT_EQ(e.value("model_agent_rate_limit_wait_seconds_count", labels_of(kQwen)), 1);
  // Aggregates over all models keep their history.
  EXPECT_EQ(e.value("model_agent_download_failures_by_reason_total", {{"reason", "download"}}), 2);
  EXPECT_EQ(e.value("model_agent_verification_duration_seconds_count"), 4);

  metrics.download_succeeded(kLlama, 2);  // a model re-created under the same name starts afresh
  e = scrape(metrics);
  EXPECT_EQ(e.value("model_agent_downloads_success_total", labels_of(kLlama)), 1);
  EXPECT_EQ(e.value("model_agent_download_duration_seconds_count", labels_of(kLlama)), 1);
  EXPECT_TRUE(e.find("model_agent_downloads_failed_total", labels_of(kLlama)).empty());
}

TEST(Metrics, ForgetUsesTheExportedIdentity) {
  Metrics metrics("t");
  metrics.bytes_downloaded({"ClusterBaseModel", "", "shared"}, 5);
  metrics.forget_model({"ClusterBaseModel", "some-namespace", "shared"});
  metrics.forget_model({"BaseModel", "nowhere", "never-seen"});
  EXPECT_FALSE(scrape(metrics).has_family("model_agent_download_bytes_total"));
}

// ---- bad input ----

TEST(Metrics, RejectsBadAmountsNamingTheMetric) {
  Metrics metrics("t");
  auto expect_error = [](auto call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no error for " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { metrics.download_succeeded(kLlama, -1); }, "model_agent_download_duration_seconds");
  expect_error([&] { metrics.download_succeeded(kLlama, NAN); }, "model_agent_download_duration_seconds");
  expect_error([&] { metrics.verification(kLlama, true, INFINITY); }, "model_agent_verification_duration_seconds");
  expect_error([&] { metrics.rate_limited(kLlama, -0.5); }, "model_agent_rate_limit_wait_seconds");
  expect_error([&] { metrics.phase(DownloadPhase::Parse, -2); }, "model_agent_phase_duration_seconds");
  expect_error([&] { metrics.set_in_progress(-1); }, "model_agent_downloads_in_progress");
  expect_error([&] { metrics.download_failed(kLlama, "boom"); }, "unknown reason \"boom\"");
  expect_error([&] { metrics.download_failed(kLlama, "boom"); }, "rate_limited");
  expect_error([] { parse_download_phase("download"); }, "unknown phase \"download\"");
  expect_error([] { parse_download_phase("download"); }, "queue, transfer, verify, parse");
  // Nothing was recorded by the rejected calls.
  auto e = scrape(metrics);
  EXPECT_FALSE(e.has_family("model_agent_downloads_success_total"));
  EXPECT_FALSE(e.has_family("model_agent_downloads_failed_total"));
  EXPECT_FALSE(e.has_family("model_agent_rate_limit_total"));
}

TEST(Metrics, FailureReasonsAreAClosedDocumentedSet) {
  EXPECT_TRUE(is_failure_reason("other"));
  EXPECT_TRUE(is_failure_reason("cancelled"));
  EXPECT_FALSE(is_failure_reason(""));
  EXPECT_FALSE(is_failure_reason("Rate_Limited"));
  std::set<std::string_view> unique(failure_reasons().begin(), failure_reasons().end());
  EXPECT_EQ(unique.size(), failure_reasons().size());
  for (auto phase : {DownloadPhase::Queue, DownloadPhase::Transfer, DownloadPhase::Verify, DownloadPhase::Parse}) {
    EXPECT_EQ(parse_download_phase(download_phase_name(phase)), phase);
  }
}

// ---- concurrency ----

TEST(Metrics, ConcurrentRecordingAndForgettingLoseNothing) {
  Metrics metrics("t");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    const MetricsModel other{"BaseModel", "ns", "churned"};
    while (!stop) {
      metrics.bytes_downloaded(other, 1);
      metrics.forget_model(other);
      (void)metrics.exposition();
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        metrics.download_succeeded(kLlama, 1);
        metrics.bytes_downloaded(kLlama, 2);
        metrics.phase(DownloadPhase::Queue, 0);
      }
    });
  }
  for (auto& w : workers) w.join();
  stop = true;
  churn.join();
  auto e = scrape(metrics);
  EXPECT_EQ(e.value("model_agent_downloads_success_total", labels_of(kLlama)), kThreads * kPerThread);
  EXPECT_EQ(e.value("model_agent_download_bytes_total", labels_of(kLlama)), 2.0 * kThreads * kPerThread);
  EXPECT_EQ(e.value("model_agent_phase_duration_seconds_count", {{"phase", "queue"}}), kThreads * kPerThread);
}

// ---- process_* gauges ----

TEST(ProcessStats, ParsesACraftedProcTree) {
  auto root = make_temp_dir();
  // comm contains spaces and ')' — fields are counted from the last ')'.
  // fields 3..24: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
  //               priority nice num_threads itrealvalue starttime vsize rss
  write_file(root / "4242" / "stat",
             "4242 (odd) name (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 7 7 20 0 9 0 1000 123456789 2048 "
             "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n");
  write_file(root / "stat", "cpu  1 2 3 4\nbtime 1700000000\nprocesses 5\n");
  write_file(root / "4242" / "limits",
             "Limit                     Soft Limit           Hard Limit           Units     \n"
             "Max cpu time              unlimited            unlimited            seconds   \n"
             "Max open files            1024                 524288               files     \n");
  for (int i = 0; i < 5; ++i) write_file(root / "4242" / "fd" / std::to_string(i), "");

  auto stats = read_process_stats(root, "4242");
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  ASSERT_TRUE(stats.cpu_seconds);
  EXPECT_DOUBLE_EQ(*stats.cpu_seconds, 400 / ticks);
  ASSERT_TRUE(stats.threads);
  EXPECT_EQ(*stats.threads, 9);
  ASSERT_TRUE(stats.start_time_seconds);
  EXPECT_DOUBLE_EQ(*stats.start_time_seconds, 1700000000 + 1000 / ticks);
  ASSERT_TRUE(stats.virtual_memory_bytes);
  EXPECT_EQ(*stats.virtual_memory_bytes, 123456789);
  ASSERT_TRUE(stats.resident_memory_bytes);
  EXPECT_EQ(*stats.resident_memory_bytes, 2048.0 * sysconf(_SC_PAGESIZE));
  ASSERT_TRUE(stats.open_fds);
  EXPECT_EQ(*stats.open_fds, 5);
  ASSERT_TRUE(stats.max_fds);
  EXPECT_EQ(*stats.max_fds, 1024);

  // An unlimited soft limit and a truncated stat leave those fields empty instead of guessing.
  write_file(root / "4242" / "limits", "Max open files            unlimited            unlimited            files\n");
  write_file(root / "4242" / "stat", "4242 (short) S 1 2 3\n");
  stats = read_process_stats(root, "4242");
  EXPECT_FALSE(stats.max_fds);
  EXPECT_FALSE(stats.cpu_seconds);
  EXPECT_FALSE(stats.threads);
  EXPECT_FALSE(stats.resident_memory_bytes);
  EXPECT_TRUE(stats.open_fds);
  fs::remove_all(root);
}

TEST(ProcessStats, MissingProcfsGivesNoProcessFamilies) {
  auto root = make_temp_dir();
  auto stats = read_process_stats(root / "absent");
  EXPECT_FALSE(stats.cpu_seconds || stats.resident_memory_bytes || stats.virtual_memory_bytes ||
               stats.start_time_seconds || stats.open_fds || stats.max_fds || stats.threads);
  Metrics metrics("t", root / "absent");
  auto e = scrape(metrics);
  for (const auto& [name, type] : e.types) EXPECT_FALSE(name.starts_with("process_")) << name;
  EXPECT_EQ(e.value("model_agent_build_info", {{"version", "t"}}), 1);
  fs::remove_all(root);
}

TEST(ProcessStats, LiveValuesFollowTheProcess) {
  Metrics metrics("t");
  auto before = scrape(metrics);
  for (std::string name : {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                           "process_start_time_seconds", "process_open_fds", "process_max_fds", "process_threads"}) {
    ASSERT_EQ(before.find(name).size(), 1u) << name;
  }
  EXPECT_EQ(before.types.at("process_cpu_seconds_total"), "counter");
  EXPECT_EQ(before.types.at("process_threads"), "gauge");
  EXPECT_GT(before.value("process_resident_memory_bytes"), 0);
  EXPECT_GE(before.value("process_cpu_seconds_total"), 0);
  EXPECT_GT(before.value("process_start_time_seconds"), 1.0e9);
  EXPECT_LE(before.value("process_start_time_seconds"), static_cast<double>(std::time(nullptr)) + 1);

  // Open 8 descriptors and start 2 parked threads: the next scrape sees at least that many more.
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  std::vector<std::thread> parked;
  for (int i = 0; i < 2; ++i) {
    parked.emplace_back([&] {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return release; });
    });
  }
  auto after = scrape(metrics);
  EXPECT_GE(after.value("process_open_fds"), before.value("process_open_fds") + 8);
  EXPECT_GE(after.value("process_threads"), before.value("process_threads") + 2);
  EXPECT_GE(after.value("process_cpu_seconds_total"), before.value("process_cpu_seconds_total"));
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  cv.notify_all();
  for (auto& t : parked) t.join();
  for (int fd : fds) close(fd);
}

// ---- exposition format ----

TEST(Exposition, EveryFamilyHasHelpAndTypeBeforeItsSamples) {
  Metrics metrics("t");
  metrics.download_succeeded(kLlama, 1);
  auto text = metrics.exposition();
  std::istringstream lines(text);
  std::string line;
  std::set<std::string> typed;
  while (std::getline(lines, line)) {
    if (line.starts_with("# TYPE ")) {
      auto name = line.substr(7, line.find(' ', 7) - 7);
      typed.insert(name);
    } else if (!line.empty() && line[0] != '#') {
      auto name = line.substr(0, line.find_first_of("{ "));
      bool known = typed.count(name) > 0;
      for (std::string suffix : {"_bucket", "_sum", "_count"}) {
        if (name.ends_with(suffix) && typed.count(name.substr(0, name.size() - suffix.size()))) known = true;
      }
      EXPECT_TRUE(known) << line;
    }
  }
  auto e = parse_exposition(text);
  for (const auto& [name, type] : e.types) EXPECT_TRUE(e.help.count(name)) << name;
}

TEST(Exposition, ParserRejectsMalformedText) {
  EXPECT_THROW(parse_exposition("# TYPE a counter\na 1"), std::runtime_error);            // no final newline
  EXPECT_THROW(parse_exposition("a 1\n"), std::runtime_error);                            // untyped sample
  EXPECT_THROW(parse_exposition("# TYPE a counter\na{x=\"1} 1\n"), std::runtime_error);   // unterminated
  EXPECT_THROW(parse_exposition("# TYPE a counter\na{x=\"\\t\"} 1\n"), std::runtime_error);  // bad escape
  EXPECT_THROW(parse_exposition("# TYPE a counter\na one\n"), std::invalid_argument);     // bad value
  EXPECT_NO_THROW(parse_exposition("# TYPE a counter\na{x=\"\\\"\"} 1\n"));
}
