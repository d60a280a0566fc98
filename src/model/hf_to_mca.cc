// HF -> MCA: every rank file is a torch.save archive whose tensors are gathered from the HF
// weights through the layout's pieces.
#include "model/hf_to_mca.h"

#include <filesystem>
#include <map>

#include "core/error.h"
#include "model/checkpoint_files.h"
#include "model/convert.h"
#include "model/hf_config.h"
#include "model/mca_config.h"
#include "model/plan_common.h"
#include "model/python_json.h"
#include "torchzip/torch_file.h"

namespace mcaconv {
namespace {

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Finds the HF tensor of every layout entry and checks shapes; returns them by layout index.
// Tensors the layout does not know are an error, except ignored buffers and a tied LM head,
// which is checked against the embedding instead.
std::vector<const SourceTensor*> MatchHfTensors(const HfCheckpoint& hf, const Layout& layout,
                                                Plan& plan) {
  std::vector<const SourceTensor*> sources(layout.hf.size());
  std::map<std::string, int> expected;
  for (size_t i = 0; i < layout.hf.size(); ++i) {
    const HfTensor& want = layout.hf[i];
    expected.emplace(want.name, static_cast<int>(i));
    auto it = hf.tensors.find(want.name);
    if (it == hf.tensors.end())
      ThrowInvalid(hf.dir + ": tensor " + want.name + " (shape " + ShapeToString(want.shape) +
                   ") is missing from " + hf.weights_description);
    if (it->second.view.shape != want.shape)
      ThrowInvalid(hf.files.paths[it->second.file] + ": tensor " + want.name + " has shape " +
                   ShapeToString(it->second.view.shape) + ", expected " +
                   ShapeToString(want.shape) + " from config.json");
    sources[i] = &it->second;
  }
  for (const auto& [name, tensor] : hf.tensors) {
    if (expected.count(name)) continue;
    bool ignored = false;
    for (const auto& suffix : layout.ignored_hf_suffixes) ignored |= EndsWith(name, suffix);
    if (ignored) continue;
    if (name == "lm_head.weight" && layout.tied_embedding_hf >= 0) {
      const SourceTensor& embed = *sources[layout.tied_embedding_hf];
      if (tensor.view.shape != embed.view.shape || tensor.view.dtype != embed.view.dtype)
        ThrowInvalid(hf.files.paths[tensor.file] +
                     ": lm_head.weight does not match the tied "
                     "embedding's shape and dtype");
      plan.checks.push_back(MakeCheck(embed, WholeTensor(embed.view.shape), tensor,
                                      WholeTensor(tensor.view.shape),
                                      "lm_head.weight vs tied model.embed_tokens.weight"));
      continue;
    }
    ThrowInvalid(hf.files.paths[tensor.file] + ": unexpected tensor " + name +
                 " (config.json describes no such weight for this model family)");
  }
  return sources;
}

// The object pickled into one rank file: {"model": {...}} or {"model0": {...}, ...}.
pickle::ValuePtr RankRoot(const LayoutParams& params,
                          const std::vector<std::vector<std::pair<std::string, int>>>& stages) {
  std::vector<std::pair<pickle::ValuePtr, pickle::ValuePtr>> root;
  for (size_t vp = 0; vp < stages.size(); ++vp) {
    std::vector<std::pair<pickle::ValuePtr, pickle::ValuePtr>> entries;
    for (const auto& [name, index] : stages[vp])
      entries.emplace_back(pickle::MakeString(name), pickle::MakeTensor(index));
    root.emplace_back(pickle::MakeString(StageKey(static_cast<int>(vp), params)),
                      pickle::MakeDict(std::move(entries)));
  }
  return pickle::MakeDict(std::move(root));
}

// Plans one rank file holding `members` (indices into layout.mca).
OutputFilePlan PlanRankFile(const std::string& relative_path, const std::vector<int>& members,
                            const Layout& layout, const LayoutParams& params,
                            const std::vector<const SourceTensor*>& sources,
                            const std::vector<std::vector<int>>& pieces_of,
                            const ConvertArgs& args) {
  OutputFilePlan file;
  file.relative_path = relative_path;
  std::vector<std::string> names;
  for (int m : members) names.push_back(layout.mca[m].name);
  const std::vector<size_t> order = ModelOrder(names);

  std::vector<std::vector<std::pair<std::string, int>>> stages(params.vpp);
  std::vector<int> tensor_of_member;
  for (size_t position : order) {
    const int m = members[position];
    const McaTensor& tensor = layout.mca[m];
    const DType dtype = OutputDType(sources[layout.pieces[pieces_of[m][0]].hf]->view.dtype, args);
    stages[tensor.vp].emplace_back(tensor.name, static_cast<int>(file.tensors.size()));
    tensor_of_member.push_back(m);
    file.tensors.push_back({tensor.name, dtype, tensor.shape});
  }
  file.layout = PlanTorchFile("model_optim_rng", *RankRoot(params, stages), file.tensors);

  for (size_t t = 0; t < file.tensors.size(); ++t) {
    const OutputTensor& out = file.tensors[t];
    for (int piece_index : pieces_of[tensor_of_member[t]]) {
      const Piece& piece = layout.pieces[piece_index];
      const SourceTensor& source = *sources[piece.hf];
      if (!piece.fills_mca) continue;  // checked against the filling piece in AddCopyChecks
      file.ops.push_back(
          MakeCopy(source, piece.hf_box, file.layout.tensor_offsets[t], piece.mca_box, out.dtype));
    }
  }
  return file;
}

// HF tensors that a shared MCA tensor stores once (the q/k/v or gate/up copies of a LoRA A)
// must agree; checked once, on the first TP and EP rank.
void AddCopyChecks(const Layout& layout, const std::vector<const SourceTensor*>& sources,
                   Plan& plan) {
  std::map<std::pair<int, int64_t>, int> filler;
  for (size_t i = 0; i < layout.pieces.size(); ++i)
    if (layout.pieces[i].fills_mca)
      filler[{layout.pieces[i].mca, layout.pieces[i].mca_box.offset}] = i;
  for (const Piece& piece : layout.pieces) {
    const McaTensor& tensor = layout.mca[piece.mca];
    if (piece.fills_mca || tensor.tp != 0 || tensor.ep != 0) continue;
    const Piece& first = layout.pieces[filler.at({piece.mca, piece.mca_box.offset})];
    const SourceTensor& a = *sources[first.hf];
    const SourceTensor& b = *sources[piece.hf];
    plan.checks.push_back(
        MakeCheck(a, first.hf_box, b, piece.hf_box,
                  b.name + " vs " + a.name + " (MCA stores one " + tensor.name +
                      " for both; adapters whose fused modules have different lora_A cannot be "
                      "represented)"));
  }
}

ExpertFormat WrittenExpertFormat(const nlohmann::json& mca, const ConvertArgs& args) {
  if (!mca.value("moe_grouped_gemm", false)) return ExpertFormat::kSequential;
  return args.parallel.moe_grouped_gemm_format == "legacy" ? ExpertFormat::kLegacyGrouped
                                                           : ExpertFormat::kTeGrouped;
}

}  // namespace

void PlanRankFilesFromHf(const Layout& layout, const LayoutParams& params,
                         const std::vector<const SourceTensor*>& sources, const ConvertArgs& args,
                         const std::string& dir_prefix, Plan& plan) {
  std::vector<std::vector<int>> pieces_of(layout.mca.size());
  for (size_t i = 0; i < layout.pieces.size(); ++i) pieces_of[layout.pieces[i].mca].push_back(i);
  std::map<std::string, std::vector<int>> members_of_file;
  for (size_t m = 0; m < layout.mca.size(); ++m) {
    const McaTensor& t = layout.mca[m];
    members_of_file[RankDirName(t.tp, t.pp, t.ep, params)].push_back(static_cast<int>(m));
  }
  for (int tp = 0; tp < params.tp; ++tp)
    for (int pp = 0; pp < params.pp; ++pp)
      for (int ep = 0; ep < params.ep; ++ep) {
        const std::string rank = RankDirName(tp, pp, ep, params);
        const std::string path = dir_prefix + "iter_0000001/" + rank + "/model_optim_rng.pt";
        plan.files.push_back(
            PlanRankFile(path, members_of_file[rank], layout, params, sources, pieces_of, args));
      }
  AddCopyChecks(layout, sources, plan);
}

Plan PlanHfToMca(const ConvertArgs& args) {
  const HfCheckpoint hf = OpenHfCheckpoint(args.checkpoint_path);
  const nlohmann::json mca_config = BuildMcaConfig(hf.config, args, args.checkpoint_path);
  LayoutParams params =
      LayoutParamsFromMcaConfig(mca_config, args.checkpoint_path + "/config.json");
  params.expert_format = WrittenExpertFormat(mca_config, args);
  for (const auto& [name, tensor] : hf.tensors)
    if (name.size() > 25 && name.compare(name.size() - 25, 25, ".mlp.experts.gate_up_proj") == 0)
      params.fused_hf_experts = true;
  const Layout layout = BuildLayout(params);

  Plan plan;
  plan.inputs = hf.files.paths;
  const std::vector<const SourceTensor*> sources = MatchHfTensors(hf, layout, plan);

  PlanRankFilesFromHf(layout, params, sources, args, "", plan);

  plan.text_files.push_back({"mca_config.json", DumpPythonJson(mca_config) + "\n"});
  plan.text_files.push_back({"latest_checkpointed_iteration.txt", "1"});
  plan.copied_files = AuxiliaryFiles(args.checkpoint_path, hf.config.contains("auto_map"));
  return plan;
}

}  // namespace mcaconv
