#include "model/families.h"

#include <array>
#include <deque>
#include <mutex>
#include <string>

namespace mcaconv {
namespace {

using D = Dim;

// Non-layer tensors shared by every family with the "model." naming (mca-format.md 3.2).
std::vector<WeightRule> GlobalRules() {
  return {
      {Scope::kGlobal, {{"model.embed_tokens.weight", {D::kVocab, D::kHidden}}},
       "embedding.word_embeddings.weight", Join::kRename, Split::kColumn, When::kAlways,
       Stage::kFirst},
      {Scope::kGlobal, {{"model.norm.weight", {D::kHidden}}}, "decoder.final_layernorm.weight",
       Join::kRename, Split::kDuplicated, When::kAlways, Stage::kLast},
      {Scope::kGlobal, {{"lm_head.weight", {D::kVocab, D::kHidden}}}, "output_layer.weight",
       Join::kRename, Split::kColumn, When::kUntiedHead, Stage::kLast},
  };
}

// The tables below are kept one rule per visual block rather than as clang-format lays them
// out, so that a row reads like the spec's table row it comes from.
// clang-format off

// Table A: attention and its norms (3.2). The post-attention norm is added per family because
// its MCA name depends on whether the MLP is dense (fused into linear_fc1) or MoE.
std::vector<WeightRule> AttentionRules() {
  return {
      {Scope::kLayer, {{".input_layernorm.weight", {D::kHidden}}},
       ".self_attention.linear_qkv.layer_norm_weight", Join::kRename, Split::kDuplicated},
      {Scope::kLayer,
       {{".self_attn.q_proj.weight", {D::kQueryRows, D::kHidden}},
        {".self_attn.k_proj.weight", {D::kKvRows, D::kHidden}},
        {".self_attn.v_proj.weight", {D::kKvRows, D::kHidden}}},
       ".self_attention.linear_qkv.weight", Join::kQkv, Split::kColumn, When::kAlways,
       Stage::kLayerOwner, true},
      {Scope::kLayer,
       {{".self_attn.q_proj.bias", {D::kQueryRows}},
        {".self_attn.k_proj.bias", {D::kKvRows}},
        {".self_attn.v_proj.bias", {D::kKvRows}}},
       ".self_attention.linear_qkv.bias", Join::kQkv, Split::kColumn, When::kQkvBias},
      {Scope::kLayer, {{".self_attn.o_proj.weight", {D::kHidden, D::kQueryRows}}},
       ".self_attention.linear_proj.weight", Join::kRename, Split::kRow, When::kAlways,
       Stage::kLayerOwner, true},
      {Scope::kLayer, {{".self_attn.q_norm.weight", {D::kHeadDim}}},
       ".self_attention.q_layernorm.weight", Join::kRename, Split::kDuplicated, When::kQkNorm},
      {Scope::kLayer, {{".self_attn.k_norm.weight", {D::kHeadDim}}},
       ".self_attention.k_layernorm.weight", Join::kRename, Split::kDuplicated, When::kQkNorm},
  };
}

// Table D: dense MLP, with the post-attention norm fused into linear_fc1 (A7d).
std::vector<WeightRule> DenseMlpRules() {
  return {
      {Scope::kLayer, {{".post_attention_layernorm.weight", {D::kHidden}}},
       ".mlp.linear_fc1.layer_norm_weight", Join::kRename, Split::kDuplicated, When::kDenseMlp},
      {Scope::kLayer,
       {{".mlp.gate_proj.weight", {D::kFfn, D::kHidden}},
        {".mlp.up_proj.weight", {D::kFfn, D::kHidden}}},
       ".mlp.linear_fc1.weight", Join::kStack, Split::kColumn, When::kDenseMlp,
       Stage::kLayerOwner, true},
      {Scope::kLayer, {{".mlp.down_proj.weight", {D::kHidden, D::kFfn}}},
       ".mlp.linear_fc2.weight", Join::kRename, Split::kRow, When::kDenseMlp,
       Stage::kLayerOwner, true},
  };
}

// A7m, X1-X3: MoE layers with Qwen-style expert names.
std::vector<WeightRule> QwenMoeRules() {
  return {
      {Scope::kLayer, {{".post_attention_layernorm.weight", {D::kHidden}}},
       ".pre_mlp_layernorm.weight", Join::kRename, Split::kDuplicated, When::kMoeMlp},
      {Scope::kLayer, {{".mlp.gate.weight", {D::kExperts, D::kHidden}}}, ".mlp.router.weight",
       Join::kRename, Split::kDuplicated, When::kMoeMlp},
      {Scope::kExpert,
       {{".gate_proj.weight", {D::kExpertFfn, D::kHidden}},
        {".up_proj.weight", {D::kExpertFfn, D::kHidden}}},
       ".linear_fc1.weight", Join::kStack, Split::kColumn, When::kMoeMlp,
       Stage::kLayerOwner, true},
      {Scope::kExpert, {{".down_proj.weight", {D::kHidden, D::kExpertFfn}}}, ".linear_fc2.weight",
       Join::kRename, Split::kRow, When::kMoeMlp,
       Stage::kLayerOwner, true},
  };
}

// Table S: the Qwen2-MoE shared expert and its gate.
std::vector<WeightRule> SharedExpertRules() {
  return {
      {Scope::kLayer,
       {{".mlp.shared_expert.gate_proj.weight", {D::kSharedFfn, D::kHidden}},
        {".mlp.shared_expert.up_proj.weight", {D::kSharedFfn, D::kHidden}}},
       ".mlp.shared_experts.linear_fc1.weight", Join::kStack, Split::kColumn, When::kSharedExpert,
       Stage::kLayerOwner, true},
      {Scope::kLayer, {{".mlp.shared_expert.down_proj.weight", {D::kHidden, D::kSharedFfn}}},
       ".mlp.shared_experts.linear_fc2.weight", Join::kRename, Split::kRow, When::kSharedExpert,
       Stage::kLayerOwner, true},
      {Scope::kLayer, {{".mlp.shared_expert_gate.weight", {D::kOne, D::kHidden}}},
       ".mlp.shared_experts.gate_weight", Join::kRename, Split::kDuplicated, When::kSharedExpert},
  };
}

// Mixtral names its MoE block "block_sparse_moe" and its expert projections w1/w3/w2.
std::vector<WeightRule> MixtralMoeRules() {
  return {
      {Scope::kLayer, {{".post_attention_layernorm.weight", {D::kHidden}}},
       ".pre_mlp_layernorm.weight", Join::kRename, Split::kDuplicated, When::kMoeMlp},
      {Scope::kLayer, {{".block_sparse_moe.gate.weight", {D::kExperts, D::kHidden}}},
       ".mlp.router.weight", Join::kRename, Split::kDuplicated, When::kMoeMlp},
      {Scope::kExpert,
       {{".w1.weight", {D::kExpertFfn, D::kHidden}}, {".w3.weight", {D::kExpertFfn, D::kHidden}}},
       ".linear_fc1.weight", Join::kStack, Split::kColumn, When::kMoeMlp,
       Stage::kLayerOwner, true},
      {Scope::kExpert, {{".w2.weight", {D::kHidden, D::kExpertFfn}}}, ".linear_fc2.weight",
       Join::kRename, Split::kRow, When::kMoeMlp,
       Stage::kLayerOwner, true},
  };
}

// clang-format on

std::vector<WeightRule> Concat(std::initializer_list<std::vector<WeightRule>> parts) {
  std::vector<WeightRule> all;
  for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

const std::vector<Family>& Registry() {
  static const std::vector<Family> families = [] {
    const std::vector<std::string_view> rotary = {".self_attn.rotary_emb.inv_freq"};
    const auto dense = Concat({GlobalRules(), AttentionRules(), DenseMlpRules()});
    // MoE families keep the dense rows so that layers without experts (mlp_only_layers,
    // decoder_sparse_step) convert like DeepSeek's dense layers do (mca-format.md 3.5).
    const auto qwen_moe =
        Concat({GlobalRules(), AttentionRules(), DenseMlpRules(), QwenMoeRules()});
    return std::vector<Family>{
        {"llama", "model.layers.", "", rotary, dense, {}},
        {"mistral", "model.layers.", "", rotary, dense, {}},
        {"qwen2", "model.layers.", "", {}, dense, {}},
        {"qwen3", "model.layers.", "", {}, dense, {}},
        {"mixtral", "model.layers.", ".block_sparse_moe.experts.", {},
         Concat({GlobalRules(), AttentionRules(), DenseMlpRules(), MixtralMoeRules()}),
         {{".block_sparse_moe.gate.weight", ".mlp.gate.weight"}}},
        {"qwen2_moe", "model.layers.", ".mlp.experts.", {},
         Concat({qwen_moe, SharedExpertRules()}), {}},
        {"qwen3_moe", "model.layers.", ".mlp.experts.", {}, qwen_moe, {}},
    };
  }();
  return families;
}

std::string_view WithLoraSuffix(std::string_view name, char which) {
  static std::deque<std::string> interned;  // rules hold string_views; deque keeps them valid
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::string text(name.substr(0, name.size() - 7));  // drop ".weight"
  text += which == 'A' ? ".lora_A.weight" : ".lora_B.weight";
  for (const auto& s : interned)
    if (s == text) return s;
  interned.push_back(text);
  return interned.back();
}

}  // namespace

std::vector<WeightRule> LoraRules(const WeightRule& base) {
  const bool row = base.split == Split::kRow;
  WeightRule a = base, b = base;
  a.lora = b.lora = false;
  a.mca = WithLoraSuffix(base.mca, 'A');
  b.mca = WithLoraSuffix(base.mca, 'B');
  for (size_t i = 0; i < base.hf.size(); ++i) {
    const Dim rank = base.scope == Scope::kExpert ? Dim::kExpertLoraRank : Dim::kLoraRank;
    a.hf[i] = {WithLoraSuffix(base.hf[i].name, 'A'), {rank, base.hf[i].shape[1]}};
    b.hf[i] = {WithLoraSuffix(base.hf[i].name, 'B'), {base.hf[i].shape[0], rank}};
  }
  a.join = base.join == Join::kRename ? Join::kRename : Join::kCopy;
  a.split = row ? Split::kRow : Split::kDuplicated;
  b.split = row ? Split::kDuplicated : base.split;
  return {a, b};
}

const Family* FindFamily(std::string_view model_type) {
  for (const auto& family : Registry())
    if (family.name == model_type) return &family;
  return nullptr;
}

std::string SupportedFamilies() {
  std::string names;
  for (const auto& family : Registry()) {
    if (!names.empty()) names += ", ";
    names += family.name;
  }
  return names;
}

}  // namespace mcaconv
