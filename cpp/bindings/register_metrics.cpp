// The metrics registry: _core.MetricsRegistry plus the failure reasons, phases and bucket boundaries.

#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "bindings.hpp"
#include "modelagent/metrics.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

namespace {

// Owns the strings a MetricsModel views while one call runs.
struct ModelArgs {
  std::string kind;
  std::optional<std::string> namespace_name;
  std::string name;
  MetricsModel view() const { return {kind, namespace_name ? std::string_view(*namespace_name) : "", name}; }
};

py::list to_list(std::span<const double> values) {
  py::list out;
  for (double v : values) out.append(v);
  return out;
}

}  // namespace

void register_metrics(py::module_& m) {
  py::tuple reasons(failure_reasons().size());
  for (size_t i = 0; i < failure_reasons().size(); ++i) reasons[i] = py::str(std::string(failure_reasons()[i]));
  m.attr("METRICS_FAILURE_REASONS") = reasons;
  m.attr("METRICS_PHASES") = py::make_tuple("queue", "transfer", "verify", "parse");
  m.def(
      "metrics_buckets",
      [] {
        py::dict out;
        out["model_agent_download_duration_seconds"] = to_list(download_duration_buckets());
        out["model_agent_verification_duration_seconds"] = to_list(verification_duration_buckets());
        out["model_agent_rate_limit_wait_seconds"] = to_list(rate_limit_wait_buckets());
        out["model_agent_phase_duration_seconds"] = to_list(phase_duration_buckets());
        return out;
      },
      "Histogram family name -> bucket upper bounds in seconds (+Inf implied).");

  py::class_<Metrics>(m, "MetricsRegistry",
                      "The agent's Prometheus registry (C++, prometheus-cpp). Thread-safe; see docs/metrics.md.")
      .def(py::init([](std::optional<std::string> version) {
             return version ? std::make_unique<Metrics>(*version) : std::make_unique<Metrics>();
           }),
           py::arg("version") = py::none(),
           "version is exported as model_agent_build_info{version}; None means this library's version.")
      .def(
          "download_succeeded",
          [](Metrics& self, std::string kind, std::optional<std::string> ns, std::string name, double seconds) {
            self.download_succeeded(ModelArgs{kind, ns, name}.view(), seconds);
          },
          py::arg("kind"), py::arg("namespace"), py::arg("name"), py::arg("seconds"))
      .def(
          "download_failed",
          [](Metrics& self, std::string kind, std::optional<std::string> ns, std::string name, std::string reason) {
            self.download_failed(ModelArgs{kind, ns, name}.view(), reason);
          },
          py::arg("kind"), py::arg("namespace"), py::arg("name"), py::arg("reason"))
      .def(
          "verification",
          [](Metrics& self, std::string kind, std::optional<std::string> ns, std::string name, bool ok,
             double seconds) { self.verification(ModelArgs{kind, ns, name}.view(), ok, seconds); },
          py::arg("kind"), py::arg("namespace"), py::arg("name"), py::arg("ok"), py::arg("seconds"))
      .def(
          "md5_failed",
          [](Metrics& self, std::string kind, std::optional<std::string> ns, std::string name) {
            self.md5_failed(ModelArgs{kind, ns, name}.view());
          },
          py::arg("kind"), py::arg("namespace"), py::arg("name"))
      .def(
          "rate_limited",
          [](Metrics& self, std::string kind, std::optional<std::string> ns, std::string name, double wait_seconds) {
            self.rate_limited(ModelArgs{kind, ns, name}.view(), wait_seconds);
          },
          py::arg("kind"), py::arg("namespace"), py::arg("name"), py::arg("wait_seconds"))
      .def(
          "bytes_downloaded",
          [](Metrics& self, std::string kind, std::optional<std::string> ns, std::string name, std::int64_t n) {
            if (n < 0) {
              throw std::invalid_argument("model_agent_download_bytes_total: n must be non-negative, got " +
                                          std::to_string(n));
            }
            self.bytes_downloaded(ModelArgs{kind, ns, name}.view(), static_cast<std::uint64_t>(n));
          },
          py::arg("kind"), py::arg("namespace"), py::arg("name"), py::arg("n"))
      .def(
          "phase",
          [](Metrics& self, std::string_view phase, double seconds) {
            self.phase(parse_download_phase(phase), seconds);
          },
          py::arg("phase"), py::arg("seconds"))
      .def("set_in_progress", &Metrics::set_in_progress, py::arg("n"))
      .def(
          "forget_model",
          [](Metrics& self, std::string kind, std::optional<std::string> ns, std::string name) {
            self.forget_model(ModelArgs{kind, ns, name}.view());
          },
          py::arg("kind"), py::arg("namespace"), py::arg("name"))
      .def("exposition", &Metrics::exposition, py::call_guard<py::gil_scoped_release>(),
           "Every family plus process_* gauges in the Prometheus text format 0.0.4.");
}

}  // namespace modelagent::bindings
