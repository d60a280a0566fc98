// The option table of `mca-convert convert`.
//
// Each row names one option: its canonical snake_case name (from which both the --foo_bar and
// --foo-bar spellings are derived), how many values it takes, its help line, and a handler that
// stores the value into ConvertArgs. Factories build rows for the value kinds the reference uses,
// so a row reads as "this field, this kind"; the same getter also renders the default shown by
// --help, which therefore cannot drift from convert_args.h.
#include "model/cli_options.h"

#include <algorithm>
#include <limits>
#include <map>

#include "core/error.h"
#include "model/cli_args.h"
#include "model/cli_values.h"

namespace mcaconv {
namespace {

constexpr int kMaxThreads = 4096;
constexpr int kIntMax = std::numeric_limits<int>::max();
constexpr int kIntMin = std::numeric_limits<int>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// Getters are generic lambdas `[](auto& a) -> auto& { return a.field; }`, usable on const and
// mutable ConvertArgs alike.
template <typename T>
struct Unwrap {
  using type = T;
};
template <typename T>
struct Unwrap<std::optional<T>> {
  using type = T;
};

std::string Show(bool v) { return v ? "true" : "false"; }
std::string Show(int v) { return std::to_string(v); }
std::string Show(int64_t v) { return std::to_string(v); }
std::string Show(double v) { return FormatNumber(v); }
std::string Show(const std::string& v) { return v; }
std::string Show(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}
template <typename T>
std::string Show(const std::optional<T>& v) {
  return v ? Show(*v) : "None";
}

Option Row(std::string name, Arity arity, OptionGroup group, std::string metavar,
           std::string help) {
  Option o;
  o.name = std::move(name);
  o.arity = arity;
  o.group = group;
  o.metavar = std::move(metavar);
  o.help = std::move(help);
  return o;
}

template <typename Get>
std::function<std::string(const ConvertArgs&)> Shower(Get get) {
  return [get](const ConvertArgs& a) { return Show(get(a)); };
}

template <typename Get>
Option Text(std::string name, OptionGroup group, std::string metavar, std::string help, Get get) {
  Option o = Row(std::move(name), Arity::kRequired, group, std::move(metavar), std::move(help));
  o.apply = [get](ParseState& s, const Occurrence& occ) { get(s.args) = *occ.value; };
  o.show_default = Shower(get);
  return o;
}

template <typename Get>
Option Integer(std::string name, OptionGroup group, std::string help, Get get, int64_t min,
               int64_t max) {
  Option o = Row(std::move(name), Arity::kRequired, group, "INT", std::move(help));
  o.apply = [get, min, max](ParseState& s, const Occurrence& occ) {
    using T = typename Unwrap<std::remove_reference_t<decltype(get(s.args))>>::type;
    get(s.args) = static_cast<T>(ParseIntValue(occ.flag, *occ.value, min, max));
  };
  o.show_default = Shower(get);
  return o;
}

template <typename Get>
Option Real(std::string name, OptionGroup group, std::string help, Get get) {
  Option o = Row(std::move(name), Arity::kRequired, group, "FLOAT", std::move(help));
  o.apply = [get](ParseState& s, const Occurrence& occ) {
    get(s.args) = ParseFloatValue(occ.flag, *occ.value);
  };
  o.show_default = Shower(get);
  return o;
}

// A plain bool: bare means true, or one explicit yes/no value.
template <typename Get>
Option Flag(std::string name, OptionGroup group, std::string help, Get get) {
  Option o = Row(std::move(name), Arity::kOptional, group, "[BOOL]", std::move(help));
  o.apply = [get](ParseState& s, const Occurrence& occ) {
    get(s.args) = occ.value ? ParseBoolValue(occ.flag, *occ.value) : true;
  };
  o.show_default = Shower(get);
  return o;
}

// An Optional[bool] defaulting to None: the value is required, as in the reference.
template <typename Get>
Option TriState(std::string name, OptionGroup group, std::string help, Get get) {
  Option o = Row(std::move(name), Arity::kRequired, group, "BOOL", std::move(help));
  o.apply = [get](ParseState& s, const Occurrence& occ) {
    get(s.args) = ParseBoolValue(occ.flag, *occ.value);
  };
  o.show_default = Shower(get);
  return o;
}

template <typename Get>
Option Choice(std::string name, OptionGroup group, std::vector<std::string> choices,
              std::string help, Get get) {
  std::string metavar = "{" + Show(choices) + "}";
  Option o = Row(std::move(name), Arity::kRequired, group, std::move(metavar), std::move(help));
  o.apply = [get, choices](ParseState& s, const Occurrence& occ) {
    if (std::find(choices.begin(), choices.end(), *occ.value) == choices.end()) {
      std::string list;
      for (const std::string& c : choices) list += (list.empty() ? "" : ", ") + Quoted(c);
      ThrowUsage("argument " + occ.flag + ": invalid choice: " + Quoted(*occ.value) +
                 " (choose from " + list + ")");
    }
    get(s.args) = *occ.value;
  };
  o.show_default = Shower(get);
  return o;
}

template <typename Get>
Option CommaList(std::string name, OptionGroup group, std::string help, Get get) {
  Option o = Row(std::move(name), Arity::kRequired, group, "A,B,..", std::move(help));
  o.apply = [get](ParseState& s, const Occurrence& occ) { get(s.args) = SplitCommas(*occ.value); };
  o.show_default = Shower(get);
  return o;
}

Option Custom(std::string name, std::vector<std::string> shorts, OptionGroup group, Arity arity,
              std::string metavar, std::string help,
              std::function<void(ParseState&, const Occurrence&)> apply) {
  Option o = Row(std::move(name), arity, group, std::move(metavar), std::move(help));
  o.shorts = std::move(shorts);
  o.apply = std::move(apply);
  return o;
}

// FIELD(parallel.fp8) is the getter of one ConvertArgs field; it keeps each table row on the
// field it sets rather than on lambda boilerplate.
#define FIELD(path) [](auto& a) -> auto& { return a.path; }

std::vector<Option> BuildReferenceOptions() {
  const OptionGroup c = OptionGroup::kConvert;
  const OptionGroup p = OptionGroup::kParallel;
  std::vector<Option> t;
  t.push_back(Text("checkpoint_path", c, "DIR",
                   "Input: an HF model directory (HF->MCA) or an MCA checkpoint directory "
                   "(MCA->HF; with --adapter_path, the HF base model). Required.",
                   FIELD(checkpoint_path)));
  t.back().show_default = nullptr;  // required: there is no default to show
  t.push_back(Text("adapter_path", c, "DIR", "MCA LoRA adapter directory (MCA->HF only).",
                   FIELD(adapter_path)));
  t.push_back(Text("output_path", c, "DIR", "Output directory.", FIELD(output_path)));
  t.push_back(Flag("bf16", c,
                   "HF->MCA: mark the config bf16 (tensors keep their dtype). MCA->HF: write bf16.",
                   FIELD(bf16)));
  t.push_back(Flag("fp16", c, "As --bf16, for float16. Cannot be combined with --bf16.",
                   FIELD(fp16)));
  t.push_back(Integer("convert_model_max_length", c,
                      "MCA->HF: model_max_length to record in the written config.",
                      FIELD(convert_model_max_length), 1, kInt64Max));

  t.push_back(Integer("tensor_model_parallel_size", p, "Tensor-parallel degree (None means 1).",
                      FIELD(parallel.tensor_model_parallel_size), 1, kIntMax));
  t.push_back(Integer("pipeline_model_parallel_size", p, "Pipeline-parallel degree (None means 1).",
                      FIELD(parallel.pipeline_model_parallel_size), 1, kIntMax));
  t.push_back(Flag("sequence_parallel", p, "Megatron sequence parallelism (training only).",
                   FIELD(parallel.sequence_parallel)));
  t.push_back(Integer("virtual_pipeline_model_parallel_size", p,
                      "Virtual pipeline stages per pipeline rank; when given (even 1) rank files "
                      "hold model0, model1, ... keys.",
                      FIELD(parallel.virtual_pipeline_model_parallel_size), 1, kIntMax));
  t.push_back(Integer("context_parallel_size", p, "Context-parallel degree (training only).",
                      FIELD(parallel.context_parallel_size), 1, kIntMax));
  t.push_back(Integer("expert_model_parallel_size", p, "Expert-parallel degree (None means 1).",
                      FIELD(parallel.expert_model_parallel_size), 1, kIntMax));
  t.push_back(Integer("expert_tensor_parallel_size", p,
                      "Expert tensor-parallel degree (None means the tensor-parallel degree).",
                      FIELD(parallel.expert_tensor_parallel_size), 1, kIntMax));
  t.push_back(TriState("account_for_embedding_in_pipeline_split", p,
                       "Count the embedding as a layer when splitting layers over stages.",
                       FIELD(parallel.account_for_embedding_in_pipeline_split)));
  t.push_back(TriState("account_for_loss_in_pipeline_split", p,
                       "Count the loss as a layer when splitting layers over stages.",
                       FIELD(parallel.account_for_loss_in_pipeline_split)));
  t.push_back(Text("pipeline_model_parallel_layout", p, "LAYOUT",
                   "Explicit stage layout, e.g. 'Et|tt|tt|tL' (E embedding, t layer, m MTP, "
                   "L loss, | between stages, (..)*n and x*n repeat). With the PP size given "
                   "and no VPP size, VPP = stages / PP.",
                   FIELD(parallel.pipeline_model_parallel_layout)));
  t.push_back(Flag("overlap_p2p_comm", p,
                   "Overlap pipeline communication with compute (virtual pipelines only).",
                   FIELD(parallel.overlap_p2p_comm)));
  // The reference's complement of a bool that defaults to true.
  t.push_back(Custom("no_overlap_p2p_comm", {}, p, Arity::kNone, "", "Turn --overlap_p2p_comm off.",
                     [](ParseState& s, const Occurrence&) {
                       s.args.parallel.overlap_p2p_comm = false;
                     }));
  t.push_back(Flag("variable_seq_lengths", p,
                   "Sequence lengths vary across micro-batches (needs the alltoall dispatcher).",
                   FIELD(parallel.variable_seq_lengths)));
  t.push_back(Choice("recompute_granularity", p, {"full", "selective"},
                     "Activation recomputation granularity.",
                     FIELD(parallel.recompute_granularity)));
  t.push_back(Choice("recompute_method", p, {"uniform", "recompute"},
                     "Activation recomputation method.", FIELD(parallel.recompute_method)));
  t.push_back(CommaList("recompute_modules", p, "Modules to recompute, comma-separated.",
                        FIELD(parallel.recompute_modules)));
  t.push_back(Integer("recompute_num_layers", p, "Layers per recomputation unit.",
                      FIELD(parallel.recompute_num_layers), kIntMin, kIntMax));
  t.push_back(Flag("bias_activation_fusion", p, "Fuse bias addition with the activation.",
                   FIELD(parallel.bias_activation_fusion)));
  t.push_back(Flag("apply_rope_fusion", p, "Use the fused rotary-embedding kernel.",
                   FIELD(parallel.apply_rope_fusion)));
  t.push_back(Flag("cross_entropy_loss_fusion", p, "Use fused cross-entropy kernels.",
                   FIELD(parallel.cross_entropy_loss_fusion)));
  t.push_back(Flag("moe_layer_recompute", p, "Recompute MoE layers in the backward pass.",
                   FIELD(parallel.moe_layer_recompute)));
  t.push_back(Choice("moe_token_dispatcher_type", p, {"allgather", "alltoall"},
                     "MoE token dispatcher.", FIELD(parallel.moe_token_dispatcher_type)));
  t.push_back(Real("moe_aux_loss_coeff", p, "MoE auxiliary-loss coefficient.",
                   FIELD(parallel.moe_aux_loss_coeff)));
  t.push_back(TriState("moe_grouped_gemm", p,
                       "Grouped expert GEMM; changes how expert weights are stored.",
                       FIELD(parallel.moe_grouped_gemm)));
  t.push_back(Real("moe_expert_capacity_factor", p, "Expert capacity factor (None: no dropping).",
                   FIELD(parallel.moe_expert_capacity_factor)));
  t.push_back(TriState("moe_pad_expert_input_to_capacity", p,
                       "Pad each expert's input up to its capacity.",
                       FIELD(parallel.moe_pad_expert_input_to_capacity)));
  t.push_back(Choice("moe_token_drop_policy", p, {"probs", "position"},
                     "Which tokens an over-capacity expert drops.",
                     FIELD(parallel.moe_token_drop_policy)));
  t.push_back(Flag("moe_shared_expert_overlap", p,
                   "Overlap shared-expert compute with token dispatch.",
                   FIELD(parallel.moe_shared_expert_overlap)));
  t.push_back(Flag("moe_enable_routing_replay", p, "Record and replay router decisions.",
                   FIELD(parallel.moe_enable_routing_replay)));
  t.push_back(Text("moe_router_dtype", p, "DTYPE", "Router compute dtype (e.g. fp32, fp64).",
                   FIELD(parallel.moe_router_dtype)));
  t.push_back(Integer("mtp_num_layers", p,
                      "Multi-token-prediction layers (0: none; families with MTP set their own).",
                      FIELD(parallel.mtp_num_layers), 0, kIntMax));
  t.push_back(Flag("calculate_per_token_loss", p, "Normalise the loss per token.",
                   FIELD(parallel.calculate_per_token_loss)));
  t.push_back(Choice("transformer_impl", p, {"local", "transformer_engine"},
                     "Megatron implementation; 'local' renames some weights (None means "
                     "transformer_engine).",
                     FIELD(parallel.transformer_impl)));
  t.push_back(Choice("cuda_graph_impl", p, {"local", "transformer_engine"},
                     "CUDA graph implementation.", FIELD(parallel.cuda_graph_impl)));
  t.push_back(CommaList("cuda_graph_scope", p, "CUDA graph scopes, comma-separated.",
                        FIELD(parallel.cuda_graph_scope)));
  t.push_back(Text("fp8_recipe", p, "RECIPE", "FP8 recipe.", FIELD(parallel.fp8_recipe)));
  t.push_back(Flag("fp8_param", p, "Keep parameters in FP8.", FIELD(parallel.fp8_param)));
  t.push_back(Text("fp8", p, "FORMAT", "FP8 format (e.g. e4m3, hybrid).", FIELD(parallel.fp8)));
  // Known so that it gets the reference's error rather than a did-you-mean.
  t.push_back(Custom(
      "additional_configs", {}, p, Arity::kRequired, "DICT",
      "Not usable from the command line: the reference rejects every value.",
      [](ParseState&, const Occurrence& occ) {
        ThrowUsage("argument " + occ.flag + ": invalid dict value: " + Quoted(*occ.value) +
                   " (the reference CLI cannot take this option from the command line)");
      }));
  return t;
}

void SetMaxShardSize(ParseState& s, const Occurrence& occ) {
  s.args.max_shard_size =
      WithContext("argument " + occ.flag, [&] { return ParseByteSize(*occ.value); });
}

void SetReplicaTolerance(ParseState& s, const Occurrence& occ) {
  double x = ParseFloatValue(occ.flag, *occ.value);
  if (!(x >= 0) || x == std::numeric_limits<double>::infinity()) {
    ThrowUsage("argument " + occ.flag + ": " + Quoted(*occ.value) +
               " must be a finite number >= 0");
  }
  s.args.replica_tolerance = x;
}

void SetVerbosity(ParseState& s, const Occurrence& occ, int level) {
  bool quiet_now = level < 0;
  bool quiet_before = s.args.verbosity < 0;
  if (s.args.verbosity != 0 && quiet_now != quiet_before) {
    ThrowUsage("argument " + occ.flag + ": cannot combine -q with -v/-vv");
  }
  s.args.verbosity = quiet_now ? -1 : std::min(2, s.args.verbosity + level);
}

std::vector<Option> BuildOurOptions() {
  const OptionGroup o = OptionGroup::kOurs;
  std::vector<Option> t;
  t.push_back(Flag("dry_run", o, "Plan and print what would be written; write nothing.",
                   FIELD(dry_run)));
  t.push_back(Flag("overwrite", o, "Allow writing into a non-empty output directory.",
                   FIELD(overwrite)));
  t.push_back(Flag("reshard", o,
                   "MCA input: write an MCA checkpoint for the given parallel sizes instead of HF.",
                   FIELD(reshard)));
  Option threads = Integer("threads", o, "Worker threads (0: all online CPUs).", FIELD(threads), 0,
                           kMaxThreads);
  threads.metavar = "N";
  t.push_back(std::move(threads));
  t.push_back(Custom("max_shard_size", {}, o, Arity::kRequired, "SIZE",
                     "HF output shard limit: bytes, or e.g. 5GB, 500MB (decimal), 2GiB (binary). "
                     "[default: 5GB]",
                     SetMaxShardSize));
  t.push_back(Custom("quiet", {"-q"}, o, Arity::kNone, "", "Print errors only.",
                     [](ParseState& s, const Occurrence& occ) { SetVerbosity(s, occ, -1); }));
  t.push_back(Custom("verbose", {"-v"}, o, Arity::kNone, "",
                     "More progress output; -vv (or -v -v) adds per-tensor detail.",
                     [](ParseState& s, const Occurrence& occ) { SetVerbosity(s, occ, 1); }));
  Option very = Custom("", {"-vv"}, o, Arity::kNone, "", "",
                       [](ParseState& s, const Occurrence& occ) { SetVerbosity(s, occ, 2); });
  very.hidden = true;
  t.push_back(std::move(very));
  t.push_back(Choice("replica_check", o, {"error", "rank0", "tolerance"},
                     "MCA->HF: when tensor-parallel replicas of a duplicated weight differ: fail, "
                     "take rank 0, or accept differences up to --replica_tolerance.",
                     FIELD(replica_check)));
  t.push_back(Custom("replica_tolerance", {}, o, Arity::kRequired, "X",
                     "Largest absolute difference accepted by --replica_check tolerance. "
                     "[default: 0]",
                     SetReplicaTolerance));
  t.push_back(Text("merge_lora", o, "NAME",
                   "MCA->HF with --adapter_path: merge adapter NAME into the base weights.",
                   FIELD(merge_lora)));
  t.push_back(Choice("moe_grouped_gemm_format", o, {"te", "legacy"},
                     "Expert names written for grouped GEMM: te (linear_fc1.weight<i>) or legacy "
                     "(weight1/weight2).",
                     FIELD(parallel.moe_grouped_gemm_format)));
  t.push_back(Choice("hf_expert_layout", o, {"per_expert", "fused"},
                     "HF expert tensors written by MCA -> HF: one per expert (published layout) "
                     "or fused per layer (experts.gate_up_proj / experts.down_proj).",
                     FIELD(hf_expert_layout)));
  t.push_back(Custom("help", {"-h"}, o, Arity::kNone, "", "Show this help and exit.", nullptr));
  t.push_back(Custom("version", {}, o, Arity::kNone, "", "Print the version and exit.", nullptr));
  return t;
}

#undef FIELD

}  // namespace

const std::vector<Option>& Options() {
  static const std::vector<Option> options = [] {
    std::vector<Option> all = BuildReferenceOptions();
    for (Option& o : BuildOurOptions()) all.push_back(std::move(o));
    return all;
  }();
  return options;
}

std::string Dashed(const std::string& name) {
  std::string out = name;
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

// Every accepted spelling of `option`, the canonical one first.
std::vector<std::string> Spellings(const Option& option) {
  std::vector<std::string> out;
  if (!option.name.empty()) {
    out.push_back("--" + option.name);
    if (option.name.find('_') != std::string::npos) out.push_back("--" + Dashed(option.name));
  }
  for (const std::string& s : option.shorts) out.push_back(s);
  return out;
}

const Option* FindOption(const std::string& spelling) {
  static const std::map<std::string, const Option*> index = [] {
    std::map<std::string, const Option*> map;
    for (const Option& o : Options()) {
      for (const std::string& s : Spellings(o)) map[s] = &o;
    }
    return map;
  }();
  auto it = index.find(spelling);
  return it == index.end() ? nullptr : it->second;
}

}  // namespace mcaconv
