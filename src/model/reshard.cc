#include "model/reshard.h"

#include <map>

#include "core/error.h"
#include "model/checkpoint_files.h"
#include "model/hf_config.h"
#include "model/layout.h"
#include "model/mca_config.h"
#include "model/mca_to_hf.h"
#include "model/plan_common.h"
#include "model/python_json.h"
#include "torchzip/torch_file.h"

namespace mcaconv {
namespace {

// A box of an HF tensor as per-dimension index ranges: box dimension j runs along tensor
// dimension dim[j] (-1 for extent-1 box dimensions), starting at start[dim].
struct AxisBox {
  std::vector<int> dim;
  std::vector<int64_t> start;   // per tensor dimension
  std::vector<int64_t> extent;  // per tensor dimension
};

AxisBox ToAxisBox(const Box& box, const Shape& shape, const std::string& what) {
  const Shape strides = ContiguousStrides(shape);
  AxisBox axes;
  axes.start.assign(shape.size(), 0);
  axes.extent.assign(shape.size(), 1);
  int64_t rest = box.offset;
  for (size_t d = 0; d < shape.size(); ++d) {
    axes.start[d] = rest / strides[d];
    rest %= strides[d];
  }
  for (size_t j = 0; j < box.shape.size(); ++j) {
    int found = -1;
    if (box.shape[j] > 1)
      for (size_t d = 0; d < shape.size() && found < 0; ++d)
        if (shape[d] > 1 && strides[d] == box.strides[j]) found = static_cast<int>(d);
    if (box.shape[j] > 1 && found < 0)
      ThrowUnsupported(what + ": a layout box does not follow the tensor's dimensions");
    axes.dim.push_back(found);
    if (found >= 0) axes.extent[found] = box.shape[j];
  }
  return axes;
}

// Builds the copy of the elements two pieces of the same HF tensor share, from the source
// piece's MCA tensor to the target piece's MCA tensor. Returns false when they share none.
bool Intersect(const Piece& src, const AxisBox& a, const Piece& dst, const AxisBox& b, Box& src_box,
               Box& dst_box) {
  const size_t rank = a.start.size();
  std::vector<int64_t> lo(rank), hi(rank);
  for (size_t d = 0; d < rank; ++d) {
    lo[d] = std::max(a.start[d], b.start[d]);
    hi[d] = std::min(a.start[d] + a.extent[d], b.start[d] + b.extent[d]);
    if (lo[d] >= hi[d]) return false;
  }
  src_box = {src.mca_box.offset, {}, {}};
  dst_box = {dst.mca_box.offset, {}, {}};
  for (size_t k = 0; k < a.dim.size(); ++k)
    if (a.dim[k] >= 0)
      src_box.offset += (lo[a.dim[k]] - a.start[a.dim[k]]) * src.mca_box.strides[k];
  for (size_t j = 0; j < b.dim.size(); ++j) {
    const int d = b.dim[j];
    if (d < 0) continue;
    dst_box.offset += (lo[d] - b.start[d]) * dst.mca_box.strides[j];
    int64_t src_stride = 0;
    for (size_t k = 0; k < a.dim.size(); ++k)
      if (a.dim[k] == d) src_stride = src.mca_box.strides[k];
    src_box.shape.push_back(hi[d] - lo[d]);
    src_box.strides.push_back(src_stride);
    dst_box.shape.push_back(hi[d] - lo[d]);
    dst_box.strides.push_back(dst.mca_box.strides[j]);
  }
  return true;
}

// The MCA config the checkpoint would get from HF -> MCA with `args`, and its HF config.
nlohmann::json TargetConfig(const nlohmann::json& source, const ConvertArgs& args, DType dtype) {
  const nlohmann::json hf = BuildHfConfig(source, std::string(Name(dtype)));
  return BuildMcaConfig(hf, args, args.checkpoint_path);
}

}  // namespace

Plan PlanReshard(const ConvertArgs& args) {
  const std::string config_path = args.checkpoint_path + "/mca_config.json";
  const nlohmann::json source_config = ReadJsonFile(config_path);
  LayoutParams from = LayoutParamsFromMcaConfig(source_config, config_path);
  const McaCheckpoint mca = OpenMcaCheckpoint(args.checkpoint_path, from);
  from.expert_format = DetectExpertFormat(mca);
  const Layout source = BuildLayout(from);

  // Source tensors and replica checks come from the MCA -> HF core; its HF files are dropped.
  Plan scratch;
  ConvertArgs check_args;  // no cast: the HF view of the source, as MCA -> HF writes it
  check_args.replica_check = args.replica_check;
  check_args.replica_tolerance = args.replica_tolerance;
  const HfFilesResult hf = PlanHfFilesFromMca(source, from, mca, check_args, {}, scratch);
  Plan plan;
  plan.inputs = scratch.inputs;
  plan.checks = scratch.checks;
  const DType dtype = hf.dtype.value_or(DType::F32);

  const nlohmann::json target_config = TargetConfig(source_config, args, dtype);
  LayoutParams to = LayoutParamsFromMcaConfig(target_config, "target mca_config.json");
  to.expert_format = !target_config.value("moe_grouped_gemm", false) ? ExpertFormat::kSequential
                     : args.parallel.moe_grouped_gemm_format == "legacy"
                         ? ExpertFormat::kLegacyGrouped
                         : ExpertFormat::kTeGrouped;
  const Layout target = BuildLayout(to);

  // Primary source pieces by HF tensor (both layouts list the same HF tensors in the same order).
  std::map<std::string, std::vector<const Piece*>> sources_of;
  for (const Piece& piece : source.pieces)
    if (piece.primary) sources_of[source.hf[piece.hf].name].push_back(&piece);
  const std::map<std::string, SourceTensor>& tensors = mca.tensors;

  std::vector<std::vector<const Piece*>> pieces_of(target.mca.size());
  for (const Piece& piece : target.pieces)
    if (piece.fills_mca) pieces_of[piece.mca].push_back(&piece);
  std::map<std::string, std::vector<int>> members_of_file;
  for (size_t m = 0; m < target.mca.size(); ++m) {
    const McaTensor& t = target.mca[m];
    members_of_file[RankDirName(t.tp, t.pp, t.ep, to)].push_back(static_cast<int>(m));
  }
  for (int tp = 0; tp < to.tp; ++tp)
    for (int pp = 0; pp < to.pp; ++pp)
      for (int ep = 0; ep < to.ep; ++ep) {
        const std::string rank = RankDirName(tp, pp, ep, to);
        OutputFilePlan file;
        file.relative_path = "iter_0000001/" + rank + "/model_optim_rng.pt";
        std::vector<std::string> names;
        for (int m : members_of_file[rank]) names.push_back(target.mca[m].name);
        std::vector<int> members;
        for (size_t position : ModelOrder(names))
          members.push_back(members_of_file[rank][position]);

        std::vector<std::vector<std::pair<pickle::ValuePtr, pickle::ValuePtr>>> stages(to.vpp);
        for (int m : members) {
          const Piece& any = *pieces_of[m].front();
          const Piece& src = *sources_of.at(target.hf[any.hf].name).front();
          const DType out =
              OutputDType(tensors.at(McaTensorKey(source.mca[src.mca], from)).view.dtype, args);
          stages[target.mca[m].vp].emplace_back(pickle::MakeString(target.mca[m].name),
                                                pickle::MakeTensor(file.tensors.size()));
          file.tensors.push_back({target.mca[m].name, out, target.mca[m].shape});
        }
        std::vector<std::pair<pickle::ValuePtr, pickle::ValuePtr>> root;
        for (int vp = 0; vp < to.vpp; ++vp)
          root.emplace_back(pickle::MakeString(StageKey(vp, to)), pickle::MakeDict(stages[vp]));
        file.layout = PlanTorchFile("model_optim_rng", *pickle::MakeDict(root), file.tensors);

        for (size_t t = 0; t < members.size(); ++t) {
          for (const Piece* dst : pieces_of[members[t]]) {
            const HfTensor& hf_tensor = target.hf[dst->hf];
            const AxisBox b = ToAxisBox(dst->hf_box, hf_tensor.shape, hf_tensor.name);
            for (const Piece* src : sources_of.at(hf_tensor.name)) {
              const AxisBox a = ToAxisBox(src->hf_box, hf_tensor.shape, hf_tensor.name);
              Box src_box, dst_box;
              if (!Intersect(*src, a, *dst, b, src_box, dst_box)) continue;
              const SourceTensor& source_tensor =
                  tensors.at(McaTensorKey(source.mca[src->mca], from));
              file.ops.push_back(MakeCopy(source_tensor, src_box, file.layout.tensor_offsets[t],
                                          dst_box, file.tensors[t].dtype));
            }
          }
        }
        plan.files.push_back(std::move(file));
      }

  plan.text_files.push_back({"mca_config.json", DumpPythonJson(target_config) + "\n"});
  plan.text_files.push_back({"latest_checkpointed_iteration.txt", "1"});
  plan.copied_files = AuxiliaryFiles(args.checkpoint_path, true);
  return plan;
}

}  // namespace mcaconv
