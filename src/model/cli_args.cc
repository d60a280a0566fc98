// Walks argv against the option table (cli_options.h), applies the reference's post-parse rules,
// and renders --help from the same table.
#include "model/cli_args.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/cli_options.h"
#include "model/cli_values.h"

namespace mcaconv {
namespace {

constexpr size_t kHelpWidth = 100;
constexpr size_t kHelpColumn = 40;

const std::vector<std::string> kCommands = {"convert", "inspect", "rewrite", "help"};

// argparse's notion of a negative number ('^-\d+$|^-\d*\.\d+$'), which it lets through as a value.
bool IsNegativeNumber(std::string_view token) {
  if (token.size() < 2 || token[0] != '-') return false;
  std::string_view rest = token.substr(1);
  size_t dot = rest.find('.');
  auto all_digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (dot == std::string_view::npos) return all_digits(rest);
  return dot + 1 < rest.size() && all_digits(rest.substr(0, dot)) &&
         all_digits(rest.substr(dot + 1));
}

// Whether argparse would read `token` as an option rather than as a value.
bool LooksLikeFlag(std::string_view token) {
  if (token.size() < 2 || token[0] != '-') return false;
  if (FindOption(std::string(token)) != nullptr) return true;
  return !IsNegativeNumber(token) && token.find(' ') == std::string_view::npos;
}

// "--foo-bar=1" -> "foo_bar".
std::string Normalize(std::string_view flag) {
  while (!flag.empty() && flag.front() == '-') flag.remove_prefix(1);
  std::string out(flag);
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

// The closest known spelling of an unknown flag, in the user's dash style, or "".
std::string SuggestFlag(const std::string& flag) {
  const std::string wanted = Normalize(flag);
  if (wanted.empty()) return "";
  const bool dashed = flag.size() > 2 && flag.find('-', 2) != std::string::npos;
  const Option* best = nullptr;
  size_t best_distance = SIZE_MAX;
  std::string best_short;
  for (const Option& option : Options()) {
    if (!option.name.empty()) {
      // A prefix is what argparse would have accepted as an abbreviation: point at the flag.
      size_t distance = option.name.starts_with(wanted) ? 0 : EditDistance(wanted, option.name);
      if (distance < best_distance) {
        best = &option;
        best_distance = distance;
        best_short.clear();
      }
    }
    for (const std::string& s : option.shorts) {
      size_t distance = EditDistance(flag, s);
      if (distance < best_distance) {
        best = &option;
        best_distance = distance;
        best_short = s;
      }
    }
  }
  if (best == nullptr || best_distance > std::max<size_t>(2, wanted.size() * 2 / 5)) return "";
  if (!best_short.empty()) return best_short;
  return "--" + (dashed ? Dashed(best->name) : best->name);
}

[[noreturn]] void ThrowUnknownFlag(const std::string& flag) {
  std::string message = "unknown flag " + flag;
  std::string suggestion = SuggestFlag(flag);
  if (!suggestion.empty()) message += "; did you mean " + suggestion + "?";
  if (!suggestion.empty() && Normalize(suggestion).starts_with(Normalize(flag))) {
    message += " (abbreviated flags are not accepted)";
  }
  ThrowUsage(message);
}

// Reads one option (and its value) starting at tokens[i]; returns the index of the last token used.
size_t ApplyOne(const std::vector<std::string>& tokens, size_t i, ParseState& state) {
  const std::string& token = tokens[i];
  Occurrence occurrence{token, std::nullopt};
  size_t equals = token.find('=');
  if (token.starts_with("--") && equals != std::string::npos) {
    occurrence.flag = token.substr(0, equals);
    occurrence.value = token.substr(equals + 1);
  }
  const Option* option = FindOption(occurrence.flag);
  if (option == nullptr) ThrowUnknownFlag(occurrence.flag);

  const bool next_is_value = i + 1 < tokens.size() && !LooksLikeFlag(tokens[i + 1]);
  switch (option->arity) {
    case Arity::kNone:
      if (occurrence.value) {
        ThrowUsage("argument " + occurrence.flag + ": ignored explicit argument " +
                   Quoted(*occurrence.value));
      }
      break;
    case Arity::kOptional:
      if (!occurrence.value && next_is_value) occurrence.value = tokens[++i];
      break;
    case Arity::kRequired:
      if (!occurrence.value && !next_is_value) {
        ThrowUsage("argument " + occurrence.flag + ": expected one argument");
      }
      if (!occurrence.value) occurrence.value = tokens[++i];
      break;
  }
  if (option->apply) option->apply(state, occurrence);
  state.given.insert(option->name);
  return i;
}

// The reference's __post_init__ rules, in its order, then our own combinations.
void Validate(ParseState& state) {
  ConvertArgs& args = state.args;
  ParallelArgs& parallel = args.parallel;
  if (!state.given.count("checkpoint_path")) {
    ThrowUsage("the following arguments are required: --checkpoint_path "
               "(run 'mca-convert --help' for usage)");
  }
  if (args.bf16 && args.fp16) ThrowUsage("--bf16 and --fp16 cannot both be true");
  if (parallel.variable_seq_lengths && parallel.moe_token_dispatcher_type == "allgather") {
    ThrowUsage("--variable_seq_lengths is not supported by the allgather token dispatcher; "
               "use --moe_token_dispatcher_type alltoall");
  }
  if (parallel.pipeline_model_parallel_layout) {
    // Validate the layout even when nothing is derived from it, so mistakes surface early.
    const std::string& layout = *parallel.pipeline_model_parallel_layout;
    int stages = CountLayoutStages(layout);
    if (parallel.pipeline_model_parallel_size && !parallel.virtual_pipeline_model_parallel_size) {
      int pp = *parallel.pipeline_model_parallel_size;
      if (stages % pp != 0) {
        ThrowUsage("--pipeline_model_parallel_layout " + Quoted(layout) + " has " +
                   std::to_string(stages) + " stages, not divisible by "
                   "--pipeline_model_parallel_size " + std::to_string(pp));
      }
      int vpp = stages / pp;
      if (vpp != 1) parallel.virtual_pipeline_model_parallel_size = vpp;
    }
  }
  if (state.given.count("replica_tolerance") && args.replica_check != "tolerance") {
    ThrowUsage("--replica_tolerance only applies with --replica_check tolerance");
  }
}

ParsedCommand ParseConvert(const std::vector<std::string>& tokens) {
  ParsedCommand result;
  // argparse acts on -h and --version as soon as it meets them, before reporting missing flags.
  for (const std::string& token : tokens) {
    if (token == "--") break;
    const Option* option = FindOption(token);
    if (option != nullptr && option->name == "help") return {Command::kHelp, {}, {}, {}};
    if (option != nullptr && option->name == "version") return {Command::kVersion, {}, {}, {}};
  }
  ParseState state;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == "--" || !LooksLikeFlag(tokens[i])) {
      ThrowUsage("unexpected argument " + Quoted(tokens[i]) +
                 " (conversion takes only --flags; run 'mca-convert --help')");
    }
    i = ApplyOne(tokens, i, state);
  }
  Validate(state);
  result.convert = std::move(state.args);
  return result;
}

ParsedCommand ParseInspect(const std::vector<std::string>& tokens) {
  ParsedCommand result;
  result.command = Command::kInspect;
  bool have_path = false;
  bool flags_done = false;
  for (const std::string& token : tokens) {
    if (!flags_done && token == "--") {
      flags_done = true;
      continue;
    }
    if (!flags_done && token.size() > 1 && token[0] == '-') {
      if (token == "--json") {
        result.inspect.json = true;
        continue;
      }
      if (token == "-h" || token == "--help") return {Command::kHelp, {}, {}, {}};
      bool close = EditDistance(Normalize(token), "json") <= 2;
      ThrowUsage("unknown flag " + token + " for inspect" +
                 (close ? "; did you mean --json?" : " (inspect takes PATH [--json])"));
    }
    if (have_path) {
      ThrowUsage("inspect takes one PATH; got " + Quoted(result.inspect.path) + " and " +
                 Quoted(token));
    }
    result.inspect.path = token;
    have_path = true;
  }
  if (!have_path) ThrowUsage("inspect needs a PATH (usage: mca-convert inspect PATH [--json])");
  return result;
}

// Sets the cast target of `rewrite` once; a second, different target is a usage error.
void SetRewriteCast(RewriteArgs& args, DType dtype, const std::string& flag) {
  if (args.cast && *args.cast != dtype) {
    ThrowUsage("rewrite: " + flag + " conflicts with an earlier cast flag (give one of --bf16, "
               "--fp16, --fp32)");
  }
  args.cast = dtype;
}

int ParseRewriteThreads(const std::string& text) {
  constexpr int kMaxRewriteThreads = 4096;
  const bool digits = !text.empty() && text.size() <= 4 &&
                      std::all_of(text.begin(), text.end(), [](char c) {
                        return c >= '0' && c <= '9';
                      });
  const int value = digits ? std::stoi(text) : -1;
  if (value < 0 || value > kMaxRewriteThreads) {
    ThrowUsage("rewrite: --threads expects an integer from 0 to 4096, got " + Quoted(text));
  }
  return value;
}

ParsedCommand ParseRewrite(const std::vector<std::string>& tokens) {
  constexpr std::string_view kUsage =
      " (usage: mca-convert rewrite IN OUT [--bf16|--fp16|--fp32] [--threads N])";
  ParsedCommand result;
  result.command = Command::kRewrite;
  RewriteArgs& args = result.rewrite;
  std::vector<std::string> paths;
  bool flags_done = false;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& token = tokens[i];
    if (!flags_done && token == "--") {
      flags_done = true;
      continue;
    }
    if (flags_done || token.size() < 2 || token[0] != '-') {
      paths.push_back(token);
      continue;
    }
    if (token == "-h" || token == "--help") return {Command::kHelp, {}, {}, {}};
    if (token == "--bf16") {
      SetRewriteCast(args, DType::BF16, token);
    } else if (token == "--fp16") {
      SetRewriteCast(args, DType::F16, token);
    } else if (token == "--fp32") {
      SetRewriteCast(args, DType::F32, token);
    } else if (token == "--threads" && i + 1 < tokens.size()) {
      args.threads = ParseRewriteThreads(tokens[++i]);
    } else if (token.starts_with("--threads=")) {
      args.threads = ParseRewriteThreads(token.substr(10));
    } else if (token == "--threads") {
      ThrowUsage("rewrite: --threads expects one argument");
    } else {
      ThrowUsage("unknown flag " + token + " for rewrite" + std::string(kUsage));
    }
  }
  if (paths.size() != 2) {
    ThrowUsage("rewrite takes IN and OUT; got " + std::to_string(paths.size()) + " path(s)" +
               std::string(kUsage));
  }
  args.input = paths[0];
  args.output = paths[1];
  return result;
}

void AppendWrapped(std::string& out, std::string_view text, size_t indent) {
  size_t column = indent;
  bool first = true;
  while (!text.empty()) {
    size_t space = text.find(' ');
    std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (word.empty()) continue;
    if (!first && column + 1 + word.size() > kHelpWidth) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    } else if (!first) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    first = false;
  }
  out += '\n';
}

void AppendOption(std::string& out, const Option& option, const ConvertArgs& defaults) {
  std::string spelled;
  std::vector<std::string> spellings = Spellings(option);
  // Short forms first ("-q, --quiet"), the dashed twin is implied by the note above the list.
  for (const std::string& s : option.shorts) spelled += s + ", ";
  spelled += spellings.front();
  if (!option.metavar.empty()) spelled += " " + option.metavar;
  std::string help = option.help;
  if (option.show_default) help += " [default: " + option.show_default(defaults) + "]";
  out += "  " + spelled;
  if (2 + spelled.size() + 2 > kHelpColumn) {
    out += "\n" + std::string(kHelpColumn, ' ');
  } else {
    out += std::string(kHelpColumn - 2 - spelled.size(), ' ');
  }
  AppendWrapped(out, help, kHelpColumn);
}

void AppendGroup(std::string& out, OptionGroup group, std::string_view heading) {
  const ConvertArgs defaults;
  out += "\n";
  AppendWrapped(out, heading, 0);
  for (const Option& option : Options()) {
    if (option.group == group && !option.hidden) AppendOption(out, option, defaults);
  }
}

}  // namespace

ParsedCommand ParseCommandLine(int argc, const char* const* argv) {
  std::vector<std::string> tokens;
  for (int i = 1; i < argc; ++i) tokens.emplace_back(argv[i] ? argv[i] : "");
  if (tokens.empty()) {
    ThrowUsage("the following arguments are required: --checkpoint_path "
               "(run 'mca-convert --help' for usage)");
  }
  const std::string first = tokens.front();
  if (first.starts_with("-")) return ParseConvert(tokens);
  tokens.erase(tokens.begin());
  if (first == "convert") return ParseConvert(tokens);
  if (first == "inspect") return ParseInspect(tokens);
  if (first == "rewrite") return ParseRewrite(tokens);
  if (first == "help") return {Command::kHelp, {}, {}, {}};

  std::string message = "unknown command " + Quoted(first);
  for (const std::string& command : kCommands) {
    if (EditDistance(first, command) <= 2) {
      ThrowUsage(message + "; did you mean '" + command + "'?");
    }
  }
  ThrowUsage(message + " (commands: convert, inspect, rewrite, help)");
}

std::string HelpText() {
  std::string out =
      "usage: mca-convert [convert] --checkpoint_path DIR [options]\n"
      "       mca-convert inspect PATH [--json]\n"
      "       mca-convert rewrite IN OUT [--bf16|--fp16|--fp32] [--threads N]\n"
      "       mca-convert help | --help | --version\n\n";
  AppendWrapped(out,
                "Converts checkpoints between HuggingFace and Megatron-Core/ROLL (MCA) format. "
                "The direction follows the input: if --adapter_path (or else --checkpoint_path) "
                "holds mca_config.json the conversion is MCA->HF, otherwise HF->MCA.",
                0);
  out += "\n";
  AppendWrapped(out,
                "Every --foo_bar flag is also accepted as --foo-bar; values are given as "
                "'--flag VALUE' or '--flag=VALUE'. [BOOL] flags may stand alone (true) or take "
                "yes/true/t/y/1 or no/false/f/n/0; BOOL flags require that value. Abbreviated "
                "flags are rejected. Exit status: 0 success, 1 conversion failure, 2 usage error.",
                0);
  AppendGroup(out, OptionGroup::kConvert, "Conversion (the reference's ConvertArguments):");
  AppendGroup(out, OptionGroup::kParallel,
              "Parallelism and model options (the reference's DistributingParallelArguments; "
              "HF->MCA records them in mca_config.json, MCA->HF ignores them):");
  AppendGroup(out, OptionGroup::kOurs, "mca-convert options (not in the reference):");
  out += "\ninspect PATH: list the tensors of a .safetensors file, a torch .pt/.bin file, an HF "
         "model\n"
         "folder or an MCA checkpoint folder (name, dtype, shape, bytes, file).\n";
  Option json;
  json.name = "json";
  json.arity = Arity::kNone;
  json.help = "Print one JSON document instead of a table.";
  AppendOption(out, json, ConvertArgs());
  out += "\n";
  AppendWrapped(out,
                "rewrite IN OUT: copy every tensor of one .safetensors or torch .pt/.bin file "
                "into OUT, stored contiguously; OUT is safetensors if its name ends in "
                ".safetensors, else a torch.save file holding a flat dict (nested torch keys are "
                "joined with '/', non-tensor values dropped). --bf16, --fp16 or --fp32 casts "
                "float32/bfloat16/float16 tensors; --threads N (0: one per CPU).",
                0);
  return out;
}

}  // namespace mcaconv
