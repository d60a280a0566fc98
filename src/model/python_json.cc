#include "model/python_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace mcaconv {
namespace {

using nlohmann::json;

void AppendEscapedUnit(uint32_t unit, std::string& out) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "\\u%04x", unit);
  out += buf;
}

// Decodes one UTF-8 sequence starting at s[i]; returns the code point and advances i.
uint32_t DecodeUtf8(std::string_view s, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t lead = byte(i);
  int extra = 0;
  uint32_t cp = 0;
  if (lead < 0x80) {
    ++i;
    return lead;
  } else if ((lead & 0xe0) == 0xc0) {
    extra = 1, cp = lead & 0x1f;
  } else if ((lead & 0xf0) == 0xe0) {
    extra = 2, cp = lead & 0x0f;
  } else if ((lead & 0xf8) == 0xf0) {
    extra = 3, cp = lead & 0x07;
  } else {
    ThrowInvalid("JSON string: invalid UTF-8 lead byte at string offset " + std::to_string(i));
  }
  if (s.size() - i <= static_cast<size_t>(extra)) {
    ThrowInvalid("JSON string: truncated UTF-8 sequence at string offset " + std::to_string(i));
  }
  for (int k = 1; k <= extra; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) {
      ThrowInvalid("JSON string: invalid UTF-8 continuation at string offset " +
                   std::to_string(i + k));
    }
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    ThrowInvalid("JSON string: invalid UTF-8 code point at string offset " + std::to_string(i));
  }
  i += extra + 1;
  return cp;
}

void AppendString(std::string_view s, std::string& out) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const uint32_t cp = DecodeUtf8(s, i);
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (cp >= 0x20 && cp <= 0x7e) {
      out += static_cast<char>(cp);
    } else if (cp < 0x10000) {
      AppendEscapedUnit(cp, out);
    } else {
      const uint32_t v = cp - 0x10000;
      AppendEscapedUnit(0xd800 | (v >> 10), out);
      AppendEscapedUnit(0xdc00 | (v & 0x3ff), out);
    }
  }
  out += '"';
}

void AppendFloat(double value, std::string& out) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "Infinity" : "-Infinity";
  } else {
    out += PythonFloatRepr(value);
  }
}

void AppendIndent(int depth, std::string& out) { out.append(static_cast<size_t>(depth) * 2, ' '); }

void AppendValue(const json& j, int depth, std::string& out);

void AppendObject(const json& j, int depth, std::string& out) {
  if (j.empty()) {
    out += "{}";
    return;
  }
  // Byte-wise comparison of UTF-8 keys orders them by code point, as Python's sort does.
  std::vector<const std::string*> keys;
  for (const auto& item : j.items()) keys.push_back(&item.key());
  std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) {
    return std::string_view(*a) < std::string_view(*b);
  });
  out += "{\n";
  for (size_t k = 0; k < keys.size(); ++k) {
    if (k > 0) out += ",\n";
    AppendIndent(depth + 1, out);
    AppendString(*keys[k], out);
    out += ": ";
    AppendValue(j.at(*keys[k]), depth + 1, out);
  }
  out += '\n';
  AppendIndent(depth, out);
  out += '}';
}

void AppendArray(const json& j, int depth, std::string& out) {
  if (j.empty()) {
    out += "[]";
    return;
  }
  out += "[\n";
  for (size_t k = 0; k < j.size(); ++k) {
    if (k > 0) out += ",\n";
    AppendIndent(depth + 1, out);
    AppendValue(j[k], depth + 1, out);
  }
  out += '\n';
  AppendIndent(depth, out);
  out += ']';
}

void AppendValue(const json& j, int depth, std::string& out) {
  switch (j.type()) {
    case json::value_t::object: AppendObject(j, depth, out); return;
    case json::value_t::array: AppendArray(j, depth, out); return;
    case json::value_t::string: AppendString(j.get_ref<const std::string&>(), out); return;
    case json::value_t::boolean: out += j.get<bool>() ? "true" : "false"; return;
    case json::value_t::number_integer: out += std::to_string(j.get<int64_t>()); return;
    case json::value_t::number_unsigned: out += std::to_string(j.get<uint64_t>()); return;
    case json::value_t::number_float: AppendFloat(j.get<double>(), out); return;
    case json::value_t::null:
    case json::value_t::discarded:
    case json::value_t::binary: out += "null"; return;
  }
}

}  // namespace

std::string PythonFloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form, e.g. "-1.2345e+05".
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  const size_t e_pos = sci.find('e');
  const bool negative = sci.front() == '-';
  std::string digits;
  for (char c : sci.substr(negative ? 1 : 0, e_pos - (negative ? 1 : 0))) {
    if (c != '.') digits += c;
  }
  const int exponent = std::atoi(std::string(sci.substr(e_pos + 1)).c_str());

  std::string out = negative ? "-" : "";
  // Python's repr switches to exponent form when the decimal point would sit more than 16
  // digits right of the first digit or 4 or more zeros left of it.
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exponent < 0 ? '-' : '+',
                  std::abs(exponent));
    return out + exp_buf;
  }
  if (exponent < 0) {
    return out + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  }
  const size_t int_len = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= int_len) {
    return out + digits + std::string(int_len - digits.size(), '0') + ".0";
  }
  return out + digits.substr(0, int_len) + "." + digits.substr(int_len);
}

std::string DumpPythonJson(const nlohmann::json& j) {
  std::string out;
  AppendValue(j, 0, out);
  return out;
}

}  // namespace mcaconv
