// Python surface of the shape filter area (filled in by its owner).

#include "bindings.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

void register_shape_filter(py::module_& m) { (void)m; }

}  // namespace modelagent::bindings
