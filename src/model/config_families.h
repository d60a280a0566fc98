// Per-family configuration tables of the HF <-> MCA config conversion (mca-format.md sections 2.2
// and 3.4), kept as data: adding one of the other reference families is adding one row to
// kFamilyConfigs in config_families.cc, plus any field its config class adds.
//
// Two kinds of facts live here:
//   * the reference template's view (ROLL mcore_adapter): the HF attribute -> MCA key map, the
//     constants applied last, and the fields the family's MCA config class adds;
//   * transformers 5.25's view of an HF config.json: the class defaults an attribute takes when
//     config.json omits it, attribute aliases (`attribute_map`), and the two post-init fill-ins
//     (num_key_value_heads and head_dim). ROLL reads HF values as attributes of the transformers
//     config object, so these defaults take part in the conversion.
#pragma once

#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace mcaconv {

struct ConfigKeyPair {
  const char* hf_key;   // dotted attribute path of the HF config
  const char* mca_key;  // MCA config field
};

struct ConfigJsonValue {
  const char* key;
  const char* json;  // the value as JSON text, e.g. "true", "\"RMSNorm\"", "1e-06"
};

struct FamilyConfigSpec {
  const char* model_type;
  // HF attribute -> MCA key, in the reference template's order.
  std::vector<ConfigKeyPair> hf_to_mca;
  // Applied after everything else; override CLI values too.
  std::vector<ConfigJsonValue> constants;
  // Dataclass fields the family's MCA config class adds to the common set (with defaults).
  std::vector<ConfigJsonValue> extra_fields;
  // transformers class defaults of the mapped attributes (a null default is listed as null).
  std::vector<ConfigJsonValue> hf_defaults;
  double hf_default_rope_theta;
  // transformers attribute_map entries: alias -> stored attribute name.
  std::vector<ConfigKeyPair> hf_aliases;
  // Post-init of the transformers class: null num_key_value_heads becomes num_attention_heads;
  // null head_dim becomes hidden_size // num_attention_heads.
  bool hf_kv_heads_default_to_heads;
  bool hf_head_dim_default_to_ratio;
  // The MCA config class derives rotary_scaling = (rope_scaling or rope_parameters set); llama.
  bool mca_rotary_scaling_from_rope;
};

// The spec of `model_type`, or nullptr when the family is not supported.
const FamilyConfigSpec* FindFamilyConfig(std::string_view model_type);

// Comma-separated list of the supported model types (for error messages).
std::string SupportedFamilyList();

// Every serialised field of ROLL's McaModelConfig on megatron-core 0.16 (Megatron's
// ModelParallelConfig + TransformerConfig fields, mca-format.md Appendix A, plus ROLL's own,
// section 2.2) with its dataclass default, before any post-init. Fields whose value is a callable,
// a torch dtype or an enum are absent because the reference never writes them.
const nlohmann::json& McaFieldDefaults();

}  // namespace mcaconv
