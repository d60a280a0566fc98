// Byte-exact reproduction of Python's `json.dumps(obj, indent=2, sort_keys=True)`.
//
// mca_config.json, the `hf_config_json` string inside it, and the config.json we write back are
// all produced by that Python call in the reference, so matching it byte for byte lets users diff
// our output against ROLL's. The rules reproduced here:
//   * objects: keys sorted by Unicode code point, `"key": value`, items joined by ",\n", two
//     spaces of indentation per level; empty object `{}`, empty array `[]`;
//   * strings: ensure_ascii, i.e. `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, and `\uXXXX`
//     (lower-case hex) for every other character outside 0x20..0x7e; characters above U+FFFF as
//     a surrogate pair;
//   * floats: Python repr (shortest round-trip digits; exponent form `1e-06`, `1e+20` when the
//     decimal exponent is < -4 or >= 16, else positional with at least one fractional digit:
//     `0.0`, `10000.0`); inf/-inf/nan as `Infinity`/`-Infinity`/`NaN` (allow_nan=True);
//   * integers in decimal, `true`, `false`, `null`.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace mcaconv {

// Returns the text Python's json.dumps(j, indent=2, sort_keys=True) produces (no trailing
// newline). Throws Error(kInvalidInput) if a string in `j` is not valid UTF-8.
std::string DumpPythonJson(const nlohmann::json& j);

// Python repr() of a float, e.g. "1e-06", "0.0", "10000.0", "1e+20", "inf" (json.dumps writes
// non-finite values as Infinity/NaN; this function returns Python's repr spelling).
std::string PythonFloatRepr(double value);

}  // namespace mcaconv
