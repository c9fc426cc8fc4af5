// Python surface of the s3 area (filled in by its owner).

#include "bindings.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

void register_s3(py::module_& m) { (void)m; }

}  // namespace modelagent::bindings
