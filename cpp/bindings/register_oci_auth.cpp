// Python surface of the oci auth area (filled in by its owner).

#include "bindings.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

void register_oci_auth(py::module_& m) { (void)m; }

}  // namespace modelagent::bindings
