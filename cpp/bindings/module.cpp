// The private extension module modelagent._core. Each area registers itself from its own file.

#include "bindings.hpp"
#include "modelagent/version.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "modelagent C++ core (private; use the modelagent package)";
  m.attr("__version__") = modelagent::kVersion;
  modelagent::bindings::register_errors(m);
  modelagent::bindings::register_storage_uri(m);
  modelagent::bindings::register_naming(m);
  modelagent::bindings::register_model_entry(m);
  modelagent::bindings::register_model_metadata(m);
  modelagent::bindings::register_download(m);
  modelagent::bindings::register_huggingface(m);
  modelagent::bindings::register_metrics(m);
  modelagent::bindings::register_oci_auth(m);
  modelagent::bindings::register_oci(m);
  modelagent::bindings::register_s3(m);
  modelagent::bindings::register_shape_filter(m);
}
