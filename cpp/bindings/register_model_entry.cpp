// ConfigMap entries: ModelEntry, ModelConfig, ModelProgress and NameVersion.
// Python holds config and progress by shared pointer so `entry.config.max_tokens = n` edits the entry in place;
// NameVersion is immutable, and list/dict fields come back as read-only views (assign a new value to change them).

#include <pybind11/stl.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/model_entry.hpp"

namespace py = pybind11;
using nlohmann::json;
using nlohmann::ordered_json;

namespace modelagent::bindings {

namespace {

template <class J>
py::object to_py(const J& v) {
  switch (v.type()) {
    case nlohmann::detail::value_t::null: return py::none();
    case nlohmann::detail::value_t::boolean: return py::bool_(v.template get<bool>());
    case nlohmann::detail::value_t::number_integer: return py::int_(v.template get<int64_t>());
    case nlohmann::detail::value_t::number_unsigned: return py::int_(v.template get<uint64_t>());
    case nlohmann::detail::value_t::number_float: return py::float_(v.template get<double>());
    case nlohmann::detail::value_t::string: return py::str(v.template get_ref<const std::string&>());
    case nlohmann::detail::value_t::array: {
      py::list out;
      for (const auto& item : v) out.append(to_py(item));
      return std::move(out);
    }
    case nlohmann::detail::value_t::object: {
      py::dict out;
      for (auto it = v.begin(); it != v.end(); ++it) out[py::str(it.key())] = to_py(it.value());
      return std::move(out);
    }
    default: throw py::type_error("JSON value of an unsupported type");
  }
}

std::string type_name(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")); }

// A Python value as JSON; `where` names the argument in errors.
json from_py(py::handle h, const std::string& where) {
  if (h.is_none()) return nullptr;
  if (py::isinstance<py::bool_>(h)) return h.cast<bool>();
  if (py::isinstance<py::int_>(h)) {
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
    if (overflow == 0) return static_cast<int64_t>(value);
    if (overflow > 0) {
      unsigned long long u = PyLong_AsUnsignedLongLong(h.ptr());
      if (!PyErr_Occurred()) return static_cast<uint64_t>(u);
      PyErr_Clear();
    }
    throw py::value_error(where + ": integer " + std::string(py::str(h)) + " does not fit in 64 bits");
  }
  if (py::isinstance<py::float_>(h)) {
    double d = h.cast<double>();
    if (!std::isfinite(d)) throw py::value_error(where + ": JSON cannot represent " + std::string(py::repr(h)));
    return d;
  }
  if (py::isinstance<py::str>(h)) return h.cast<std::string>();
  if (py::isinstance<py::dict>(h)) {
    json out = json::object();
    for (auto item : h.cast<py::dict>()) {
      if (!py::isinstance<py::str>(item.first))
        throw py::type_error(where + ": object keys must be str, got " + std::string(py::repr(item.first)));
      std::string key = item.first.cast<std::string>();
      out[key] = from_py(item.second, where + "[" + std::string(py::repr(item.first)) + "]");
    }
    return out;
  }
  if (py::isinstance<py::list>(h) || py::isinstance<py::tuple>(h)) {
    json out = json::array();
    size_t i = 0;
    for (auto item : h) out.push_back(from_py(item, where + "[" + std::to_string(i++) + "]"));
    return out;
  }
  throw py::type_error(where + ": cannot be written as JSON: " + type_name(h));
}

py::object read_only(py::object mapping) { return py::module_::import("types").attr("MappingProxyType")(mapping); }

// The Python-side shape of a ModelEntry (shared config/progress so attribute edits stick).
struct PyModelEntry {
  std::string name;
  std::string status;
  std::shared_ptr<ModelConfig> config;
  std::shared_ptr<ModelProgress> progress;
  json extra = json::object();

  static PyModelEntry from_core(ModelEntry e) {
    PyModelEntry out{std::move(e.name), std::move(e.status), nullptr, nullptr, std::move(e.extra)};
    if (e.config) out.config = std::make_shared<ModelConfig>(std::move(*e.config));
    if (e.progress) out.progress = std::make_shared<ModelProgress>(*e.progress);
    return out;
  }
  ModelEntry to_core() const {
    ModelEntry e;
    e.name = name;
    e.status = status;
    if (config) e.config = *config;
    if (progress) e.progress = *progress;
    e.extra = extra;
    return e;
  }
};

std::string checked_status(const std::string& status) {
  if (!is_known_model_status(status))
    throw py::value_error("model status must be Ready, Updating, Failed or Deleted, got '" + status + "'");
  return status;
}

std::string py_repr(const std::string& s) { return std::string(py::repr(py::str(s))); }

std::string name_version_repr(const NameVersion& nv) {
  std::string out = "NameVersion(" + py_repr(nv.name);
  if (nv.version) out += ", " + py_repr(*nv.version);
  return out + ")";
}

// Only the fields that are set, in JSON field order.
std::string config_repr(const ModelConfig& c) {
  std::vector<std::string> parts;
  if (!c.model_type.empty()) parts.push_back("model_type=" + py_repr(c.model_type));
  if (!c.model_architecture.empty()) parts.push_back("model_architecture=" + py_repr(c.model_architecture));
  if (c.model_framework) parts.push_back("model_framework=" + name_version_repr(*c.model_framework));
  if (c.model_format) parts.push_back("model_format=" + name_version_repr(*c.model_format));
  if (!c.model_parameter_size.empty()) parts.push_back("model_parameter_size=" + py_repr(c.model_parameter_size));
  if (c.max_tokens != 0) parts.push_back("max_tokens=" + std::to_string(c.max_tokens));
  if (!c.model_capabilities.empty())
    parts.push_back("model_capabilities=" + std::string(py::repr(py::cast(c.model_capabilities))));
  if (!c.decoded_model_configuration.empty())
    parts.push_back("decoded_model_configuration=" + std::string(py::repr(to_py(c.decoded_model_configuration))));
  if (!c.quantization.empty()) parts.push_back("quantization=" + py_repr(c.quantization));
  std::string out = "ModelConfig(";
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out + ")";
}

std::string progress_repr(const ModelProgress& p) {
  char speed[64];
  std::snprintf(speed, sizeof speed, "%.17g", p.speed_bytes_per_sec);
  return "ModelProgress(phase=" + py_repr(p.phase) + ", completed_bytes=" + std::to_string(p.completed_bytes) +
         ", total_bytes=" + std::to_string(p.total_bytes) + ", completed_files=" +
         std::to_string(p.completed_files) + ", total_files=" + std::to_string(p.total_files) +
         ", speed_bytes_per_sec=" + speed + ", last_updated=" + py_repr(p.last_updated) + ")";
}

ordered_json config_as_value(const ModelConfig& c) {
  ModelEntry e;
  e.config = c;
  return model_entry_to_value(e)["config"];
}

ordered_json progress_as_value(const ModelProgress& p) {
  ModelEntry e;
  e.progress = p;
  return model_entry_to_value(e)["progress"];
}

PyModelEntry entry_from_dict(py::handle d, std::optional<std::string> key) {
  if (!py::isinstance<py::dict>(d))
    throw py::type_error("ModelEntry.from_dict expects a dict, got " + type_name(d));
  return PyModelEntry::from_core(model_entry_from_value(from_py(d, "ModelEntry"), key.value_or("")));
}

}  // namespace

void register_model_entry(py::module_& m) {
  py::class_<NameVersion>(m, "NameVersion", "modelFramework / modelFormat: a name and an optional version.")
      .def(py::init([](std::string name, std::optional<std::string> version) {
             return NameVersion{std::move(name), std::move(version), {}};
           }),
           py::arg("name"), py::arg("version") = py::none())
      .def_readonly("name", &NameVersion::name)
      .def_readonly("version", &NameVersion::version)
      .def("__eq__", [](const NameVersion& a, py::object b) -> py::object {
        if (!py::isinstance<NameVersion>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
        return py::bool_(a == b.cast<const NameVersion&>());
      })
      .def("__hash__", [](const NameVersion& a) { return py::hash(py::make_tuple(a.name, a.version)); })
      .def("__repr__", &name_version_repr);

  py::class_<ModelConfig, std::shared_ptr<ModelConfig>>(
      m, "ModelConfig", "The 'config' object of a ConfigMap entry (model metadata). Empty fields are omitted.")
      .def(py::init([](std::string model_type, std::string model_architecture,
                       std::optional<NameVersion> model_framework, std::optional<NameVersion> model_format,
                       std::string model_parameter_size, int32_t max_tokens,
                       std::vector<std::string> model_capabilities, std::optional<py::dict> decoded,
                       std::string quantization) {
             auto c = std::make_shared<ModelConfig>();
             c->model_type = std::move(model_type);
             c->model_architecture = std::move(model_architecture);
             c->model_framework = std::move(model_framework);
             c->model_format = std::move(model_format);
             c->model_parameter_size = std::move(model_parameter_size);
             c->max_tokens = max_tokens;
             c->model_capabilities = std::move(model_capabilities);
             if (decoded) c->decoded_model_configuration = from_py(*decoded, "decoded_model_configuration");
             c->quantization = std::move(quantization);
             return c;
           }),
           py::kw_only(), py::arg("model_type") = "", py::arg("model_architecture") = "",
           py::arg("model_framework") = py::none(), py::arg("model_format") = py::none(),
           py::arg("model_parameter_size") = "", py::arg("max_tokens") = 0,
           py::arg("model_capabilities") = std::vector<std::string>{},
           py::arg("decoded_model_configuration") = py::none(), py::arg("quantization") = "")
      .def_readwrite("model_type", &ModelConfig::model_type)
      .def_readwrite("model_architecture", &ModelConfig::model_architecture)
      .def_readwrite("model_framework", &ModelConfig::model_framework)
      .def_readwrite("model_format", &ModelConfig::model_format)
      .def_readwrite("model_parameter_size", &ModelConfig::model_parameter_size)
      .def_readwrite("max_tokens", &ModelConfig::max_tokens)
      .def_property(
          "model_capabilities", [](const ModelConfig& c) { return py::tuple(py::cast(c.model_capabilities)); },
          [](ModelConfig& c, std::vector<std::string> v) { c.model_capabilities = std::move(v); })
      .def_property(
          "decoded_model_configuration",
          [](const ModelConfig& c) { return read_only(to_py(c.decoded_model_configuration)); },
          [](ModelConfig& c, std::optional<py::dict> d) {
            c.decoded_model_configuration = d ? from_py(*d, "decoded_model_configuration") : json::object();
          })
      .def_readwrite("quantization", &ModelConfig::quantization)
      .def_property_readonly(
          "extra", [](const ModelConfig& c) { return read_only(to_py(c.extra)); },
          "Fields this version does not know, kept from the parsed JSON and written back.")
      .def(
          "to_dict", [](const ModelConfig& c) { return to_py(config_as_value(c)); },
          "The 'config' object with its JSON (camelCase) keys, as it is written.")
      .def("__eq__",
           [](const ModelConfig& a, py::object b) -> py::object {
             if (!py::isinstance<ModelConfig>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
             return py::bool_(go_json(config_as_value(a)) == go_json(config_as_value(b.cast<const ModelConfig&>())));
           })
      .def("__repr__", &config_repr);

  py::class_<ModelProgress, std::shared_ptr<ModelProgress>>(
      m, "ModelProgress", "The 'progress' object of a ConfigMap entry while a model downloads.")
      .def(py::init([](std::string phase, uint64_t completed_bytes, uint64_t total_bytes, uint32_t completed_files,
                       uint32_t total_files, double speed, std::string last_updated) {
             if (!std::isfinite(speed)) throw py::value_error("speed_bytes_per_sec must be finite");
             return std::make_shared<ModelProgress>(ModelProgress{std::move(phase), total_bytes, completed_bytes,
                                                                        total_files, completed_files, speed,
                                                                        std::move(last_updated)});
           }),
           py::kw_only(), py::arg("phase") = "", py::arg("completed_bytes") = 0, py::arg("total_bytes") = 0,
           py::arg("completed_files") = 0, py::arg("total_files") = 0, py::arg("speed_bytes_per_sec") = 0.0,
           py::arg("last_updated") = "")
      .def_readwrite("phase", &ModelProgress::phase)
      .def_readwrite("completed_bytes", &ModelProgress::completed_bytes)
      .def_readwrite("total_bytes", &ModelProgress::total_bytes)
      .def_readwrite("completed_files", &ModelProgress::completed_files)
      .def_readwrite("total_files", &ModelProgress::total_files)
      .def_property(
          "speed_bytes_per_sec", [](const ModelProgress& p) { return p.speed_bytes_per_sec; },
          [](ModelProgress& p, double v) {
            if (!std::isfinite(v)) throw py::value_error("speed_bytes_per_sec must be finite");
            p.speed_bytes_per_sec = v;
          })
      .def_readwrite("last_updated", &ModelProgress::last_updated, "RFC 3339 UTC time, e.g. 2024-05-01T12:00:00Z.")
      .def(
          "to_dict", [](const ModelProgress& p) { return to_py(progress_as_value(p)); },
          "The 'progress' object with its JSON (camelCase) keys.")
      .def("__eq__",
           [](const ModelProgress& a, py::object b) -> py::object {
             if (!py::isinstance<ModelProgress>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
             return py::bool_(go_json(progress_as_value(a)) ==
                              go_json(progress_as_value(b.cast<const ModelProgress&>())));
           })
      .def("__repr__", &progress_repr);

  py::class_<PyModelEntry>(m, "ModelEntry",
                           "One model's value in the per-node ConfigMap: name, status, optional config and progress.")
      .def(py::init([](std::string name, std::string status, std::shared_ptr<ModelConfig> config,
                       std::shared_ptr<ModelProgress> progress) {
             return PyModelEntry{std::move(name), checked_status(status), std::move(config), std::move(progress),
                                 json::object()};
           }),
           py::arg("name"), py::arg("status"), py::arg("config") = nullptr, py::arg("progress") = nullptr,
           "A new entry; status must be Ready, Updating, Failed or Deleted (ValueError otherwise).")
      .def(py::init([](py::dict d) { return entry_from_dict(d, std::nullopt); }), py::arg("data"),
           "An entry from a dict shaped like the JSON (same as ModelEntry.from_dict).")
      .def_static(
          "from_json",
          [](py::object text, std::optional<std::string> key) {
            if (!py::isinstance<py::str>(text) && !py::isinstance<py::bytes>(text))
              throw py::type_error("ModelEntry.from_json expects str or bytes, got " +
                                   type_name(text));
            std::string s = text.cast<std::string>();
            return PyModelEntry::from_core(parse_model_entry(s, key.value_or("")));
          },
          py::arg("text"), py::arg("key") = py::none(),
          "Parse a ConfigMap value (str or bytes). Unknown fields are kept; errors raise ModelEntryError naming\n"
          "the key (if given) and the field.")
      .def_static("from_dict", &entry_from_dict, py::arg("data"), py::arg("key") = py::none(),
                  "Parse a dict shaped like the JSON, with the same rules as from_json.")
      .def_readwrite("name", &PyModelEntry::name)
      .def_property(
          "status", [](const PyModelEntry& e) { return e.status; },
          [](PyModelEntry& e, const std::string& s) { e.status = checked_status(s); },
          "Ready, Updating, Failed or Deleted (a parsed entry keeps whatever string it had).")
      .def_readwrite("config", &PyModelEntry::config)
      .def_readwrite("progress", &PyModelEntry::progress)
      .def_property_readonly(
          "extra", [](const PyModelEntry& e) { return read_only(to_py(e.extra)); },
          "Top-level fields this version does not know, kept from the parsed JSON and written back.")
      .def(
          "to_json", [](const PyModelEntry& e) { return serialize_model_entry(e.to_core()); },
          "The entry exactly as OME's Go agent would write it.")
      .def(
          "to_dict", [](const PyModelEntry& e) { return to_py(model_entry_to_value(e.to_core())); },
          "The entry as a dict with its JSON keys, in written order.")
      .def("__eq__",
           [](const PyModelEntry& a, py::object other) -> py::object {
             if (!py::isinstance<PyModelEntry>(other)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
             return py::bool_(serialize_model_entry(a.to_core()) ==
                              serialize_model_entry(other.cast<const PyModelEntry&>().to_core()));
           })
      .def("__repr__", [](const PyModelEntry& e) {
        std::string out = "ModelEntry(name=" + py_repr(e.name) + ", status=" + py_repr(e.status);
        if (e.config) out += ", config=" + config_repr(*e.config);
        if (e.progress) out += ", progress=" + progress_repr(*e.progress);
        return out + ")";
      });

  m.attr("MODEL_STATUSES") = py::make_tuple(std::string(model_status::kReady), std::string(model_status::kUpdating),
                                            std::string(model_status::kFailed), std::string(model_status::kDeleted));
}

}  // namespace modelagent::bindings
