#include <gtest/gtest.h>

#include <string>

#include "modelagent/version.hpp"

TEST(Version, IsSemver) { EXPECT_FALSE(std::string(modelagent::kVersion).empty()); }
