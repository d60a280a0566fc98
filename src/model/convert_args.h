// Every option of `mca-convert` conversion runs: the reference CLI's ConvertArguments and
// DistributingParallelArguments (mca-format.md section 9.2) with the same names and defaults, plus
// our own options. Optional fields are unset when the flag was not given, exactly where the
// reference uses None.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mcaconv {

struct ParallelArgs {
  std::optional<int> tensor_model_parallel_size;
  std::optional<int> pipeline_model_parallel_size;
  bool sequence_parallel = false;
  std::optional<int> virtual_pipeline_model_parallel_size;
  std::optional<int> context_parallel_size;
  std::optional<int> expert_model_parallel_size;
  std::optional<int> expert_tensor_parallel_size;
  std::optional<bool> account_for_embedding_in_pipeline_split;
  std::optional<bool> account_for_loss_in_pipeline_split;
  std::optional<std::string> pipeline_model_parallel_layout;
  bool overlap_p2p_comm = true;
  bool variable_seq_lengths = false;
  std::optional<std::string> recompute_granularity;  // full | selective
  std::optional<std::string> recompute_method;       // uniform | recompute (reference's choices)
  std::optional<std::vector<std::string>> recompute_modules;
  std::optional<int> recompute_num_layers;
  bool bias_activation_fusion = false;
  bool apply_rope_fusion = false;
  bool cross_entropy_loss_fusion = false;
  bool moe_layer_recompute = false;
  std::string moe_token_dispatcher_type = "allgather";  // allgather | alltoall
  std::optional<double> moe_aux_loss_coeff;
  std::optional<bool> moe_grouped_gemm;
  std::optional<double> moe_expert_capacity_factor;
  std::optional<bool> moe_pad_expert_input_to_capacity;
  std::optional<std::string> moe_token_drop_policy;  // probs | position
  bool moe_shared_expert_overlap = false;
  bool moe_enable_routing_replay = false;
  std::optional<std::string> moe_router_dtype;
  std::optional<int> mtp_num_layers = 0;
  bool calculate_per_token_loss = false;
  std::optional<std::string> transformer_impl;  // local | transformer_engine
  std::optional<std::string> cuda_graph_impl;
  std::vector<std::string> cuda_graph_scope = {"full"};
  std::optional<std::string> fp8_recipe;
  bool fp8_param = false;
  std::optional<std::string> fp8;
  // Ours: how grouped-GEMM experts are named when written ("te": linear_fc1.weight<i>, the default;
  // "legacy": weight1/weight2). The reference decides this by whether TransformerEngine imports.
  std::string moe_grouped_gemm_format = "te";
};

struct ConvertArgs {
  // Reference ConvertArguments.
  std::string checkpoint_path;  // required
  std::optional<std::string> adapter_path;
  std::string output_path = "./output";
  bool bf16 = false;
  bool fp16 = false;
  std::optional<int64_t> convert_model_max_length;
  ParallelArgs parallel;

  // Ours.
  bool dry_run = false;
  bool overwrite = false;
  bool reshard = false;                         // MCA -> MCA for the given sizes (reshard.h)
  std::string hf_expert_layout = "per_expert";  // per_expert | fused, for HF output
  int threads = 0;                                 // 0: all online CPUs
  std::optional<uint64_t> max_shard_size;          // bytes; default 5 GB (decimal) for HF output
  int verbosity = 0;                               // -q: -1, -v: 1, -vv: 2
  std::string replica_check = "error";             // error | rank0 | tolerance
  double replica_tolerance = 0;                    // with replica_check == "tolerance"
  std::optional<std::string> merge_lora;           // adapter name to merge into the base (LoRA)
};

}  // namespace mcaconv
