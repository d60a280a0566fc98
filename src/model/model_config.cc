#include "model/model_config.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <regex>

namespace mcaconv {
namespace {

using nlohmann::json;

// Typed access to the keys of one mca_config.json; errors name the file and the key.
class FieldReader {
 public:
  FieldReader(const json& j, const std::string& path) : j_(j), path_(path) {}

  std::optional<int64_t> OptInt(const char* key) const {
    const json* v = Find(key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    if (v->is_number_integer()) return v->get<int64_t>();
    if (v->is_number_unsigned()) Fail(key, "an integer below 2^63", *v);
    Fail(key, "an integer or null", *v);
  }
  int64_t Int(const char* key, int64_t fallback) const { return OptInt(key).value_or(fallback); }

  bool Bool(const char* key, bool fallback) const {
    const json* v = Find(key);
    if (v == nullptr || v->is_null()) return fallback;
    if (!v->is_boolean()) Fail(key, "true or false", *v);
    return v->get<bool>();
  }

  std::string Str(const char* key, const std::string& fallback) const {
    const json* v = Find(key);
    if (v == nullptr || v->is_null()) return fallback;
    if (!v->is_string()) Fail(key, "a string", *v);
    return v->get<std::string>();
  }

  const json* Find(const char* key) const {
    const auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }

  [[noreturn]] void Fail(const char* key, const std::string& expected, const json& found) const {
    std::string text = found.dump();
    if (text.size() > 60) text = text.substr(0, 57) + "...";
    ThrowInvalid(path_ + ": key \"" + key + "\": expected " + expected + ", found " + text);
  }

  [[noreturn]] void FailValue(const char* key, const std::string& what) const {
    ThrowInvalid(path_ + ": key \"" + key + "\": " + what);
  }

 private:
  const json& j_;
  const std::string& path_;
};

int ParallelSize(const FieldReader& r, const char* key, int fallback) {
  const int64_t v = r.Int(key, fallback);
  if (v < 1 || v > 1 << 20) r.FailValue(key, "expected a parallel size >= 1, found " +
                                                 std::to_string(v));
  return static_cast<int>(v);
}

int64_t PositiveSize(const FieldReader& r, const char* key, std::optional<int64_t> fallback) {
  const std::optional<int64_t> v = r.OptInt(key);
  if (!v && !fallback) r.FailValue(key, "expected a positive integer, found nothing");
  const int64_t value = v ? *v : *fallback;
  if (value < 1 || value > (int64_t{1} << 40)) {
    r.FailValue(key, "expected a positive integer, found " + std::to_string(value));
  }
  return value;
}

// moe_layer_freq: an int f marks layers with i % f == 0 as MoE (Megatron's rule); a list gives
// one 0/1 per layer.
std::vector<bool> MoeLayerPattern(const FieldReader& r, int64_t num_layers, bool has_experts) {
  std::vector<bool> pattern(static_cast<size_t>(num_layers), false);
  if (!has_experts) return pattern;
  const json* freq = r.Find("moe_layer_freq");
  if (freq == nullptr || freq->is_null()) {
    std::fill(pattern.begin(), pattern.end(), true);
    return pattern;
  }
  if (freq->is_number_integer()) {
    const int64_t f = freq->get<int64_t>();
    if (f < 1) r.FailValue("moe_layer_freq", "expected >= 1, found " + std::to_string(f));
    for (int64_t i = 0; i < num_layers; ++i) pattern[static_cast<size_t>(i)] = i % f == 0;
    return pattern;
  }
  if (!freq->is_array()) r.Fail("moe_layer_freq", "an integer or a list", *freq);
  if (static_cast<int64_t>(freq->size()) != num_layers) {
    r.FailValue("moe_layer_freq", "expected " + std::to_string(num_layers) +
                                      " entries (num_layers), found " +
                                      std::to_string(freq->size()));
  }
  for (size_t i = 0; i < freq->size(); ++i) {
    const json& v = (*freq)[i];
    if (!v.is_number_integer() || (v.get<int64_t>() != 0 && v.get<int64_t>() != 1)) {
      r.Fail("moe_layer_freq", "entries 0 or 1", v);
    }
    pattern[i] = v.get<int64_t>() == 1;
  }
  return pattern;
}

void ReadAttention(const FieldReader& r, ModelConfig& c) {
  c.num_layers = PositiveSize(r, "num_layers", std::nullopt);
  c.hidden_size = PositiveSize(r, "hidden_size", std::nullopt);
  c.num_attention_heads = PositiveSize(r, "num_attention_heads", std::nullopt);
  c.num_query_groups = PositiveSize(r, "num_query_groups", c.num_attention_heads);
  c.kv_channels = PositiveSize(r, "kv_channels", c.hidden_size / c.num_attention_heads);
  c.ffn_hidden_size = PositiveSize(r, "ffn_hidden_size", 4 * c.hidden_size);
  c.padded_vocab_size = PositiveSize(r, "padded_vocab_size", std::nullopt);
  c.add_qkv_bias = r.Bool("add_qkv_bias", false);
  c.qk_layernorm = r.Bool("qk_layernorm", false);
  c.tie_embeddings_and_output_weights = r.Bool("tie_embeddings_and_output_weights", false);
}

void ReadExperts(const FieldReader& r, ModelConfig& c) {
  const std::optional<int64_t> experts = r.OptInt("num_moe_experts");
  c.num_moe_experts = experts ? PositiveSize(r, "num_moe_experts", std::nullopt) : 0;
  c.is_moe = MoeLayerPattern(r, c.num_layers, c.num_moe_experts > 0);
  c.moe_router_topk = r.Int("moe_router_topk", 2);
  c.moe_grouped_gemm = r.Bool("moe_grouped_gemm", false);
  c.moe_use_legacy_grouped_gemm = r.Bool("moe_use_legacy_grouped_gemm", false);
  if (c.num_moe_experts == 0) return;
  c.moe_ffn_hidden_size = PositiveSize(r, "moe_ffn_hidden_size", c.ffn_hidden_size);
  if (r.OptInt("moe_shared_expert_intermediate_size")) {
    c.moe_shared_expert_intermediate_size =
        PositiveSize(r, "moe_shared_expert_intermediate_size", std::nullopt);
  }
}

void ReadParallel(const FieldReader& r, ModelConfig& c) {
  c.tp = ParallelSize(r, "tensor_model_parallel_size", 1);
  c.pp = ParallelSize(r, "pipeline_model_parallel_size", 1);
  c.vpp = r.OptInt("virtual_pipeline_model_parallel_size")
              ? ParallelSize(r, "virtual_pipeline_model_parallel_size", 1)
              : 0;
  c.ep = ParallelSize(r, "expert_model_parallel_size", 1);
  c.etp = ParallelSize(r, "expert_tensor_parallel_size", c.tp);
  c.account_for_embedding_in_pipeline_split =
      r.Bool("account_for_embedding_in_pipeline_split", false);
  c.account_for_loss_in_pipeline_split = r.Bool("account_for_loss_in_pipeline_split", false);
  c.pipeline_model_parallel_layout = r.Str("pipeline_model_parallel_layout", "");
}

[[noreturn]] void ShapeError(ErrorKind kind, const std::string& context, const std::string& what) {
  throw Error(kind, context + ": " + what);
}

void CheckDivisible(int64_t value, const char* value_name, int64_t by, const char* by_name,
                    const std::string& context, ErrorKind kind) {
  if (value % by == 0) return;
  ShapeError(kind, context,
             std::string(value_name) + " (" + std::to_string(value) + ") is not divisible by " +
                 by_name + " (" + std::to_string(by) + ")");
}

void CheckPipelineSplit(const ModelConfig& c, const std::string& context, ErrorKind kind) {
  if (!c.pipeline_model_parallel_layout.empty()) {
    std::vector<std::string> stages;
    std::string error;
    if (!ExpandPipelineLayout(c.pipeline_model_parallel_layout, &stages, &error) ||
        !CheckPipelineLayout(stages, c.num_layers, c.mtp_num_layers, c.pp, &error)) {
      ShapeError(kind, context, "pipeline_model_parallel_layout \"" +
                                    c.pipeline_model_parallel_layout + "\": " + error);
    }
    if (c.account_for_embedding_in_pipeline_split || c.account_for_loss_in_pipeline_split) {
      ShapeError(kind, context,
                 "pipeline_model_parallel_layout cannot be combined with "
                 "account_for_embedding_in_pipeline_split/account_for_loss_in_pipeline_split");
    }
    const int64_t detected = static_cast<int64_t>(stages.size()) / c.pp;
    if (c.vpp_or_one() != detected) {
      ShapeError(kind, context,
                 "virtual_pipeline_model_parallel_size (" + std::to_string(c.vpp_or_one()) +
                     ") does not match the layout's " + std::to_string(stages.size()) +
                     " stages / pipeline_model_parallel_size (" + std::to_string(c.pp) + ")");
    }
    return;
  }
  const int64_t units = c.num_layers + (c.account_for_embedding_in_pipeline_split ? 1 : 0) +
                        (c.account_for_loss_in_pipeline_split ? 1 : 0);
  const int64_t chunks = int64_t{c.pp} * c.vpp_or_one();
  if (units % chunks == 0) return;
  ShapeError(kind, context,
             "num_layers (" + std::to_string(c.num_layers) + ", " + std::to_string(units) +
                 " with the account_for_* units) is not divisible by "
                 "pipeline_model_parallel_size * virtual_pipeline_model_parallel_size (" +
                 std::to_string(c.pp) + " * " + std::to_string(c.vpp_or_one()) + ")");
}

}  // namespace

ModelConfig ParseMcaConfig(const nlohmann::json& mca_config, const std::string& path_for_errors) {
  ModelConfig c = ReadModelConfig(mca_config, path_for_errors);
  ValidateModelShapes(c, path_for_errors, ErrorKind::kInvalidInput);
  return c;
}

ModelConfig ReadModelConfig(const nlohmann::json& mca_config, const std::string& path_for_errors) {
  if (!mca_config.is_object()) {
    ThrowInvalid(path_for_errors + ": expected a JSON object at the top level");
  }
  const FieldReader r(mca_config, path_for_errors);
  ModelConfig c;
  c.model_type = r.Str("hf_model_type", "");
  if (c.model_type.empty()) r.FailValue("hf_model_type", "missing or null");
  ReadAttention(r, c);
  ReadExperts(r, c);
  ReadParallel(r, c);
  c.transformer_impl = r.Str("transformer_impl", "transformer_engine");
  if (c.transformer_impl != "transformer_engine" && c.transformer_impl != "local") {
    r.FailValue("transformer_impl", "expected \"transformer_engine\" or \"local\", found \"" +
                                        c.transformer_impl + "\"");
  }
  c.mtp_num_layers = r.Int("mtp_num_layers", 0);
  if (c.mtp_num_layers < 0 || c.mtp_num_layers > c.num_layers + 64) {
    r.FailValue("mtp_num_layers", "out of range: " + std::to_string(c.mtp_num_layers));
  }
  c.bf16 = r.Bool("bf16", false);
  c.fp16 = r.Bool("fp16", false);
  return c;
}

void ValidateModelShapes(const ModelConfig& c, const std::string& context, ErrorKind kind) {
  CheckDivisible(c.num_attention_heads, "num_attention_heads", c.tp, "tensor_model_parallel_size",
                 context, kind);
  CheckDivisible(c.num_query_groups, "num_query_groups", c.tp, "tensor_model_parallel_size",
                 context, kind);
  CheckDivisible(c.num_attention_heads, "num_attention_heads", c.num_query_groups,
                 "num_query_groups", context, kind);
  CheckDivisible(c.padded_vocab_size, "padded_vocab_size", c.tp, "tensor_model_parallel_size",
                 context, kind);
  CheckDivisible(c.ffn_hidden_size, "ffn_hidden_size", c.tp, "tensor_model_parallel_size",
                 context, kind);
  if (c.etp != c.tp) {
    ShapeError(kind, context,
               "expert_tensor_parallel_size (" + std::to_string(c.etp) +
                   ") differs from tensor_model_parallel_size (" + std::to_string(c.tp) +
                   "); the per-rank MCA format only holds ETP == TP");
  }
  if (c.num_moe_experts == 0 && c.ep > 1) {
    ShapeError(kind, context, "expert_model_parallel_size (" + std::to_string(c.ep) +
                                  ") > 1 needs num_moe_experts, but the model is dense");
  }
  if (c.num_moe_experts > 0) {
    CheckDivisible(c.num_moe_experts, "num_moe_experts", c.ep, "expert_model_parallel_size",
                   context, kind);
    CheckDivisible(c.moe_ffn_hidden_size, "moe_ffn_hidden_size", c.etp,
                   "expert_tensor_parallel_size", context, kind);
    CheckDivisible(c.moe_shared_expert_intermediate_size, "moe_shared_expert_intermediate_size",
                   c.tp, "tensor_model_parallel_size", context, kind);
  }
  CheckPipelineSplit(c, context, kind);
}

bool ExpandPipelineLayout(const std::string& layout, std::vector<std::string>* stages,
                          std::string* error) {
  if (layout.size() > 4096) {
    *error = "longer than 4096 characters";
    return false;
  }
  std::string text;
  std::copy_if(layout.begin(), layout.end(), std::back_inserter(text),
               [](char ch) { return ch != ','; });
  // Same two substitutions, applied once each, left to right, as Megatron's re.sub calls.
  static const std::regex kGroup(R"(\(([^)]+)\)\*(\d+))");
  static const std::regex kSingle(R"((.)\*(\d+))");
  for (const std::regex* pattern : {&kGroup, &kSingle}) {
    std::string out;
    auto begin = std::sregex_iterator(text.begin(), text.end(), *pattern);
    size_t last = 0;
    for (auto it = begin; it != std::sregex_iterator(); ++it) {
      const std::smatch& m = *it;
      const std::string count_text = m[2].str();
      const long count = count_text.size() > 6 ? -1 : std::stol(count_text);
      if (count < 0 || m[1].length() * count + out.size() > 1 << 20) {
        *error = "repeat count " + count_text + " is too large";
        return false;
      }
      out.append(text, last, static_cast<size_t>(m.position(0)) - last);
      for (long k = 0; k < count; ++k) out += m[1].str();
      last = static_cast<size_t>(m.position(0) + m.length(0));
    }
    out.append(text, last, std::string::npos);
    text = std::move(out);
  }
  stages->assign(1, "");
  for (char ch : text) {
    if (ch == '|') {
      stages->emplace_back();
    } else if (ch == 'E' || ch == 'L' || ch == 't' || ch == 'm') {
      stages->back() += ch;
    } else {
      *error = std::string("invalid layer character '") + ch + "' (known: E, L, t, m)";
      return false;
    }
  }
  return true;
}

bool CheckPipelineLayout(const std::vector<std::string>& stages, int64_t num_layers,
                         int64_t mtp_num_layers, int pp, std::string* error) {
  if (stages.size() % static_cast<size_t>(pp) != 0) {
    *error = std::to_string(stages.size()) + " stages are not divisible by "
             "pipeline_model_parallel_size (" + std::to_string(pp) + ")";
    return false;
  }
  std::string flat;
  for (const std::string& s : stages) flat += s;
  const auto count = [&](char ch) { return std::count(flat.begin(), flat.end(), ch); };
  if (flat.empty() || flat.front() != 'E' || count('E') != 1) {
    *error = "the first layer must be the only embedding 'E'";
  } else if (flat.back() != 'L' || count('L') != 1) {
    *error = "the last layer must be the only loss 'L'";
  } else if (count('t') != num_layers) {
    *error = std::to_string(count('t')) + " decoder layers 't', but num_layers is " +
             std::to_string(num_layers);
  } else if (count('m') != mtp_num_layers) {
    *error = std::to_string(count('m')) + " MTP layers 'm', but mtp_num_layers is " +
             std::to_string(mtp_num_layers);
  } else if (flat.find('m') != std::string::npos && flat.find('t', flat.find('m')) != flat.npos) {
    *error = "decoder layers must come before MTP layers";
  } else {
    return true;
  }
  return false;
}

}  // namespace mcaconv
