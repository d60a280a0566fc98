#include "safetensors/header_text.h"

#include <cstdint>

namespace mcaconv::safetensors_internal {
namespace {

// Length of the well-formed UTF-8 sequence starting at text[i], or 0 if it is ill-formed.
// The accepted ranges are those of the Unicode standard, table 3-7.
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  uint8_t second_min = 0x80;
  uint8_t second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // UTF-16 surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (text.size() - i < length) return 0;
  if (byte(i + 1) < second_min || byte(i + 1) > second_max) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

// Index just past the string literal whose opening quote is at json[i], or json.size().
size_t SkipString(std::string_view json, size_t i) {
  for (++i; i < json.size(); ++i) {
    if (json[i] == '\\') {
      ++i;
    } else if (json[i] == '"') {
      return i + 1;
    }
  }
  return json.size();
}

}  // namespace

size_t FindInvalidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

void AppendJsonString(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (const char c : text) {
    const auto byte = static_cast<uint8_t>(c);
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (byte < 0x20) {
          *out += "\\u00";
          out->push_back(kHex[byte >> 4]);
          out->push_back(kHex[byte & 0xF]);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string Quote(std::string_view text) {
  std::string clean;
  size_t i = 0;
  while (i < text.size()) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) {
      clean += "\xEF\xBF\xBD";  // U+FFFD replacement character
      ++i;
    } else {
      clean.append(text.substr(i, length));
      i += length;
    }
  }
  std::string out;
  AppendJsonString(clean, &out);
  return out;
}

std::vector<size_t> TopLevelKeyOffsets(std::string_view json) {
  std::vector<size_t> offsets;
  std::vector<char> open;  // stack of '{' and '['
  bool expect_key = false;
  size_t i = 0;
  while (i < json.size()) {
    const char c = json[i];
    if (c == '"') {
      if (expect_key && open.size() == 1) offsets.push_back(i);
      expect_key = false;
      i = SkipString(json, i);
      continue;
    }
    if (c == '{' || c == '[') {
      open.push_back(c);
      expect_key = c == '{' && open.size() == 1;
    } else if (c == '}' || c == ']') {
      if (open.empty()) break;
      open.pop_back();
      if (open.empty()) break;  // the outermost value has ended
    } else if (c == ',' && open.size() == 1 && open[0] == '{') {
      expect_key = true;
    }
    ++i;
  }
  return offsets;
}

}  // namespace mcaconv::safetensors_internal
