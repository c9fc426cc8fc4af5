#include <gtest/gtest.h>

#include "modelagent/model_metadata.hpp"

using modelagent::format_parameter_size;

TEST(ParameterSize, IssueExamples) {
  EXPECT_EQ(format_parameter_size(8030261248ull), "8.03B");
  EXPECT_EQ(format_parameter_size(7000000000ull), "7B");
  EXPECT_EQ(format_parameter_size(1500000ull), "1.5M");
  EXPECT_EQ(format_parameter_size(46702792704ull), "46.7B");
  EXPECT_EQ(format_parameter_size(1510000000000ull), "1.51T");
  EXPECT_EQ(format_parameter_size(151500ull), "151.5K");
  EXPECT_EQ(format_parameter_size(999ull), "999");
}

TEST(ParameterSize, SmallValuesArePlainIntegers) {
  EXPECT_EQ(format_parameter_size(0), "0");
  EXPECT_EQ(format_parameter_size(1), "1");
  EXPECT_EQ(format_parameter_size(1000), "1K");
}

TEST(ParameterSize, OmesTableWithoutFloatNoise) {
  EXPECT_EQ(format_parameter_size(1000000), "1M");
  EXPECT_EQ(format_parameter_size(10000000), "10M");
  EXPECT_EQ(format_parameter_size(1000000000), "1B");
  EXPECT_EQ(format_parameter_size(1500000000), "1.5B");
  EXPECT_EQ(format_parameter_size(13000000000ull), "13B");
  EXPECT_EQ(format_parameter_size(70553706496ull), "70.55B");
  EXPECT_EQ(format_parameter_size(685000000000ull), "685B");
  EXPECT_EQ(format_parameter_size(1000000000000ull), "1T");
  EXPECT_EQ(format_parameter_size(10500000000ull), "10.5B");
  // OME prints these through float64 as 1.10M, 7.2B and 7.1B; exact arithmetic gives:
  EXPECT_EQ(format_parameter_size(1100000), "1.1M");
  EXPECT_EQ(format_parameter_size(7250000000ull), "7.25B");
  EXPECT_EQ(format_parameter_size(7110000000ull), "7.11B");
  EXPECT_EQ(format_parameter_size(1010000), "1.01M");
}

TEST(ParameterSize, RoundsHalfUpOnTheSecondDecimal) {
  EXPECT_EQ(format_parameter_size(1004999), "1M");
  EXPECT_EQ(format_parameter_size(1005000), "1.01M");
  EXPECT_EQ(format_parameter_size(1994999), "1.99M");
  EXPECT_EQ(format_parameter_size(1995000), "2M");
  EXPECT_EQ(format_parameter_size(8035000000ull), "8.04B");
  EXPECT_EQ(format_parameter_size(1250), "1.25K");
  EXPECT_EQ(format_parameter_size(1204), "1.2K");
}

TEST(ParameterSize, RoundingToAThousandMovesUpAUnit) {
  EXPECT_EQ(format_parameter_size(999994999), "999.99M");
  EXPECT_EQ(format_parameter_size(999995000), "1B");
  EXPECT_EQ(format_parameter_size(999995), "1M");
  EXPECT_EQ(format_parameter_size(999994), "999.99K");
  EXPECT_EQ(format_parameter_size(999999999999ull), "1T");
}

TEST(ParameterSize, LargestValuesStayInTeraUnits) {
  EXPECT_EQ(format_parameter_size(999999999999999ull), "1000T");
  EXPECT_EQ(format_parameter_size(18446744073709551615ull), "18446744.07T");
}
