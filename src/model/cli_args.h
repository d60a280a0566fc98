// The command line of `mca-convert`: which command to run and its arguments.
//
//   mca-convert [convert] --checkpoint_path DIR [options]   (no subcommand means convert)
//   mca-convert inspect PATH [--json]
//   mca-convert rewrite IN OUT [--bf16 | --fp16 | --fp32] [--threads N]   (model/rewrite.h)
//   mca-convert help | -h | --help
//   mca-convert --version
//
// Conversion options reproduce the reference HfArgumentParser (mca-format.md sections 9.2-9.4):
// every flag `--foo_bar` is also `--foo-bar`; values come as `--flag value` or `--flag=value`;
// plain bool flags may be bare (true) or take yes/true/t/y/1 or no/false/f/n/0 (any case);
// Optional[bool] flags require a value; choices are validated; the last repetition of a flag
// wins. The reference's post-parse rules run here too: bf16 with fp16 is an error,
// recompute_modules and cuda_graph_scope are split on ',', variable_seq_lengths needs the
// alltoall dispatcher, and a layout string with PP given and VPP not given derives VPP.
//
// Written by hand rather than with CLI11 because drop-in compatibility needs argparse's exact
// rules, which CLI11's option model does not express: bools that are bare or take one of
// argparse's spellings, --no_<flag> complements only for true-default bools, Optional[bool]
// flags that demand a value, and rejection of options that argparse would reject.
//
// Deliberate differences from argparse: prefix abbreviations (`--tensor_model` for
// `--tensor_model_parallel_size`) are rejected, because they silently change meaning when a new
// flag shares the prefix; an unknown flag is an error that suggests the closest known flag.
// Parallel sizes must be >= 1 (the reference fails later, inside Megatron).
//
// Every failure throws Error(kUsage) with a one-line message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/convert_args.h"
#include "model/rewrite.h"

namespace mcaconv {

// Keep in step with project(VERSION) in CMakeLists.txt.
inline constexpr std::string_view kMcaConvertVersion = "0.1.0";

enum class Command { kConvert, kInspect, kHelp, kVersion, kRewrite };

struct InspectArgs {
  std::string path;
  bool json = false;
};

struct ParsedCommand {
  Command command = Command::kConvert;
  ConvertArgs convert;  // valid when command == kConvert
  InspectArgs inspect;  // valid when command == kInspect
  RewriteArgs rewrite;  // valid when command == kRewrite
};

// Parses argv (argv[0] is the program name and is ignored). Throws Error(kUsage).
ParsedCommand ParseCommandLine(int argc, const char* const* argv);
inline ParsedCommand ParseCommandLine(int argc, char** argv) {
  const char* const* args = argv;
  return ParseCommandLine(argc, args);
}

// The full --help text: usage lines, the reference's flags, then ours, each with its default.
std::string HelpText();

// "5GB" -> 5000000000, "2GiB" -> 2147483648, "123" -> 123. Units KB/MB/GB/TB are decimal,
// KiB/MiB/GiB/TiB binary, a trailing "B" alone means bytes; unit letters are case-insensitive.
// The number must be a positive integer. Throws Error(kUsage) naming `text`.
uint64_t ParseByteSize(std::string_view text);

// Number of pipeline stages (PP * VPP) of a layout string, parsed as Megatron's
// PipelineParallelLayerLayout.parse_str_to_list does: drop ',', expand "(...)*n" then "x*n",
// split on '|'; every remaining character must be one of E, L, t, m. Throws Error(kUsage).
int CountLayoutStages(std::string_view layout);

// Levenshtein distance, used for did-you-mean suggestions.
size_t EditDistance(std::string_view a, std::string_view b);

}  // namespace mcaconv
