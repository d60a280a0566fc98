// HF config.json -> mca_config.json (mca-format.md section 2.5), for the families listed in
// config_families.cc.
//
// The result is the field set ROLL's McaModelConfig writes on megatron-core 0.16: every Megatron
// ModelParallelConfig/TransformerConfig field with its default, ROLL's own fields, then in the
// reference's order the CLI parallel arguments that are set, --bf16/--fp16, the family's HF->MCA
// map applied to the HF config (with transformers 5.25 class defaults for keys config.json omits),
// hf_model_type, name_or_path, hf_config_json, the family constants, and finally the values
// ROLL's and Megatron's post-init derive (kv_channels, num_query_groups, ffn sizes, ETP, p2p
// flags, sequence_parallel rules, rotary_base from rope_parameters, cuda_graph_scope, ...).
// Serialise it with DumpPythonJson(...) + "\n" to get the reference's mca_config.json bytes.
//
// Known difference: hf_config_json is the input config.json re-serialised (plus
// "transformers_version" when missing), not transformers' to_json_string() of the loaded object;
// the two agree for config.json files written by transformers 5.x save_pretrained.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/convert_args.h"

namespace mcaconv {

// The transformers version written into hf_config_json when config.json has none.
inline constexpr const char* kTransformersVersion = "5.25.0";

// Builds the MCA config for `hf_config` (a parsed config.json) and the CLI arguments.
// `name_or_path` is what the reference records as name_or_path (the --checkpoint_path string).
// Throws Error(kUsage), with the numbers involved, for argument combinations or model shapes the
// conversion cannot honour (see ValidateModelShapes in model_config.h, plus bf16 with fp16,
// variable_seq_lengths with the allgather dispatcher, bad recompute/cuda-graph options), and
// Error(kUnsupported) for a model_type without a family table.
nlohmann::json BuildMcaConfig(const nlohmann::json& hf_config, const ConvertArgs& args,
                              const std::string& name_or_path);

// The value of HF attribute `dotted_key` as transformers 5.25 would expose it for this
// config.json: the file's value, else the class default, with the class post-init fill-ins and
// rope_parameters standardisation applied. nullopt when the attribute does not exist (the
// reference then skips that map entry). Throws Error(kUnsupported) for an unknown model_type.
std::optional<nlohmann::json> ResolveHfAttribute(const nlohmann::json& hf_config,
                                                 const std::string& dotted_key);

}  // namespace mcaconv
