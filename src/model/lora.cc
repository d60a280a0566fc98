#include "model/lora.h"

#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "model/checkpoint_files.h"
#include "model/hf_to_mca.h"
#include "model/layout.h"
#include "model/mca_config.h"
#include "model/mca_to_hf.h"
#include "model/plan_common.h"
#include "model/python_json.h"
#include "safetensors/safetensors.h"
#include "torchzip/torch_file.h"

namespace mcaconv {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kPeftPrefix = "base_model.model.";

int64_t PositiveInt(const nlohmann::json& config, const char* key, const std::string& path) {
  if (!config.contains(key) || !config[key].is_number_integer() || config[key].get<int64_t>() <= 0)
    ThrowInvalid(path + ": " + key + " must be a positive integer");
  return config[key].get<int64_t>();
}

// The module a LoRA tensor adapts: "model.layers.0.self_attn.q_proj.lora_A.weight" -> "q_proj".
std::string ModuleOf(const std::string& name) {
  const auto lora = name.rfind(".lora_");
  const std::string module = name.substr(0, lora);
  return module.substr(module.rfind('.') + 1);
}

bool IsExpertModule(const std::string& name) { return name.find(".experts.") != std::string::npos; }

// Megatron module names ROLL records in target_modules for each HF module.
std::string MegatronModule(const std::string& hf_module) {
  static const std::map<std::string, std::string> names = {
      {"q_proj", "linear_qkv"},  {"k_proj", "linear_qkv"},    {"v_proj", "linear_qkv"},
      {"o_proj", "linear_proj"}, {"gate_proj", "linear_fc1"}, {"up_proj", "linear_fc1"},
      {"w1", "linear_fc1"},      {"w3", "linear_fc1"},        {"down_proj", "linear_fc2"},
      {"w2", "linear_fc2"}};
  auto it = names.find(hf_module);
  return it == names.end() ? hf_module : it->second;
}

// The PEFT adapter_config.json for an adapter whose tensors are `hf_names`: the training
// options come from the ROLL adapter config, target modules from the tensors themselves, and
// expert modules of a different rank go into rank_pattern.
nlohmann::json PeftConfig(const nlohmann::json& source, const std::vector<std::string>& hf_names,
                          int64_t rank, int64_t expert_rank, const std::string& base_path) {
  std::set<std::string> modules, expert_modules;
  for (const auto& name : hf_names) {
    modules.insert(ModuleOf(name));
    if (IsExpertModule(name)) expert_modules.insert(ModuleOf(name));
  }
  nlohmann::json rank_pattern = nlohmann::json::object();
  if (expert_rank != rank)
    for (const auto& module : expert_modules)
      rank_pattern["experts\\.\\d+\\." + module] = expert_rank;
  return {
      {"alpha_pattern", source.value("alpha_pattern", nlohmann::json::object())},
      {"auto_mapping", nullptr},
      {"base_model_name_or_path", base_path},
      {"bias", source.value("bias", "none")},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layers_pattern", nullptr},
      {"layers_to_transform", nullptr},
      {"lora_alpha", source.value("lora_alpha", nlohmann::json(8))},
      {"lora_dropout", source.value("lora_dropout", nlohmann::json(0.0))},
      {"modules_to_save", source.value("modules_to_save", nlohmann::json())},
      {"peft_type", "LORA"},
      {"r", rank},
      {"rank_pattern", rank_pattern},
      {"revision", nullptr},
      {"target_modules", std::vector<std::string>(modules.begin(), modules.end())},
      {"task_type", source.value("task_type", nlohmann::json("CAUSAL_LM"))},
      {"use_dora", false},
      {"use_rslora", source.value("use_rslora", false)},
  };
}

// Sub-folders of `root` holding adapter_config.json, by name.
std::vector<std::string> AdapterNames(const fs::path& root) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory() && fs::exists(entry.path() / "adapter_config.json"))
      names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Rank of the expert adapters found in the rank files (TE-grouped training divides r by top-k).
int64_t ExpertRank(const McaCheckpoint& mca, int64_t rank) {
  for (const auto& [key, tensor] : mca.tensors)
    if (key.find(".experts.") != std::string::npos && key.find(".lora_A.") != std::string::npos &&
        !tensor.view.shape.empty())
      return tensor.view.shape[0];
  return rank;
}

// Keeps the part of `layout` whose HF tensors the adapter has. An MCA tensor needs all of its
// HF inputs (q, k and v share linear_qkv); having only some of them is an error.
Layout KeepPresentHf(const Layout& layout, const std::set<std::string>& present,
                     const std::string& adapter) {
  std::vector<int> hf_index(layout.hf.size(), -1), mca_index(layout.mca.size(), -1);
  std::vector<int> kept(layout.mca.size(), 0), total(layout.mca.size(), 0);
  Layout out;
  for (size_t h = 0; h < layout.hf.size(); ++h) {
    if (!present.count(layout.hf[h].name)) continue;
    hf_index[h] = static_cast<int>(out.hf.size());
    out.hf.push_back(layout.hf[h]);
  }
  for (const Piece& piece : layout.pieces) {
    ++total[piece.mca];
    if (hf_index[piece.hf] >= 0) ++kept[piece.mca];
  }
  for (size_t m = 0; m < layout.mca.size(); ++m) {
    if (kept[m] == 0) continue;
    if (kept[m] != total[m])
      ThrowInvalid(adapter + ": " + layout.mca[m].name +
                   " needs LoRA tensors for every module it fuses (q/k/v or gate/up); the "
                   "adapter has only some of them");
    mca_index[m] = static_cast<int>(out.mca.size());
    out.mca.push_back(layout.mca[m]);
  }
  for (Piece piece : layout.pieces) {
    if (mca_index[piece.mca] < 0) continue;
    piece.hf = hf_index[piece.hf];
    piece.mca = mca_index[piece.mca];
    out.pieces.push_back(piece);
  }
  return out;
}

ExpertFormat ExpertFormatForWriting(const nlohmann::json& mca, const ConvertArgs& args) {
  if (!mca.value("moe_grouped_gemm", false)) return ExpertFormat::kSequential;
  return args.parallel.moe_grouped_gemm_format == "legacy" ? ExpertFormat::kLegacyGrouped
                                                           : ExpertFormat::kTeGrouped;
}

// One PEFT adapter: its config and its tensors (prefix removed), kept alive for planning.
struct PeftAdapter {
  std::string name;
  fs::path dir;
  nlohmann::json config;
  std::string weights_path;
  std::shared_ptr<void> keep_alive;
  std::map<std::string, SourceTensor> tensors;
};

PeftAdapter OpenPeftAdapter(const std::string& name, const fs::path& dir) {
  PeftAdapter adapter;
  adapter.name = name;
  adapter.dir = dir;
  adapter.config = ReadJsonFile((dir / "adapter_config.json").string());
  std::vector<SourceTensor> tensors;
  if (fs::exists(dir / "adapter_model.safetensors")) {
    adapter.weights_path = (dir / "adapter_model.safetensors").string();
    auto file = std::make_shared<SafetensorsFile>(OpenSafetensors(adapter.weights_path));
    tensors = file->tensors;
    adapter.keep_alive = file;
  } else if (fs::exists(dir / "adapter_model.bin")) {
    adapter.weights_path = (dir / "adapter_model.bin").string();
    auto file = std::make_shared<TorchFile>(OpenTorchFile(adapter.weights_path));
    tensors = file->tensors;
    adapter.keep_alive = file;
  } else {
    ThrowInvalid(dir.string() + ": no adapter_model.safetensors or adapter_model.bin");
  }
  for (auto& tensor : tensors) {
    std::string key = tensor.name;
    if (key.rfind(kPeftPrefix, 0) == 0) key = key.substr(kPeftPrefix.size());
    adapter.tensors.emplace(key, tensor);
  }
  return adapter;
}

}  // namespace

Plan PlanMcaAdapterToPeft(const ConvertArgs& args) {
  const fs::path root = *args.adapter_path;
  const std::string config_path = (root / "mca_config.json").string();
  const nlohmann::json mca_config = ReadJsonFile(config_path);
  const LayoutParams base = LayoutParamsFromMcaConfig(mca_config, config_path);
  const std::vector<std::string> names = AdapterNames(root);
  if (names.empty())
    ThrowInvalid(root.string() + ": no adapter folders (sub-folders with adapter_config.json)");

  Plan plan;
  for (const std::string& name : names) {
    const fs::path dir = root / name;
    const std::string adapter_config_path = (dir / "adapter_config.json").string();
    const nlohmann::json adapter_config = ReadJsonFile(adapter_config_path);
    LayoutParams params = base;
    params.lora_rank = PositiveInt(adapter_config, "r", adapter_config_path);
    const McaCheckpoint mca = OpenMcaCheckpoint(dir.string(), params);
    params.expert_format = DetectExpertFormat(mca);
    params.lora_expert_rank = ExpertRank(mca, params.lora_rank);
    const Layout layout = BuildLayout(params);

    HfFilesSpec spec;
    spec.name_prefix = std::string(kPeftPrefix);
    spec.dir_prefix = name == "default" ? "" : name + "/";
    spec.single_file = "adapter_model.safetensors";
    spec.allow_missing = true;
    const HfFilesResult written = PlanHfFilesFromMca(layout, params, mca, args, spec, plan);
    if (written.written_hf.empty())
      ThrowInvalid(dir.string() + ": the rank files hold no LoRA tensors");
    std::vector<std::string> hf_names;
    for (int h : written.written_hf) hf_names.push_back(layout.hf[h].name);
    const nlohmann::json peft = PeftConfig(adapter_config, hf_names, params.lora_rank,
                                           params.lora_expert_rank, args.checkpoint_path);
    plan.text_files.push_back(
        {spec.dir_prefix + "adapter_config.json", DumpPythonJson(peft) + "\n"});
  }
  return plan;
}

Plan PlanPeftToMcaAdapter(const ConvertArgs& args) {
  const fs::path root = *args.adapter_path;
  std::vector<PeftAdapter> adapters;
  if (fs::exists(root / "adapter_config.json"))
    adapters.push_back(OpenPeftAdapter("default", root));
  for (const std::string& name : AdapterNames(root))
    adapters.push_back(OpenPeftAdapter(name, root / name));
  if (adapters.empty())
    ThrowUsage(root.string() +
               " is neither an MCA adapter folder (mca_config.json) nor a PEFT "
               "adapter (adapter_config.json)");

  const nlohmann::json hf_config =
      ReadJsonFile((fs::path(args.checkpoint_path) / "config.json").string());
  const nlohmann::json mca_config = BuildMcaConfig(hf_config, args, args.checkpoint_path);
  LayoutParams base = LayoutParamsFromMcaConfig(mca_config, args.checkpoint_path + "/config.json");
  base.expert_format = ExpertFormatForWriting(mca_config, args);

  Plan plan;
  plan.text_files.push_back({"mca_config.json", DumpPythonJson(mca_config) + "\n"});
  for (const PeftAdapter& adapter : adapters) {
    const std::string config_path = (adapter.dir / "adapter_config.json").string();
    LayoutParams params = base;
    params.lora_rank = PositiveInt(adapter.config, "r", config_path);
    params.lora_expert_rank = params.lora_rank;
    for (const auto& [key, tensor] : adapter.tensors)
      if (IsExpertModule(key) && key.find(".lora_A.") != std::string::npos)
        params.lora_expert_rank = tensor.view.shape.at(0);

    std::set<std::string> present;
    for (const auto& [key, tensor] : adapter.tensors) present.insert(key);
    const Layout full = BuildLayout(params);
    const Layout layout = KeepPresentHf(full, present, adapter.weights_path);
    std::set<std::string> known;
    for (const auto& t : full.hf) known.insert(t.name);
    const int file = static_cast<int>(plan.inputs.size());
    plan.inputs.push_back(adapter.weights_path);
    std::vector<SourceTensor> rebased;
    for (const auto& [key, tensor] : adapter.tensors) {
      if (!known.count(key))
        ThrowUnsupported(adapter.weights_path + ": LoRA tensor " + tensor.name +
                         " adapts a module MCA adapters cannot hold (only attention and MLP "
                         "projections)");
    }
    rebased.reserve(layout.hf.size());
    std::vector<const SourceTensor*> sources;
    for (const HfTensor& want : layout.hf) {
      SourceTensor tensor = adapter.tensors.at(want.name);
      if (tensor.view.shape != want.shape)
        ThrowInvalid(adapter.weights_path + ": " + tensor.name + " has shape " +
                     ShapeToString(tensor.view.shape) + ", expected " + ShapeToString(want.shape));
      tensor.file = file;
      rebased.push_back(tensor);
    }
    for (const auto& tensor : rebased) sources.push_back(&tensor);

    const std::string prefix = adapter.name + "/";
    PlanRankFilesFromHf(layout, params, sources, args, prefix, plan);

    nlohmann::json roll_config = adapter.config;
    std::set<std::string> targets;
    for (const HfTensor& t : layout.hf) targets.insert(MegatronModule(ModuleOf(t.name)));
    roll_config["target_modules"] = std::vector<std::string>(targets.begin(), targets.end());
    plan.text_files.push_back({prefix + "adapter_config.json", DumpPythonJson(roll_config) + "\n"});
    plan.text_files.push_back({prefix + "mca_config.json", DumpPythonJson(mca_config) + "\n"});
    plan.text_files.push_back({prefix + "latest_checkpointed_iteration.txt", "1"});
  }
  return plan;
}

}  // namespace mcaconv
