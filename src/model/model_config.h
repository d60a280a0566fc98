// The parsed model description the tensor layout engine works from: the fields of an
// mca_config.json that decide tensor names, shapes, splits and their placement across ranks
// (mca-format.md sections 2.3 and 2.4), with the reference's defaults and derived values filled in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mcaconv {

struct ModelConfig {
  std::string model_type;  // hf_model_type, selects the family template
  int64_t num_layers = 0;
  int64_t hidden_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_query_groups = 0;         // null in the file: num_attention_heads
  int64_t kv_channels = 0;              // null in the file: hidden_size / num_attention_heads
  int64_t ffn_hidden_size = 0;          // null in the file: 4 * hidden_size
  int64_t moe_ffn_hidden_size = 0;      // 0 when dense; null in the file: ffn_hidden_size
  int64_t num_moe_experts = 0;          // 0: dense model
  int64_t moe_router_topk = 0;
  std::vector<bool> is_moe;             // per decoder layer, from moe_layer_freq (all false: dense)
  int64_t moe_shared_expert_intermediate_size = 0;  // 0: no shared expert
  bool moe_grouped_gemm = false;
  bool moe_use_legacy_grouped_gemm = false;
  int64_t padded_vocab_size = 0;
  bool tie_embeddings_and_output_weights = false;
  bool add_qkv_bias = false;
  bool qk_layernorm = false;
  std::string transformer_impl = "transformer_engine";  // or "local"
  int64_t mtp_num_layers = 0;           // null in the file: 0
  int tp = 1;
  int pp = 1;
  int vpp = 0;                          // 0 when virtual_pipeline_model_parallel_size is null
  int ep = 1;
  int etp = 1;                          // null in the file: tp
  bool account_for_embedding_in_pipeline_split = false;
  bool account_for_loss_in_pipeline_split = false;
  std::string pipeline_model_parallel_layout;  // empty when null
  bool bf16 = false;
  bool fp16 = false;

  int vpp_or_one() const { return vpp > 0 ? vpp : 1; }
};

// Builds a ModelConfig from a parsed mca_config.json. Missing keys take the reference's dataclass
// defaults (as ROLL does when it loads the file). Throws Error(kInvalidInput) naming
// `path_for_errors` and the key when a value has the wrong type or an impossible shape (the
// divisibility rules of ValidateModelShapes).
ModelConfig ParseMcaConfig(const nlohmann::json& mca_config, const std::string& path_for_errors);

// ParseMcaConfig without the shape validation (types and ranges are still checked).
ModelConfig ReadModelConfig(const nlohmann::json& mca_config, const std::string& path_for_errors);

// Checks that the model splits evenly across the parallel layout: heads, query groups, vocab and
// FFN sizes divisible by TP (expert FFN by ETP), experts by EP, ETP == TP (the legacy per-rank
// format cannot hold anything else, mca-format.md Q-ETP), layers across PP * VPP (with the
// account_for_* adjustments) or a valid layout string. Throws Error(kind) whose message starts
// with `context` and gives the numbers.
void ValidateModelShapes(const ModelConfig& config, const std::string& context, ErrorKind kind);

// Expands a pipeline_model_parallel_layout string the way Megatron does (mca-format.md 5.2):
// commas dropped, `(...)*n` then `x*n` unrolled, split on `|`. Returns one string of layer
// characters (E, L, t, m) per stage, or false with a reason in `error`.
bool ExpandPipelineLayout(const std::string& layout, std::vector<std::string>* stages,
                          std::string* error);

// Checks an expanded layout against the model (Megatron's rules: exactly one E, first; exactly one
// L, last; `num_layers` t's; `mtp_num_layers` m's, after every t; stage count divisible by `pp`).
// Returns false with a reason in `error`.
bool CheckPipelineLayout(const std::vector<std::string>& stages, int64_t num_layers,
                         int64_t mtp_num_layers, int pp, std::string* error);

}  // namespace mcaconv
