// Model families as data: how HF tensor names map to MCA names, which tensor operation joins them,
// how the MCA tensor is split across tensor-parallel ranks, and the tensors' shapes in terms of
// the model dimensions. mca-format.md sections 3 and 4 are the source of every row.
//
// A new family is a new table, not new control flow: rows are matched by the layout engine
// (layout.h), which owns all placement and splitting arithmetic.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mcaconv {

// Where a tensor lives: once per model, once per decoder layer, or once per routed expert.
enum class Scope { kGlobal, kLayer, kExpert };

// How the HF tensors of a rule combine into the one MCA tensor.
enum class Join {
  kRename,  // one HF tensor, same elements
  kQkv,     // q, k, v interleaved per query group (mca-format.md 4.2); weights and biases
  kStack,   // gate, up: per TP rank [gate chunk; up chunk] (4.4)
  kCopy,    // every HF input is a copy of the one MCA tensor (LoRA A of fused modules, 8.4)
};

// How the full MCA tensor is laid out across tensor-parallel ranks (4.5).
enum class Split {
  kDuplicated,  // every rank holds the whole tensor
  kColumn,      // dim 0 split in TP equal parts
  kRow,         // dim 1 split in TP equal parts
};

// Symbolic dimensions, resolved from the model config by the layout engine.
enum class Dim {
  kHidden,          // H
  kVocab,           // V
  kQueryRows,       // nh * d
  kKvRows,          // ng * d
  kHeadDim,         // d
  kFfn,             // F (dense MLP)
  kExpertFfn,       // Fm (routed expert)
  kSharedFfn,       // shared expert intermediate size
  kExperts,         // E
  kOne,             // 1
  kLoraRank,        // r of LoRA adapters on dense modules
  kExpertLoraRank,  // r of LoRA adapters on routed experts
};

// When a rule applies; evaluated per layer from the config.
enum class When {
  kAlways,
  kQkvBias,       // add_qkv_bias
  kQkNorm,        // qk_layernorm
  kDenseMlp,      // layer has a dense MLP
  kMoeMlp,        // layer has routed experts
  kSharedExpert,  // MoE layer with a shared expert
  kUntiedHead,    // output layer not tied to the embedding
};

// Which pipeline stage holds a global tensor.
enum class Stage { kLayerOwner, kFirst, kLast };

struct HfTensorRule {
  std::string_view name;  // suffix after the layer/expert prefix, or the full name (kGlobal)
  std::vector<Dim> shape;
};

struct WeightRule {
  Scope scope;
  std::vector<HfTensorRule> hf;  // inputs of the join, in join order
  std::string_view mca;          // suffix after "decoder.layers.<j>" / the expert prefix, or name
  Join join;
  Split split;
  When when = When::kAlways;
  Stage stage = Stage::kLayerOwner;
  bool lora = false;  // a linear module LoRA adapters can target (mca-format.md 8.2)
};

struct Family {
  std::string_view name;                              // the HF model_type
  std::string_view hf_layer_prefix;                   // "model.layers."
  std::string_view hf_expert_infix;                   // ".mlp.experts." ("" for dense families)
  std::vector<std::string_view> hf_ignored_suffixes;  // e.g. ".self_attn.rotary_emb.inv_freq"
  std::vector<WeightRule> rules;
  // Newer transformers keep routed experts fused per layer: "<layer>.mlp.experts.gate_up_proj"
  // [E, 2*Fm, H] (gate rows, then up rows, per expert) and ".down_proj" [E, H, Fm]. Layer-scope
  // HF names that change with that layout (Mixtral's router) are listed as (per-expert, fused).
  std::vector<std::pair<std::string_view, std::string_view>> fused_layout_renames;
};

// The LoRA A and B rules of a linear base rule (mca-format.md 8.3, 8.4): A [r, in] is row-split
// where the base is row-parallel and duplicated otherwise, shared by the inputs of fused modules;
// B [out, r] follows the base's join and column split, and is duplicated where the base is
// row-parallel.
std::vector<WeightRule> LoraRules(const WeightRule& base);

// The family registered for an HF model_type, or nullptr.
const Family* FindFamily(std::string_view model_type);
// Names of all registered families, for error messages.
std::string SupportedFamilies();

}  // namespace mcaconv
