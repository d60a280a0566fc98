// MCA -> HF: every HF tensor is gathered from the rank files through the layout's primary
// pieces; every replica piece (duplicated tensors on other TP ranks, dense weights on other EP
// ranks, the tied output layer) becomes a check against its primary.
#include "model/mca_to_hf.h"

#include <filesystem>
#include <map>
#include <tuple>

#include "core/error.h"
#include "model/checkpoint_files.h"
#include "model/convert.h"
#include "model/hf_config.h"
#include "model/plan_common.h"
#include "model/python_json.h"
#include "safetensors/safetensors.h"

namespace mcaconv {
namespace {}  // namespace

ExpertFormat DetectExpertFormat(const McaCheckpoint& mca) {
  for (const auto& [key, tensor] : mca.tensors) {
    if (key.find(".mlp.experts.weight1") != std::string::npos) return ExpertFormat::kLegacyGrouped;
    const auto pos = key.find(".mlp.experts.linear_fc");
    if (pos != std::string::npos && std::isdigit(static_cast<unsigned char>(key.back())))
      return ExpertFormat::kTeGrouped;
  }
  return ExpertFormat::kSequential;
}

namespace {

// Finds the rank-file tensor of every layout entry and checks shapes. Tensors the layout does not
// know are an error, except a tied output layer stored next to the embedding (reference habit).
std::vector<const SourceTensor*> MatchMcaTensors(const McaCheckpoint& mca, const Layout& layout,
                                                 const LayoutParams& params, bool allow_missing,
                                                 Plan& plan) {
  std::vector<const SourceTensor*> sources(layout.mca.size());
  std::map<std::string, int> expected;
  for (size_t i = 0; i < layout.mca.size(); ++i) {
    const std::string key = McaTensorKey(layout.mca[i], params);
    expected.emplace(key, static_cast<int>(i));
    auto it = mca.tensors.find(key);
    if (it == mca.tensors.end() && allow_missing) continue;
    if (it == mca.tensors.end())
      ThrowInvalid(mca.dir + ": tensor " + key + " (shape " + ShapeToString(layout.mca[i].shape) +
                   ") is missing");
    if (it->second.view.shape != layout.mca[i].shape)
      ThrowInvalid(mca.files.paths[it->second.file] + ": tensor " + layout.mca[i].name +
                   " has shape " + ShapeToString(it->second.view.shape) + ", expected " +
                   ShapeToString(layout.mca[i].shape) + " from mca_config.json");
    sources[i] = &it->second;
  }
  for (const auto& [key, tensor] : mca.tensors) {
    if (expected.count(key)) continue;
    const std::string suffix = "/output_layer.weight";
    const bool tied_head = params.tied_embeddings && key.size() > suffix.size() &&
                           key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (tied_head) {
      const std::string embed_key =
          key.substr(0, key.size() - suffix.size()) + "/embedding.word_embeddings.weight";
      auto embed = mca.tensors.find(embed_key);
      if (embed != mca.tensors.end() && embed->second.view.shape == tensor.view.shape) {
        const Box whole = WholeTensor(tensor.view.shape);
        plan.checks.push_back(
            MakeCheck(embed->second, whole, tensor, whole, key + " vs tied " + embed_key));
        continue;
      }
    }
    ThrowInvalid(mca.files.paths[tensor.file] + ": unexpected tensor " + key +
                 " (mca_config.json describes no such weight)");
  }
  return sources;
}

}  // namespace

// Splits tensors into safetensors shards greedily, as huggingface_hub does.
std::vector<std::vector<int>> ShardTensors(const std::vector<OutputTensor>& tensors,
                                           const std::vector<size_t>& order, uint64_t max_size) {
  std::vector<std::vector<int>> shards(1);
  uint64_t size = 0;
  for (size_t index : order) {
    const uint64_t bytes = tensors[index].nbytes();
    if (!shards.back().empty() && size + bytes > max_size) {
      shards.emplace_back();
      size = 0;
    }
    shards.back().push_back(static_cast<int>(index));
    size += bytes;
  }
  return shards;
}

std::string HfShardName(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

HfFilesResult PlanHfFilesFromMca(const Layout& layout, const LayoutParams& params,
                                 const McaCheckpoint& mca, const ConvertArgs& args,
                                 const HfFilesSpec& spec, Plan& plan) {
  const size_t first_input = plan.inputs.size();
  plan.inputs.insert(plan.inputs.end(), mca.files.paths.begin(), mca.files.paths.end());
  std::vector<const SourceTensor*> sources =
      MatchMcaTensors(mca, layout, params, spec.allow_missing, plan);
  std::vector<SourceTensor> rebased(sources.size());
  for (size_t i = 0; i < sources.size(); ++i) {
    if (sources[i] == nullptr) continue;
    rebased[i] = *sources[i];
    rebased[i].file += static_cast<int>(first_input);
    sources[i] = &rebased[i];
  }

  // Output tensors: one per HF tensor whose primary pieces are all present, in model order.
  std::vector<std::vector<int>> primaries(layout.hf.size());
  std::vector<int> missing(layout.hf.size(), 0);
  std::map<std::tuple<int, int64_t, Shape>, int> primary_of_box;
  for (size_t i = 0; i < layout.pieces.size(); ++i) {
    const Piece& piece = layout.pieces[i];
    if (!piece.primary) continue;
    if (sources[piece.mca] == nullptr) {
      ++missing[piece.hf];
      continue;
    }
    primaries[piece.hf].push_back(static_cast<int>(i));
    primary_of_box[{piece.hf, piece.hf_box.offset, piece.hf_box.shape}] = static_cast<int>(i);
  }
  HfFilesResult result;
  std::vector<OutputTensor> tensors;
  std::vector<int> hf_of_tensor;
  for (size_t h = 0; h < layout.hf.size(); ++h) {
    if (primaries[h].empty()) continue;
    if (missing[h] > 0)
      ThrowInvalid(mca.dir + ": " + layout.hf[h].name + " is only partly present: " +
                   std::to_string(missing[h]) + " of its shards are missing from the rank files");
    const DType source = sources[layout.pieces[primaries[h][0]].mca]->view.dtype;
    tensors.push_back(
        {spec.name_prefix + layout.hf[h].name, OutputDType(source, args), layout.hf[h].shape});
    hf_of_tensor.push_back(static_cast<int>(h));
    result.written_hf.push_back(static_cast<int>(h));
  }
  std::vector<std::string> names;
  for (const auto& t : tensors) names.push_back(t.name);
  const auto shards = ShardTensors(
      tensors, ModelOrder(names),
      spec.single_file.empty() ? args.max_shard_size.value_or(kDefaultMaxShardSize) : UINT64_MAX);

  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total_size = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    OutputFilePlan file;
    const std::string name = !spec.single_file.empty() ? spec.single_file
                             : shards.size() == 1      ? "model.safetensors"
                                                       : HfShardName(s, shards.size());
    file.relative_path = spec.dir_prefix + name;
    for (int index : shards[s]) file.tensors.push_back(tensors[index]);
    file.layout = PlanSafetensors(file.tensors, {{"format", "pt"}});
    for (size_t t = 0; t < file.tensors.size(); ++t) {
      const OutputTensor& out = file.tensors[t];
      weight_map[out.name] = name;
      total_size += out.nbytes();
      for (int piece_index : primaries[hf_of_tensor[shards[s][t]]]) {
        const Piece& piece = layout.pieces[piece_index];
        const SourceTensor& source = *sources[piece.mca];
        if (OutputDType(source.view.dtype, args) != out.dtype)
          ThrowInvalid(source.name + ": " + std::string(Name(source.view.dtype)) +
                       " data does not match the other shards of " + out.name);
        file.ops.push_back(MakeCopy(source, piece.mca_box, file.layout.tensor_offsets[t],
                                    piece.hf_box, out.dtype));
      }
    }
    plan.files.push_back(std::move(file));
  }

  // Replicas must equal their primary, unless the user chose to trust rank 0.
  if (args.replica_check != "rank0") {
    for (const Piece& piece : layout.pieces) {
      if (piece.primary || sources[piece.mca] == nullptr) continue;
      auto it = primary_of_box.find({piece.hf, piece.hf_box.offset, piece.hf_box.shape});
      if (it == primary_of_box.end()) continue;
      const Piece& primary = layout.pieces[it->second];
      const SourceTensor& a = *sources[primary.mca];
      const SourceTensor& b = *sources[piece.mca];
      plan.checks.push_back(MakeCheck(a, primary.mca_box, b, piece.mca_box,
                                      layout.hf[piece.hf].name + ": " +
                                          McaTensorKey(layout.mca[primary.mca], params) + " vs " +
                                          McaTensorKey(layout.mca[piece.mca], params)));
      plan.checks.back().tolerance = args.replica_check == "tolerance" ? args.replica_tolerance : 0;
    }
  }

  if (shards.size() > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
    plan.text_files.push_back(
        {spec.dir_prefix + "model.safetensors.index.json", DumpPythonJson(index) + "\n"});
  }
  if (!tensors.empty()) result.dtype = tensors.front().dtype;
  return result;
}

Plan PlanMcaToHf(const ConvertArgs& args) {
  const std::string dir = args.checkpoint_path;
  const std::string config_path = dir + "/mca_config.json";
  const nlohmann::json mca_config = ReadJsonFile(config_path);
  LayoutParams params = LayoutParamsFromMcaConfig(mca_config, config_path);
  const McaCheckpoint mca = OpenMcaCheckpoint(dir, params);
  params.expert_format = DetectExpertFormat(mca);
  params.fused_hf_experts = args.hf_expert_layout == "fused";
  const Layout layout = BuildLayout(params);

  Plan plan;
  const HfFilesResult written = PlanHfFilesFromMca(layout, params, mca, args, {}, plan);
  std::optional<std::string> torch_dtype;
  if (written.dtype) torch_dtype = std::string(Name(*written.dtype));
  nlohmann::json hf_config = BuildHfConfig(mca_config, torch_dtype);
  if (args.convert_model_max_length) ApplyModelMaxLength(hf_config, *args.convert_model_max_length);
  plan.text_files.push_back({"config.json", DumpPythonJson(hf_config) + "\n"});
  plan.copied_files = AuxiliaryFiles(dir, true);
  return plan;
}

}  // namespace mcaconv
