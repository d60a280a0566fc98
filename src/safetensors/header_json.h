// Parsing of the safetensors JSON header into a DOM that also remembers key order, rejecting
// duplicate keys (which nlohmann's DOM parser would silently collapse) and nesting deeper than
// serde_json allows. Private to src/safetensors.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace mcaconv::safetensors_internal {

inline constexpr int kMaxJsonDepth = 128;  // serde_json's recursion limit

struct HeaderJson {
  nlohmann::json doc;
  // Text order, which the DOM (a sorted map) loses. nlohmann::ordered_json would keep it but
  // inserts in linear time, and the callback parser rescans parents: both quadratic over a
  // header of 100k tensors.
  std::vector<std::string> keys;           // of the outermost object
  std::vector<std::string> metadata_keys;  // of the "__metadata__" object, if it is one
};

struct HeaderJsonProblem {
  size_t offset = 0;  // within the header text
  std::string entry;  // the top-level key involved, or empty
  std::string what;
};

// Parses `text` into *out. On failure returns the problem and leaves *out unspecified.
std::optional<HeaderJsonProblem> ParseHeaderJson(std::string_view text, HeaderJson* out);

}  // namespace mcaconv::safetensors_internal
