#include "bindings.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

void register_huggingface(py::module_& m) {}

}  // namespace modelagent::bindings
