// Python surface of the oci area (filled in by its owner).

#include "bindings.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

void register_oci(py::module_& m) { (void)m; }

}  // namespace modelagent::bindings
