// mca_config.json -> HF config.json (mca-format.md section 2.6).
//
// The reference rebuilds a transformers config object from the stored `hf_config_json` plus the
// MCA values of the family map and lets transformers write it; we do the equivalent on the JSON:
// start from the `hf_config_json` dict, write every MCA value of the inverse family map at its HF
// path with the reference's set_hf_config_value rules, set model_type, and serialise with
// DumpPythonJson(...) + "\n" (sorted keys, indent 2). transformers would additionally drop keys
// equal to its class defaults and stamp its own version; we keep the stored dict as it is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace mcaconv {

// Builds the HF config dict from a parsed mca_config.json. When `torch_dtype` is set (an output
// cast was requested, e.g. "bfloat16"), sets "torch_dtype" and, if the stored config has one,
// "dtype". Throws Error(kInvalidInput) for a missing or malformed hf_config_json or a nested HF
// path whose parent is absent (the reference raises KeyError there, mca-format.md Q-SETPATH),
// Error(kUnsupported) for an unknown hf_model_type.
nlohmann::json BuildHfConfig(const nlohmann::json& mca_config,
                             std::optional<std::string> torch_dtype);

// --convert_model_max_length N: sets top-level max_position_embeddings and model_max_length to N.
// As in the reference (mca-format.md Q-MODELMAXLEN) nested text_config values and
// tokenizer_config.json are left alone.
void ApplyModelMaxLength(nlohmann::json& hf_config, int64_t n);

// The text written to config.json: DumpPythonJson(hf_config) + "\n".
std::string HfConfigFileText(const nlohmann::json& hf_config);

}  // namespace mcaconv
