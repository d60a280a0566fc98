// The declarative option table behind ParseCommandLine (cli_args.h). Internal to the
// command-line layer: cli_options.cc defines the rows, cli_args.cc walks argv against them and
// renders --help from them.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "model/convert_args.h"

namespace mcaconv {

enum class OptionGroup { kConvert, kParallel, kOurs };

// kOptional is argparse's nargs='?': the next token is taken only if it does not look like a flag.
enum class Arity { kNone, kOptional, kRequired };

struct Occurrence {
  std::string flag;                  // as the user spelled it, without "=value"
  std::optional<std::string> value;  // absent for a bare flag; present whenever arity is kRequired
};

struct ParseState {
  ConvertArgs args;
  std::set<std::string> given;  // canonical names of the options that appeared
};

struct Option {
  std::string name;                 // canonical: "tensor_model_parallel_size"; "" if short-only
  std::vector<std::string> shorts;  // further exact spellings, e.g. "-q"
  Arity arity = Arity::kRequired;
  OptionGroup group = OptionGroup::kConvert;
  std::string metavar;
  std::string help;
  // Stores the value; throws Error(kUsage). Null for --help and --version, which the parser
  // handles before any other option.
  std::function<void(ParseState&, const Occurrence&)> apply;
  std::function<std::string(const ConvertArgs&)> show_default;  // empty: no default shown
  bool hidden = false;                                            // left out of --help
};

// Every option, reference flags first, in help order.
const std::vector<Option>& Options();

// The option spelled exactly `spelling` ("--foo_bar", "--foo-bar", "-q"), or nullptr.
const Option* FindOption(const std::string& spelling);

// Every accepted spelling of `option`, the canonical one first.
std::vector<std::string> Spellings(const Option& option);

// "foo_bar" -> "foo-bar".
std::string Dashed(const std::string& name);

}  // namespace mcaconv
