// Maps the core's exception hierarchy onto Python exception classes.
// pybind11 tries translators in reverse registration order, so the base is registered first.

#include "bindings.hpp"
#include "modelagent/errors.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

void register_errors(py::module_& m) {
  auto& base = py::register_exception<Error>(m, "ModelAgentError", PyExc_Exception);
  py::register_exception<InvalidStorageUri>(m, "InvalidStorageUri", base.ptr());
  py::register_exception<ModelConfigError>(m, "ModelConfigError", base.ptr());
  py::register_exception<SafetensorsError>(m, "SafetensorsError", base.ptr());
  py::register_exception<ModelEntryError>(m, "ModelEntryError", base.ptr());
}

}  // namespace modelagent::bindings
