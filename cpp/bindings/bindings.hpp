#pragma once
// Shared declarations of the binding translation units: one register_<area>() per area of the core.

#include <pybind11/pybind11.h>

#include "modelagent/download_plan.hpp"

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

// One plan entry as the dict run_download() accepts: {path, url, size (None when unknown), digest: {kind,
// value[, parts][, part_size]}, headers, signer (None when unsigned)}. Every source's planner returns these.
pybind11::dict plan_entry_dict(const PlannedFile& file);

}  // namespace modelagent::bindings
