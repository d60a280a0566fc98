#include "model/mca_config.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/config_families.h"
#include "model/model_config.h"
#include "model/python_json.h"

namespace mcaconv {
namespace {

using nlohmann::json;

// CudaGraphScope member names in megatron-core 0.16.
constexpr std::string_view kCudaGraphScopes[] = {
    "full_iteration", "attn", "mlp", "moe", "moe_router", "moe_preprocess", "mamba"};
constexpr std::string_view kRecomputeModules[] = {
    "core_attn", "moe_act", "layernorm", "mla_up_proj", "mlp", "moe", "shared_experts"};

template <size_t N>
bool OneOf(std::string_view value, const std::string_view (&set)[N]) {
  return std::find(std::begin(set), std::end(set), value) != std::end(set);
}

bool IsSet(const json& kw, const char* key) {
  const auto it = kw.find(key);
  return it != kw.end() && !it->is_null();
}

int64_t IntOr(const json& kw, const char* key, int64_t fallback) {
  const auto it = kw.find(key);
  return it != kw.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

bool BoolOf(const json& kw, const char* key) {
  const auto it = kw.find(key);
  return it != kw.end() && it->is_boolean() && it->get<bool>();
}

std::string StrOf(const json& kw, const char* key) {
  const auto it = kw.find(key);
  return it != kw.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string Num(int64_t v) { return std::to_string(v); }

// ---- HF attributes as transformers 5.25 exposes them ----------------------------------------

const FamilyConfigSpec& FamilyOf(const json& hf_config) {
  const auto it = hf_config.find("model_type");
  if (it == hf_config.end() || !it->is_string()) {
    ThrowInvalid("config.json: key \"model_type\" is missing or not a string");
  }
  const FamilyConfigSpec* spec = FindFamilyConfig(it->get<std::string>());
  if (spec == nullptr) {
    ThrowUnsupported("config.json: model_type \"" + it->get<std::string>() +
                     "\" is not supported (supported: " + SupportedFamilyList() + ")");
  }
  return *spec;
}

// The attribute names that alias `key` under the class's attribute_map (key itself first).
std::vector<std::string> AliasNames(const FamilyConfigSpec& spec, const std::string& key) {
  std::vector<std::string> names = {key};
  for (const ConfigKeyPair& alias : spec.hf_aliases) {
    if (key == alias.hf_key) names.push_back(alias.mca_key);
    if (key == alias.mca_key) names.push_back(alias.hf_key);
  }
  return names;
}

std::optional<json> RawOrClassDefault(const FamilyConfigSpec& spec, const json& raw,
                                      const std::string& key) {
  const std::vector<std::string> names = AliasNames(spec, key);
  for (const std::string& name : names) {
    if (raw.contains(name)) return raw[name];
  }
  for (const std::string& name : names) {
    for (const ConfigJsonValue& d : spec.hf_defaults) {
      if (name == d.key) return json::parse(d.json);
    }
  }
  return std::nullopt;
}

// transformers 5 folds rope_theta and rope_scaling into one rope_parameters dict; `rope_scaling`
// reads back the same dict and `rope_theta` is no longer an attribute.
json StandardRopeParameters(const FamilyConfigSpec& spec, const json& raw) {
  json rope = json::object();
  for (const char* source : {"rope_parameters", "rope_scaling"}) {
    const auto it = raw.find(source);
    if (it != raw.end() && it->is_object()) {
      rope = *it;
      break;
    }
  }
  if (rope.contains("type") && !rope.contains("rope_type")) rope["rope_type"] = rope["type"];
  if (!rope.contains("rope_type")) rope["rope_type"] = "default";
  if (!rope.contains("rope_theta")) {
    const auto theta = raw.find("rope_theta");
    rope["rope_theta"] =
        theta != raw.end() && !theta->is_null() ? *theta : json(spec.hf_default_rope_theta);
  }
  return rope;
}

std::optional<json> ResolveTopLevel(const FamilyConfigSpec& spec, const json& raw,
                                    const std::string& key) {
  if (key == "rope_theta") return std::nullopt;
  if (key == "rope_parameters" || key == "rope_scaling") return StandardRopeParameters(spec, raw);
  std::optional<json> value = RawOrClassDefault(spec, raw, key);
  if (!value || !value->is_null()) return value;
  if (key == "num_key_value_heads" && spec.hf_kv_heads_default_to_heads) {
    return ResolveTopLevel(spec, raw, "num_attention_heads");
  }
  if (key == "head_dim" && spec.hf_head_dim_default_to_ratio) {
    const std::optional<json> hidden = ResolveTopLevel(spec, raw, "hidden_size");
    const std::optional<json> heads = ResolveTopLevel(spec, raw, "num_attention_heads");
    if (hidden && heads && hidden->is_number_integer() && heads->is_number_integer() &&
        heads->get<int64_t>() > 0) {
      return json(hidden->get<int64_t>() / heads->get<int64_t>());
    }
  }
  return value;
}

// ---- CLI arguments --------------------------------------------------------------------------

template <typename T>
void SetIf(json& kw, const char* key, const std::optional<T>& value) {
  if (value) kw[key] = *value;
}

// Every DistributingParallelArguments field that is not None, as the reference passes them.
void ApplyCliArgs(const ParallelArgs& p, json& kw) {
  SetIf(kw, "tensor_model_parallel_size", p.tensor_model_parallel_size);
  SetIf(kw, "pipeline_model_parallel_size", p.pipeline_model_parallel_size);
  kw["sequence_parallel"] = p.sequence_parallel;
  SetIf(kw, "virtual_pipeline_model_parallel_size", p.virtual_pipeline_model_parallel_size);
  SetIf(kw, "context_parallel_size", p.context_parallel_size);
  SetIf(kw, "expert_model_parallel_size", p.expert_model_parallel_size);
  SetIf(kw, "expert_tensor_parallel_size", p.expert_tensor_parallel_size);
  SetIf(kw, "account_for_embedding_in_pipeline_split", p.account_for_embedding_in_pipeline_split);
  SetIf(kw, "account_for_loss_in_pipeline_split", p.account_for_loss_in_pipeline_split);
  SetIf(kw, "pipeline_model_parallel_layout", p.pipeline_model_parallel_layout);
  kw["overlap_p2p_comm"] = p.overlap_p2p_comm;
  kw["variable_seq_lengths"] = p.variable_seq_lengths;
  SetIf(kw, "recompute_granularity", p.recompute_granularity);
  SetIf(kw, "recompute_method", p.recompute_method);
  SetIf(kw, "recompute_modules", p.recompute_modules);
  SetIf(kw, "recompute_num_layers", p.recompute_num_layers);
  kw["bias_activation_fusion"] = p.bias_activation_fusion;
  kw["apply_rope_fusion"] = p.apply_rope_fusion;
  kw["cross_entropy_loss_fusion"] = p.cross_entropy_loss_fusion;
  kw["moe_layer_recompute"] = p.moe_layer_recompute;
  kw["moe_token_dispatcher_type"] = p.moe_token_dispatcher_type;
  SetIf(kw, "moe_aux_loss_coeff", p.moe_aux_loss_coeff);
  SetIf(kw, "moe_grouped_gemm", p.moe_grouped_gemm);
  SetIf(kw, "moe_expert_capacity_factor", p.moe_expert_capacity_factor);
  SetIf(kw, "moe_pad_expert_input_to_capacity", p.moe_pad_expert_input_to_capacity);
  SetIf(kw, "moe_token_drop_policy", p.moe_token_drop_policy);
  kw["moe_shared_expert_overlap"] = p.moe_shared_expert_overlap;
  kw["moe_enable_routing_replay"] = p.moe_enable_routing_replay;
  SetIf(kw, "moe_router_dtype", p.moe_router_dtype);
  SetIf(kw, "mtp_num_layers", p.mtp_num_layers);
  kw["calculate_per_token_loss"] = p.calculate_per_token_loss;
  SetIf(kw, "transformer_impl", p.transformer_impl);
  SetIf(kw, "cuda_graph_impl", p.cuda_graph_impl);
  kw["cuda_graph_scope"] = p.cuda_graph_scope;
  SetIf(kw, "fp8_recipe", p.fp8_recipe);
  kw["fp8_param"] = p.fp8_param;
  SetIf(kw, "fp8", p.fp8);
}

// The reference CLI's own checks and normalisations (ConvertArguments/DistributingParallel-
// Arguments __post_init__ and convert_checkpoint_to_mca), done before anything else.
ParallelArgs NormaliseCliArgs(const ConvertArgs& args) {
  if (args.bf16 && args.fp16) ThrowUsage("--bf16 and --fp16 cannot both be set");
  ParallelArgs p = args.parallel;
  if (p.variable_seq_lengths && p.moe_token_dispatcher_type == "allgather") {
    ThrowUsage("--variable_seq_lengths is not supported by the allgather token dispatcher; use "
               "--moe_token_dispatcher_type alltoall");
  }
  if (p.pipeline_model_parallel_layout && p.pipeline_model_parallel_size &&
      !p.virtual_pipeline_model_parallel_size) {
    std::vector<std::string> stages;
    std::string error;
    if (!ExpandPipelineLayout(*p.pipeline_model_parallel_layout, &stages, &error)) {
      ThrowUsage("--pipeline_model_parallel_layout \"" + *p.pipeline_model_parallel_layout +
                 "\": " + error);
    }
    const int pp = *p.pipeline_model_parallel_size;
    if (pp < 1 || stages.size() % static_cast<size_t>(pp) != 0) {
      ThrowUsage("--pipeline_model_parallel_layout has " + std::to_string(stages.size()) +
                 " stages, not divisible by --pipeline_model_parallel_size " + std::to_string(pp));
    }
    const int vpp = static_cast<int>(stages.size()) / pp;
    if (vpp > 1) p.virtual_pipeline_model_parallel_size = vpp;
  }
  p.tensor_model_parallel_size = p.tensor_model_parallel_size.value_or(1);
  p.pipeline_model_parallel_size = p.pipeline_model_parallel_size.value_or(1);
  p.expert_model_parallel_size = p.expert_model_parallel_size.value_or(1);
  for (const auto& size : {p.tensor_model_parallel_size, p.pipeline_model_parallel_size,
                           p.expert_model_parallel_size, p.virtual_pipeline_model_parallel_size,
                           p.context_parallel_size, p.expert_tensor_parallel_size}) {
    if (size && *size < 1) ThrowUsage("parallel sizes must be >= 1, found " + Num(*size));
  }
  return p;
}

// Qwen MoE models choose their MoE layers as "not in mlp_only_layers and (i + 1) %
// decoder_sparse_step == 0", which Megatron's integer moe_layer_freq (i % f == 0) cannot express;
// the reference copies decoder_sparse_step and fails on such models. Whenever the pattern is not
// "every layer", write the exact per-layer list, which Megatron accepts.
void ApplyQwenMoeLayerPattern(const json& hf_config, const FamilyConfigSpec& spec, json& kw) {
  const std::string_view type = spec.model_type;
  if (type != "qwen2_moe" && type != "qwen3_moe") return;
  const int64_t layers = hf_config.value("num_hidden_layers", int64_t{0});
  const int64_t step = hf_config.contains("decoder_sparse_step") &&
                               hf_config["decoder_sparse_step"].is_number_integer()
                           ? hf_config["decoder_sparse_step"].get<int64_t>()
                           : 1;
  std::vector<int64_t> dense;
  if (hf_config.contains("mlp_only_layers") && hf_config["mlp_only_layers"].is_array())
    for (const auto& layer : hf_config["mlp_only_layers"])
      if (layer.is_number_integer()) dense.push_back(layer.get<int64_t>());
  if (step == 1 && dense.empty()) return;
  if (step < 1) ThrowUsage("config.json: decoder_sparse_step must be >= 1, found " + Num(step));
  json pattern = json::array();
  for (int64_t i = 0; i < layers; ++i) {
    const bool is_dense = std::find(dense.begin(), dense.end(), i) != dense.end();
    pattern.push_back(!is_dense && (i + 1) % step == 0 ? 1 : 0);
  }
  kw["moe_layer_freq"] = pattern;
  // qwen2_moe's table maps moe_intermediate_size onto ffn_hidden_size, which leaves dense layers
  // without their own size; give each MLP kind its own field as Megatron expects.
  if (hf_config.contains("intermediate_size") && hf_config.contains("moe_intermediate_size")) {
    kw["ffn_hidden_size"] = hf_config["intermediate_size"];
    kw["moe_ffn_hidden_size"] = hf_config["moe_intermediate_size"];
  }
}

// ---- post-init (ROLL McaModelConfig, then Megatron, as the reference runs them) ---------------

void RollPostInit(json& kw) {
  if (kw["virtual_pipeline_model_parallel_size"].is_null() && BoolOf(kw, "overlap_p2p_comm")) {
    kw["overlap_p2p_comm"] = false;
  }
  kw["deallocate_pipeline_outputs"] = true;
  if (BoolOf(kw, "swiglu")) kw["gated_linear_unit"] = true;
  kw["batch_p2p_comm"] = !BoolOf(kw, "overlap_p2p_comm");
  const json& rope = kw["rope_parameters"];
  if (rope.is_object() && rope.contains("rope_theta")) kw["rotary_base"] = rope["rope_theta"];
  if (StrOf(kw, "recompute_granularity") == "full" && !IsSet(kw, "recompute_method") &&
      !IsSet(kw, "recompute_num_layers")) {
    kw["recompute_method"] = "uniform";
    kw["recompute_num_layers"] = 1;
  }
  const int64_t tp = IntOr(kw, "tensor_model_parallel_size", 1);
  if (tp > 1 && IntOr(kw, "expert_model_parallel_size", 1) > 1) kw["sequence_parallel"] = true;
  if (tp <= 1) kw["sequence_parallel"] = false;
  if (IntOr(kw, "num_moe_experts", 0) >= 32 && !IsSet(kw, "moe_router_dtype")) {
    kw["moe_router_dtype"] = "fp32";
  }
}

void FillMegatronDefaults(json& kw) {
  if (!IsSet(kw, "expert_tensor_parallel_size")) {
    kw["expert_tensor_parallel_size"] = kw["tensor_model_parallel_size"];
  }
  if (!IsSet(kw, "microbatch_group_size_per_vp_stage")) {
    kw["microbatch_group_size_per_vp_stage"] = kw["pipeline_model_parallel_size"];
  }
  const int64_t hidden = IntOr(kw, "hidden_size", 0);
  const int64_t heads = IntOr(kw, "num_attention_heads", 0);
  if (heads <= 0 || hidden <= 0) {
    ThrowInvalid("config.json: hidden_size (" + Num(hidden) + ") and num_attention_heads (" +
                 Num(heads) + ") must be positive integers");
  }
  if (!IsSet(kw, "ffn_hidden_size")) kw["ffn_hidden_size"] = 4 * hidden;
  if (!IsSet(kw, "kv_channels")) kw["kv_channels"] = hidden / heads;
  if (!IsSet(kw, "num_query_groups")) kw["num_query_groups"] = heads;
  if (IsSet(kw, "num_moe_experts") && !IsSet(kw, "moe_ffn_hidden_size")) {
    kw["moe_ffn_hidden_size"] = kw["ffn_hidden_size"];
  }
  if (IsSet(kw, "moe_expert_capacity_factor") && kw["moe_expert_capacity_factor"] < 0) {
    kw["moe_expert_capacity_factor"] = nullptr;
  }
  if (!IsSet(kw, "embedding_init_method_std")) {
    kw["embedding_init_method_std"] = kw["init_method_std"];
  }
}

void CheckRecompute(json& kw) {
  const std::string granularity = StrOf(kw, "recompute_granularity");
  if (!granularity.empty()) {
    const std::string method = StrOf(kw, "recompute_method");
    if (granularity != "full" && granularity != "selective") {
      ThrowUsage("--recompute_granularity must be full or selective, found " + granularity);
    }
    if (!method.empty() && method != "uniform" && method != "block") {
      ThrowUsage("--recompute_method " + method + " is not accepted by Megatron (uniform|block)");
    }
    if (granularity == "full" && (method.empty() || !IsSet(kw, "recompute_num_layers"))) {
      ThrowUsage("--recompute_granularity full needs both --recompute_method and "
                 "--recompute_num_layers, or neither");
    }
    if (granularity == "selective" && IsSet(kw, "recompute_num_layers")) {
      ThrowUsage("--recompute_num_layers must be unset with --recompute_granularity selective");
    }
  }
  if (!IsSet(kw, "recompute_modules")) kw["recompute_modules"] = json::array({"core_attn"});
  if (granularity == "selective") {
    for (const json& module : kw["recompute_modules"]) {
      if (!OneOf(module.get<std::string>(), kRecomputeModules)) {
        ThrowUsage("--recompute_modules: unknown module " + module.get<std::string>());
      }
      if (module == "moe_act" && !BoolOf(kw, "moe_grouped_gemm")) {
        ThrowUsage("--recompute_modules moe_act needs moe_grouped_gemm");
      }
    }
  }
}

// Megatron turns the deprecated moe_layer_recompute into selective recompute of "moe".
void ApplyMoeLayerRecompute(json& kw) {
  if (!BoolOf(kw, "moe_layer_recompute")) return;
  if (StrOf(kw, "recompute_granularity") == "full") {
    ThrowUsage("--moe_layer_recompute cannot be combined with --recompute_granularity full");
  }
  kw["recompute_granularity"] = "selective";
  json& modules = kw["recompute_modules"];
  if (std::find(modules.begin(), modules.end(), json("moe")) == modules.end()) {
    modules.push_back("moe");
  }
}

// Megatron 0.16 turns ["full"] into [] and other scope names into enum members, which the
// reference does not serialise (the key disappears).
void NormaliseCudaGraphScope(json& kw) {
  const json scopes = kw["cuda_graph_scope"];
  const bool has_full = std::find(scopes.begin(), scopes.end(), json("full")) != scopes.end();
  if (has_full) {
    if (scopes.size() != 1) ThrowUsage("--cuda_graph_scope full cannot be combined with others");
    kw["cuda_graph_scope"] = json::array();
    return;
  }
  for (const json& scope : scopes) {
    if (!OneOf(scope.get<std::string>(), kCudaGraphScopes)) {
      ThrowUsage("--cuda_graph_scope: unknown scope \"" + scope.get<std::string>() + "\"");
    }
  }
  if (!scopes.empty()) kw.erase("cuda_graph_scope");
}

void CheckMegatronOptions(const json& kw) {
  if (BoolOf(kw, "moe_pad_expert_input_to_capacity") && !IsSet(kw, "moe_expert_capacity_factor")) {
    ThrowUsage("--moe_pad_expert_input_to_capacity needs --moe_expert_capacity_factor");
  }
  if (BoolOf(kw, "fp8_param") && !IsSet(kw, "fp8")) ThrowUsage("--fp8_param needs --fp8");
  if (BoolOf(kw, "moe_shared_expert_overlap") && IsSet(kw, "moe_shared_expert_intermediate_size") &&
      StrOf(kw, "moe_token_dispatcher_type") != "alltoall") {
    ThrowUsage("--moe_shared_expert_overlap needs --moe_token_dispatcher_type alltoall");
  }
}

// Megatron derives VPP from a layout string when none was given (mca-format.md Q-LAYOUTNOPP).
void ApplyLayoutVpp(json& kw) {
  const std::string layout = StrOf(kw, "pipeline_model_parallel_layout");
  if (layout.empty()) return;
  std::vector<std::string> stages;
  std::string error;
  if (!ExpandPipelineLayout(layout, &stages, &error)) {
    ThrowUsage("--pipeline_model_parallel_layout \"" + layout + "\": " + error);
  }
  const int64_t pp = IntOr(kw, "pipeline_model_parallel_size", 1);
  const int64_t detected = static_cast<int64_t>(stages.size()) / pp;
  if (!IsSet(kw, "virtual_pipeline_model_parallel_size") && detected > 1) {
    kw["virtual_pipeline_model_parallel_size"] = detected;
  }
}

void FinishPostInit(const FamilyConfigSpec& spec, json& kw) {
  const int64_t tp = IntOr(kw, "tensor_model_parallel_size", 1);
  if (tp != IntOr(kw, "expert_tensor_parallel_size", tp)) kw["moe_parallel_folding"] = true;
  if (spec.mca_rotary_scaling_from_rope) {
    kw["rotary_scaling"] = IsSet(kw, "rope_scaling") || IsSet(kw, "rope_parameters");
  }
}

json HfConfigJsonText(const json& hf_config) {
  json copy = hf_config;
  if (!copy.contains("transformers_version")) copy["transformers_version"] = kTransformersVersion;
  return DumpPythonJson(copy) + "\n";
}

}  // namespace

std::optional<nlohmann::json> ResolveHfAttribute(const nlohmann::json& hf_config,
                                                 const std::string& dotted_key) {
  const FamilyConfigSpec& spec = FamilyOf(hf_config);
  const size_t dot = dotted_key.find('.');
  if (dot == std::string::npos) return ResolveTopLevel(spec, hf_config, dotted_key);
  // Nested sub-config attributes: taken from config.json only (no class defaults).
  const json* node = &hf_config;
  size_t start = 0;
  while (true) {
    const size_t end = dotted_key.find('.', start);
    const std::string part = dotted_key.substr(start, end - start);
    if (!node->is_object() || !node->contains(part)) return std::nullopt;
    node = &(*node)[part];
    if (end == std::string::npos) return *node;
    start = end + 1;
  }
}

nlohmann::json BuildMcaConfig(const nlohmann::json& hf_config, const ConvertArgs& args,
                              const std::string& name_or_path) {
  if (!hf_config.is_object()) ThrowInvalid("config.json: expected a JSON object");
  const FamilyConfigSpec& spec = FamilyOf(hf_config);
  const ParallelArgs cli = NormaliseCliArgs(args);

  json kw = McaFieldDefaults();
  for (const ConfigJsonValue& field : spec.extra_fields) kw[field.key] = json::parse(field.json);
  ApplyCliArgs(cli, kw);
  kw["bf16"] = args.bf16;
  kw["fp16"] = args.fp16;
  for (const ConfigKeyPair& pair : spec.hf_to_mca) {
    std::optional<json> value = ResolveHfAttribute(hf_config, pair.hf_key);
    if (value) kw[pair.mca_key] = std::move(*value);
  }
  ApplyQwenMoeLayerPattern(hf_config, spec, kw);
  kw["hf_model_type"] = spec.model_type;
  kw["name_or_path"] = name_or_path;
  kw["hf_config_json"] = HfConfigJsonText(hf_config);
  for (const ConfigJsonValue& constant : spec.constants) {
    kw[constant.key] = json::parse(constant.json);
  }

  RollPostInit(kw);
  FillMegatronDefaults(kw);
  CheckRecompute(kw);
  ApplyMoeLayerRecompute(kw);
  CheckMegatronOptions(kw);
  ApplyLayoutVpp(kw);
  NormaliseCudaGraphScope(kw);
  FinishPostInit(spec, kw);

  const ModelConfig model = ReadModelConfig(kw, "config.json (as MCA config)");
  ValidateModelShapes(model, "cannot convert " + name_or_path, ErrorKind::kUsage);
  return kw;
}

}  // namespace mcaconv
