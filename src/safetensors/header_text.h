// Text helpers for the safetensors JSON header: UTF-8 validation, serde_json-compatible string
// escaping, and a structural scan that locates the keys of the outermost object. Private to
// src/safetensors.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mcaconv::safetensors_internal {

// Index of the first byte of `text` that does not belong to a well-formed UTF-8 sequence
// (overlong forms, surrogates and code points above U+10FFFF are ill-formed), or
// std::string_view::npos when all of `text` is valid.
size_t FindInvalidUtf8(std::string_view text);

// Appends `text` as a JSON string literal, escaped byte for byte as serde_json's compact writer
// does: \" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx, everything else verbatim.
// `text` must be valid UTF-8.
void AppendJsonString(std::string_view text, std::string* out);

// `text` quoted with AppendJsonString after replacing invalid UTF-8; for one-line error messages.
std::string Quote(std::string_view text);

// Offsets within `json` of the opening quote of each key of the outermost object, in text order.
// Never reads outside `json`; on malformed input the result is incomplete but harmless.
std::vector<size_t> TopLevelKeyOffsets(std::string_view json);

}  // namespace mcaconv::safetensors_internal
