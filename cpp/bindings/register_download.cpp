#include "bindings.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

void register_download(py::module_& m) {}

}  // namespace modelagent::bindings
