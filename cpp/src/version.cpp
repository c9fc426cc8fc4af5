#include "modelagent/version.hpp"
