#pragma once
// Exception types of the core. Each maps to a Python exception of the same meaning in
// modelagent._core (see cpp/bindings/module.cpp); messages always name the file, field or URL at fault.

#include <stdexcept>
#include <string>

namespace modelagent {

// Base of every error the core raises on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A storage URI that does not parse (scheme unknown, parts missing or malformed).
class InvalidStorageUri : public Error {
 public:
  using Error::Error;
};

// A model directory without a usable config.json, or a config.json that is malformed.
class ModelConfigError : public Error {
 public:
  using Error::Error;
};

// A safetensors file whose header is malformed, hostile or inconsistent with the file.
class SafetensorsError : public Error {
 public:
  using Error::Error;
};

// A ConfigMap entry (ModelEntry JSON) that cannot be parsed.
class ModelEntryError : public Error {
 public:
  using Error::Error;
};

}  // namespace modelagent
