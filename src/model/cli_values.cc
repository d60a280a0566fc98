// Value-level pieces of the command line: byte sizes, layout strings, edit distance, and the
// argparse-compatible scalar parsers used by the option table in cli_args.cc.
#include "model/cli_values.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "model/cli_args.h"

namespace mcaconv {
namespace {

// Megatron layouts are a few hundred characters; this bound only stops "t*999999999" from
// exhausting memory.
constexpr size_t kMaxExpandedLayout = size_t{1} << 20;

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view StripSpace(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Length of the run of ASCII digits starting at `pos`.
size_t DigitRun(std::string_view text, size_t pos) {
  size_t end = pos;
  while (end < text.size() && IsDigit(text[end])) ++end;
  return end - pos;
}

// Repeat count of a layout multiplication; the expansion bound is checked by the caller.
size_t RepeatCount(std::string_view digits, std::string_view layout) {
  size_t n = 0;
  for (char c : digits) {
    if (n > kMaxExpandedLayout) break;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  if (n > kMaxExpandedLayout) {
    ThrowUsage("--pipeline_model_parallel_layout '" + std::string(layout) + "': repeat count " +
               std::string(digits) + " is too large");
  }
  return n;
}

void AppendRepeated(std::string& out, std::string_view unit, size_t count,
                    std::string_view layout) {
  if (!unit.empty() && count > (kMaxExpandedLayout - out.size()) / unit.size()) {
    ThrowUsage("--pipeline_model_parallel_layout '" + std::string(layout) +
               "' expands to more than " + std::to_string(kMaxExpandedLayout) + " characters");
  }
  for (size_t i = 0; i < count; ++i) out.append(unit);
}

// One left-to-right, non-overlapping pass of the regex \(([^)]+)\)\*(\d+) -> group1 * n.
std::string ExpandGroups(std::string_view text, std::string_view layout) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '(') {
      size_t close = text.find(')', i + 1);
      if (close != std::string_view::npos && close > i + 1 && close + 1 < text.size() &&
          text[close + 1] == '*') {
        size_t digits = DigitRun(text, close + 2);
        if (digits > 0) {
          std::string_view unit = text.substr(i + 1, close - i - 1);
          AppendRepeated(out, unit, RepeatCount(text.substr(close + 2, digits), layout), layout);
          i = close + 2 + digits;
          continue;
        }
      }
    }
    AppendRepeated(out, text.substr(i, 1), 1, layout);
    ++i;
  }
  return out;
}

// One left-to-right, non-overlapping pass of the regex (.)\*(\d+) -> group1 * n ('.' is not
// a newline, as in Python).
std::string ExpandSingles(std::string_view text, std::string_view layout) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '\n' && i + 1 < text.size() && text[i + 1] == '*') {
      size_t digits = DigitRun(text, i + 2);
      if (digits > 0) {
        AppendRepeated(out, text.substr(i, 1), RepeatCount(text.substr(i + 2, digits), layout),
                       layout);
        i += 2 + digits;
        continue;
      }
    }
    AppendRepeated(out, text.substr(i, 1), 1, layout);
    ++i;
  }
  return out;
}

// Python int(): surrounding whitespace, an optional sign, digits with single underscores
// between them. Returns nullopt when the text is not an integer or overflows int64.
std::optional<int64_t> PythonInt(std::string_view text) {
  text = StripSpace(text);
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty() || !IsDigit(text.front()) || !IsDigit(text.back())) return std::nullopt;
  uint64_t magnitude = 0;
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '_') {
      if (!IsDigit(text[i + 1])) return std::nullopt;  // text ends with a digit: i + 1 is valid
      continue;
    }
    if (!IsDigit(c)) return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (magnitude > (limit - digit) / 10) return std::nullopt;
    magnitude = magnitude * 10 + digit;
  }
  if (!negative) return static_cast<int64_t>(magnitude);
  return magnitude == (uint64_t{1} << 63) ? INT64_MIN : -static_cast<int64_t>(magnitude);
}

}  // namespace

std::string Quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

bool ParseBoolValue(std::string_view flag, std::string_view value) {
  std::string lowered = Lower(value);
  for (std::string_view yes : {"yes", "true", "t", "y", "1"}) {
    if (lowered == yes) return true;
  }
  for (std::string_view no : {"no", "false", "f", "n", "0"}) {
    if (lowered == no) return false;
  }
  ThrowUsage("argument " + std::string(flag) + ": invalid bool value " + Quoted(value) +
             " (expected yes/true/t/y/1 or no/false/f/n/0)");
}

int64_t ParseIntValue(std::string_view flag, std::string_view value, int64_t min, int64_t max) {
  std::optional<int64_t> parsed = PythonInt(value);
  if (!parsed) ThrowUsage("argument " + std::string(flag) + ": invalid int value " + Quoted(value));
  if (*parsed < min || *parsed > max) {
    ThrowUsage("argument " + std::string(flag) + ": " + Quoted(value) + " is out of range [" +
               std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return *parsed;
}

double ParseFloatValue(std::string_view flag, std::string_view value) {
  std::string_view text = StripSpace(value);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  double result = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), result);
  bool whole = !text.empty() && ec == std::errc() && end == text.data() + text.size();
  if (!whole || Lower(text).find('x') != std::string::npos) {
    ThrowUsage("argument " + std::string(flag) + ": invalid float value " + Quoted(value));
  }
  return result;
}

uint64_t ParseByteSize(std::string_view text) {
  struct Unit {
    std::string_view suffix;  // lower case
    uint64_t factor;
  };
  // Longer suffixes first so that "kib" is not read as "b".
  static constexpr Unit kUnits[] = {
      {"kib", uint64_t{1} << 10}, {"mib", uint64_t{1} << 20}, {"gib", uint64_t{1} << 30},
      {"tib", uint64_t{1} << 40}, {"kb", 1000},  {"mb", 1000 * 1000},
      {"gb", 1000 * 1000 * 1000}, {"tb", uint64_t{1000} * 1000 * 1000 * 1000}, {"b", 1},
  };
  const std::string invalid = "invalid size " + Quoted(text) +
                              " (expected bytes or a whole number with KB/MB/GB/TB or "
                              "KiB/MiB/GiB/TiB, e.g. 5GB)";
  std::string lowered = Lower(StripSpace(text));
  uint64_t factor = 1;
  for (const Unit& unit : kUnits) {
    if (lowered.size() > unit.suffix.size() && lowered.ends_with(unit.suffix)) {
      factor = unit.factor;
      lowered.resize(lowered.size() - unit.suffix.size());
      break;
    }
  }
  while (!lowered.empty() && lowered.back() == ' ') lowered.pop_back();
  if (lowered.empty() || DigitRun(lowered, 0) != lowered.size()) ThrowUsage(invalid);
  uint64_t number = 0;
  auto [end, ec] = std::from_chars(lowered.data(), lowered.data() + lowered.size(), number);
  if (ec != std::errc() || number > std::numeric_limits<uint64_t>::max() / factor) {
    ThrowUsage("size " + Quoted(text) + " is too large");
  }
  if (number == 0) ThrowUsage("size " + Quoted(text) + " must be positive");
  return number * factor;
}

int CountLayoutStages(std::string_view layout) {
  std::string text;
  for (char c : layout) {
    if (c != ',') text.push_back(c);
  }
  text = ExpandSingles(ExpandGroups(text, layout), layout);

  int stages = 1;
  for (char c : text) {
    if (c == '|') {
      ++stages;
      continue;
    }
    if (c != 'E' && c != 'L' && c != 't' && c != 'm') {
      ThrowUsage("--pipeline_model_parallel_layout " + Quoted(layout) +
                 ": invalid layer character " + Quoted(std::string(1, c)) +
                 " (known: E, L, t, m, stage separator |)");
    }
  }
  return stages;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> SplitCommas(std::string_view text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    parts.emplace_back(text.substr(start, comma - start));
    if (comma == std::string_view::npos) return parts;
    start = comma + 1;
  }
}

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, end);
  // Python's repr marks integral floats: 3.0, not 3.
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

}  // namespace mcaconv
