// Scalar parsers with argparse-compatible acceptance rules, shared by the option table of
// cli_args.cc. Internal to the command-line layer; every failure throws Error(kUsage) naming the
// flag as the user spelled it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mcaconv {

// "'text'".
std::string Quoted(std::string_view text);

// HfArgumentParser's string_to_bool: yes/true/t/y/1 and no/false/f/n/0, any case.
bool ParseBoolValue(std::string_view flag, std::string_view value);

// Python int() syntax (whitespace, sign, digit groups separated by single '_'), then [min, max].
int64_t ParseIntValue(std::string_view flag, std::string_view value, int64_t min, int64_t max);

// Python float() syntax for decimal numbers, inf and nan.
double ParseFloatValue(std::string_view flag, std::string_view value);

// str.split(","): "a,,b" -> {"a", "", "b"}, "" -> {""}.
std::vector<std::string> SplitCommas(std::string_view text);

// Shortest round-trip spelling of `value` as Python's repr writes it ("0.001", "3.0", "inf").
std::string FormatNumber(double value);

}  // namespace mcaconv
