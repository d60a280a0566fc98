#include "model/hf_config.h"

#include <utility>
#include <vector>

#include "core/error.h"
#include "model/config_families.h"
#include "model/python_json.h"

namespace mcaconv {
namespace {

using nlohmann::json;

const FamilyConfigSpec& FamilyOfMca(const json& mca) {
  const auto it = mca.find("hf_model_type");
  if (it == mca.end() || !it->is_string()) {
    ThrowInvalid("mca_config.json: key \"hf_model_type\" is missing or not a string");
  }
  const FamilyConfigSpec* spec = FindFamilyConfig(it->get<std::string>());
  if (spec == nullptr) {
    ThrowUnsupported("mca_config.json: hf_model_type \"" + it->get<std::string>() +
                     "\" is not supported (supported: " + SupportedFamilyList() + ")");
  }
  return *spec;
}

json StoredHfConfig(const json& mca) {
  const auto it = mca.find("hf_config_json");
  if (it == mca.end() || !it->is_string()) {
    ThrowInvalid("mca_config.json: key \"hf_config_json\" is missing or not a string");
  }
  json cfg = json::parse(it->get<std::string>(), nullptr, /*allow_exceptions=*/false);
  if (!cfg.is_object()) {
    ThrowInvalid("mca_config.json: key \"hf_config_json\": expected a JSON object in the string");
  }
  return cfg;
}

// The inverse family map as a Python dict {mca_key: hf_key} would hold it: a later HF key for
// the same MCA key replaces the earlier one in place.
std::vector<std::pair<std::string, std::string>> InverseMap(const FamilyConfigSpec& spec) {
  std::vector<std::pair<std::string, std::string>> inverse;
  for (const ConfigKeyPair& pair : spec.hf_to_mca) {
    bool replaced = false;
    for (auto& [mca_key, hf_key] : inverse) {
      if (mca_key == pair.mca_key) hf_key = pair.hf_key, replaced = true;
    }
    if (!replaced) inverse.emplace_back(pair.mca_key, pair.hf_key);
  }
  return inverse;
}

// The MCA config attribute: the file's value, else the dataclass default (ROLL fills missing keys
// with defaults when loading). nullopt when the class has no such field.
std::optional<json> McaAttribute(const FamilyConfigSpec& spec, const json& mca,
                                 const std::string& key) {
  if (mca.contains(key)) return mca[key];
  for (const ConfigJsonValue& field : spec.extra_fields) {
    if (key == field.key) return json::parse(field.json);
  }
  const json& defaults = McaFieldDefaults();
  if (defaults.contains(key)) return defaults[key];
  return std::nullopt;
}

// set_hf_config_value: at each missing path component the value is also stored at the top level
// under the full dotted key; a missing intermediate dict is an error.
void SetHfConfigValue(json& root, const std::string& dotted_key, const json& value) {
  json* node = &root;
  size_t start = 0;
  while (true) {
    const size_t end = dotted_key.find('.', start);
    const std::string name = dotted_key.substr(start, end - start);
    if (!node->is_object()) {
      ThrowInvalid("mca_config.json: hf_config_json: cannot set \"" + dotted_key + "\": \"" +
                   dotted_key.substr(0, start ? start - 1 : 0) + "\" is not an object");
    }
    const bool missing = !node->contains(name);
    if (missing) root[dotted_key] = value;
    if (end == std::string::npos) {
      (*node)[name] = value;
      return;
    }
    if (missing) {
      ThrowInvalid("mca_config.json: hf_config_json: cannot set \"" + dotted_key + "\": \"" + name +
                   "\" is missing from the stored HF config");
    }
    node = &(*node)[name];
    start = end + 1;
  }
}

}  // namespace

nlohmann::json BuildHfConfig(const nlohmann::json& mca_config,
                             std::optional<std::string> torch_dtype) {
  if (!mca_config.is_object()) ThrowInvalid("mca_config.json: expected a JSON object");
  const FamilyConfigSpec& spec = FamilyOfMca(mca_config);
  json cfg = StoredHfConfig(mca_config);
  for (const auto& [mca_key, hf_key] : InverseMap(spec)) {
    const std::optional<json> value = McaAttribute(spec, mca_config, mca_key);
    // A per-layer moe_layer_freq list has no HF spelling; the stored decoder_sparse_step and
    // mlp_only_layers already describe it.
    // For the same models ffn_hidden_size is the dense size, not qwen2_moe's expert size.
    const bool per_layer =
        mca_config.contains("moe_layer_freq") && mca_config["moe_layer_freq"].is_array();
    if (per_layer && (mca_key == "moe_layer_freq" || mca_key == "ffn_hidden_size")) continue;
    if (value) SetHfConfigValue(cfg, hf_key, *value);
  }
  cfg["model_type"] = spec.model_type;
  if (torch_dtype) {
    cfg["torch_dtype"] = *torch_dtype;
    if (cfg.contains("dtype")) cfg["dtype"] = *torch_dtype;
  }
  return cfg;
}

void ApplyModelMaxLength(nlohmann::json& hf_config, int64_t n) {
  hf_config["max_position_embeddings"] = n;
  hf_config["model_max_length"] = n;
}

std::string HfConfigFileText(const nlohmann::json& hf_config) {
  return DumpPythonJson(hf_config) + "\n";
}

}  // namespace mcaconv
