#pragma once
// Shared declarations of the binding translation units: one register_<area>() per area of the core.

#include <pybind11/pybind11.h>

namespace modelagent::bindings {

void register_errors(pybind11::module_& m);
void register_storage_uri(pybind11::module_& m);
void register_naming(pybind11::module_& m);
void register_model_entry(pybind11::module_& m);
void register_model_metadata(pybind11::module_& m);
void register_download(pybind11::module_& m);
void register_huggingface(pybind11::module_& m);
void register_metrics(pybind11::module_& m);
void register_oci_auth(pybind11::module_& m);
void register_oci(pybind11::module_& m);
void register_s3(pybind11::module_& m);
void register_shape_filter(pybind11::module_& m);

}  // namespace modelagent::bindings
