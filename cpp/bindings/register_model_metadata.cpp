// Model metadata: inspect_model and the pieces of it worth calling alone. Blocking calls release the GIL.

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <filesystem>
#include <new>
#include <string>

#include "bindings.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/model_metadata.hpp"

namespace py = pybind11;
namespace fs = std::filesystem;

namespace modelagent::bindings {

namespace {

// Anything the core throws that is not one of its own error types (a filesystem error from the OS, say)
// still reaches Python as a ModelConfigError naming the path, never as a bare RuntimeError.
template <typename F>
auto as_model_error(const fs::path& path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw ModelConfigError("cannot inspect " + path.string() + ": " + e.what());
  }
}

}  // namespace

void register_model_metadata(py::module_& m) {
  py::class_<QuantizationInfo>(m, "QuantizationInfo", "Detailed quantization of a model (method '' = none).")
      .def_readonly("method", &QuantizationInfo::method)
      .def_readonly("scheme", &QuantizationInfo::scheme)
      .def_readonly("bits", &QuantizationInfo::bits)
      .def_readonly("source", &QuantizationInfo::source)
      .def_property_readonly("quantized", &QuantizationInfo::quantized)
      .def("__repr__", [](const QuantizationInfo& q) {
        return "QuantizationInfo(method='" + q.method + "', scheme='" + q.scheme + "', bits=" + std::to_string(q.bits) +
               ", source='" + q.source + "')";
      });

  py::class_<ModelMetadata>(m, "ModelMetadata",
                            "Raw metadata from the C++ core; modelagent.inspect_model wraps it in a dataclass.")
      .def_readonly("model_type", &ModelMetadata::model_type)
      .def_readonly("architecture", &ModelMetadata::architecture)
      .def_readonly("framework", &ModelMetadata::framework)
      .def_readonly("format", &ModelMetadata::format)
      .def_readonly("parameter_count", &ModelMetadata::parameter_count)
      .def_readonly("parameter_size", &ModelMetadata::parameter_size)
      .def_readonly("parameter_count_source", &ModelMetadata::parameter_count_source)
      .def_readonly("context_length", &ModelMetadata::context_length)
      .def_readonly("capabilities", &ModelMetadata::capabilities)
      .def_readonly("has_vision", &ModelMetadata::has_vision)
      .def_readonly("quantization", &ModelMetadata::quantization)
      .def_readonly("quantization_detail", &ModelMetadata::quantization_detail)
      .def_readonly("torch_dtype", &ModelMetadata::torch_dtype)
      .def_readonly("transformers_version", &ModelMetadata::transformers_version)
      .def_readonly("model_size_bytes", &ModelMetadata::model_size_bytes)
      .def_readonly("weight_files", &ModelMetadata::weight_files)
      .def_readonly("config_path", &ModelMetadata::config_path)
      .def_readonly("model_dir", &ModelMetadata::model_dir)
      .def(
          "decoded_summary_json", [](const ModelMetadata& meta) { return decoded_summary(meta).dump(); },
          "The decoded configuration summary (8 keys, plus 'quantization' when quantized) as JSON text.")
      .def("to_model_config", &to_model_config, "The ConfigMap entry's 'config' object for this metadata.");

  m.def(
      "inspect_model",
      [](const fs::path& path) { return as_model_error(path, [&] { return inspect_model(path); }); },
      py::arg("path"), py::call_guard<py::gil_scoped_release>(),
      "Inspect a model directory (or config file). Raises ModelConfigError or SafetensorsError.");
  m.def(
      "locate_model_config",
      [](const fs::path& path) {
        ModelConfigLocation location = as_model_error(path, [&] { return locate_model_config(path); });
        return std::make_pair(location.file, location.diffusers);
      },
      py::arg("path"), py::call_guard<py::gil_scoped_release>(),
      "The config.json (or diffusers model_index.json) a model directory is described by, and whether it is "
      "a diffusers index.");
  m.def("format_parameter_size", &format_parameter_size, py::arg("count"),
        "Parameter-size string: 8030261248 -> '8.03B' (units K, M, B, T; at most two decimals).");
}

}  // namespace modelagent::bindings
