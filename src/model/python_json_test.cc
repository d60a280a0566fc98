#include "model/python_json.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mcaconv {
namespace {

using nlohmann::json;

json LoadCases() {
  std::ifstream in(std::string(MCACONV_TEST_DATA_DIR) + "/configs/python_json_cases.json");
  EXPECT_TRUE(in.good());
  return json::parse(in);
}

double SpecialFloat(const std::string& name) {
  if (name == "inf") return std::numeric_limits<double>::infinity();
  if (name == "-inf") return -std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();
}

// Every expectation was written by Python's json.dumps (tests/data/configs/
// make_config_fixtures.py), so these cases compare against the real serializer.
TEST(PythonJsonTest, MatchesPythonForEveryRecordedCase) {
  const json cases = LoadCases();
  ASSERT_GT(cases.size(), 100u);
  for (const json& c : cases) {
    const json value = c.contains("float_special")
                           ? json(SpecialFloat(c["float_special"].get<std::string>()))
                           : json::parse(c["input_text"].get<std::string>());
    EXPECT_EQ(DumpPythonJson(value), c["expected"].get<std::string>())
        << "input: " << c.dump();
  }
}

TEST(PythonJsonTest, FloatReprSpotChecks) {
  EXPECT_EQ(PythonFloatRepr(1e-06), "1e-06");
  EXPECT_EQ(PythonFloatRepr(0.0), "0.0");
  EXPECT_EQ(PythonFloatRepr(-0.0), "-0.0");
  EXPECT_EQ(PythonFloatRepr(10000.0), "10000.0");
  EXPECT_EQ(PythonFloatRepr(1e20), "1e+20");
  EXPECT_EQ(PythonFloatRepr(0.0001), "0.0001");
  EXPECT_EQ(PythonFloatRepr(1e16), "1e+16");
  EXPECT_EQ(PythonFloatRepr(1e15), "1000000000000000.0");
}

TEST(PythonJsonTest, RejectsInvalidUtf8) {
  const json bad = std::string("ab\xff");
  EXPECT_THROW(DumpPythonJson(bad), Error);
  const json truncated = std::string("\xe4\xb8");
  EXPECT_THROW(DumpPythonJson(truncated), Error);
  const json surrogate = std::string("\xed\xa0\x80");
  EXPECT_THROW(DumpPythonJson(surrogate), Error);
}

}  // namespace
}  // namespace mcaconv
