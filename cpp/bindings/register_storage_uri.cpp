// Storage URIs: one Python class per scheme, all subclasses of StorageUri, built only by parse_storage_uri.

#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "modelagent/storage_uri.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

namespace {

template <class T>
using Fields = std::vector<std::pair<const char*, std::string T::*>>;

template <class T>
void bind_uri(py::module_& m, const char* class_name, const char* scheme, const char* doc, Fields<T> fields) {
  py::class_<T, StorageUriBase> cls(m, class_name, doc);
  cls.attr("scheme") = scheme;
  for (const auto& [name, member] : fields) cls.def_readonly(name, member);
  cls.def(
      "to_dict",
      [scheme, fields](const T& self) {
        py::dict out;
        out["scheme"] = scheme;
        out["uri"] = self.uri;
        for (const auto& [name, member] : fields) out[name] = self.*member;
        return out;
      },
      "The scheme, the original URI and every parsed field, as a dict.");
  cls.def("__repr__", [class_name, fields](const T& self) {
    std::string out = std::string(class_name) + "(";
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i) out += ", ";
      out += std::string(fields[i].first) + "=" + std::string(py::repr(py::str(self.*(fields[i].second))));
    }
    return out + ")";
  });
  // Equal when they name the same location (the original spelling may differ, e.g. a trailing '/').
  cls.def("__eq__", [fields](const T& self, py::object other) -> py::object {
    if (!py::isinstance<T>(other)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    const T& rhs = other.cast<const T&>();
    for (const auto& [name, member] : fields)
      if (self.*member != rhs.*member) return py::bool_(false);
    return py::bool_(true);
  });
  cls.def("__hash__", [scheme, fields](const T& self) {
    py::list parts;
    parts.append(scheme);
    for (const auto& [name, member] : fields) parts.append(self.*member);
    return py::hash(py::tuple(parts));
  });
}

}  // namespace

void register_storage_uri(py::module_& m) {
  py::class_<StorageUriBase>(m, "StorageUri",
                             "A parsed storage URI. Use parse_storage_uri(); the subclass depends on the scheme.")
      .def_readonly("uri", &StorageUriBase::uri, "The text the value was parsed from.")
      .def("__str__", [](const StorageUriBase& self) { return self.uri; });

  bind_uri<OciStorageUri>(m, "OciStorageUri", "oci", "oci:// (OCI Object Storage).",
                          {{"namespace", &OciStorageUri::namespace_name},
                           {"bucket", &OciStorageUri::bucket},
                           {"prefix", &OciStorageUri::prefix},
                           {"region", &OciStorageUri::region}});
  bind_uri<HuggingFaceStorageUri>(m, "HuggingFaceStorageUri", "hf", "hf:// (Hugging Face Hub model repository).",
                                  {{"repo_id", &HuggingFaceStorageUri::repo_id},
                                   {"revision", &HuggingFaceStorageUri::revision}});
  bind_uri<PvcStorageUri>(m, "PvcStorageUri", "pvc", "pvc:// (a PersistentVolumeClaim; the agent leaves these alone).",
                          {{"namespace", &PvcStorageUri::namespace_name},
                           {"name", &PvcStorageUri::name},
                           {"subpath", &PvcStorageUri::subpath}});
  bind_uri<LocalStorageUri>(m, "LocalStorageUri", "local", "local:/// (a model already on the node).",
                            {{"path", &LocalStorageUri::path}});
  bind_uri<VendorStorageUri>(m, "VendorStorageUri", "vendor", "vendor:// (served by a vendor; nothing to download).",
                             {{"vendor", &VendorStorageUri::vendor},
                              {"resource_type", &VendorStorageUri::resource_type},
                              {"resource_path", &VendorStorageUri::resource_path}});
  bind_uri<S3StorageUri>(m, "S3StorageUri", "s3", "s3:// (Amazon S3 or compatible).",
                         {{"bucket", &S3StorageUri::bucket},
                          {"region", &S3StorageUri::region},
                          {"prefix", &S3StorageUri::prefix}});
  bind_uri<GcsStorageUri>(m, "GcsStorageUri", "gs", "gs:// (Google Cloud Storage).",
                          {{"bucket", &GcsStorageUri::bucket}, {"prefix", &GcsStorageUri::prefix}});
  bind_uri<AzureStorageUri>(m, "AzureStorageUri", "az", "az:// (Azure Blob Storage).",
                            {{"account", &AzureStorageUri::account},
                             {"container", &AzureStorageUri::container},
                             {"path", &AzureStorageUri::path}});
  bind_uri<GitHubStorageUri>(m, "GitHubStorageUri", "github", "github:// (a GitHub release).",
                             {{"owner", &GitHubStorageUri::owner},
                              {"repo", &GitHubStorageUri::repo},
                              {"tag", &GitHubStorageUri::tag}});

  m.def(
      "parse_storage_uri",
      [](std::string_view uri) {
        return std::visit([](auto&& value) { return py::cast(std::move(value)); }, parse_storage_uri(uri));
      },
      py::arg("uri"),
      "Parse a storage URI into its scheme's StorageUri subclass; raises InvalidStorageUri naming the fault.");
}

}  // namespace modelagent::bindings
