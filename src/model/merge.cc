#include "model/merge.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <regex>

#include "cast/cast.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "engine/executor.h"
#include "model/checkpoint_files.h"
#include "model/hf_config.h"
#include "model/lora.h"
#include "model/mca_to_hf.h"
#include "model/plan_common.h"
#include "model/python_json.h"
#include "safetensors/safetensors.h"

namespace mcaconv {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kPeftPrefix = "base_model.model.";

// Where a planned output tensor lives.
struct OutputSlot {
  std::string path;  // relative to the output folder
  uint64_t offset = 0;
  DType dtype = DType::F32;
  Shape shape;
};

std::map<std::string, OutputSlot> OutputSlots(const Plan& plan) {
  std::map<std::string, OutputSlot> slots;
  for (const auto& file : plan.files)
    for (size_t t = 0; t < file.tensors.size(); ++t)
      slots[file.tensors[t].name] = {file.relative_path, file.layout.tensor_offsets[t],
                                     file.tensors[t].dtype, file.tensors[t].shape};
  return slots;
}

// Elements of a contiguous tensor as fp32.
std::vector<float> ReadFloat(const MappedFile& file, const TensorView& view,
                             const std::string& what) {
  if (!IsCastable(view.dtype) || !view.IsContiguous())
    ThrowUnsupported(what + ": only contiguous f32/bf16/f16 tensors can be merged");
  std::vector<float> values(view.numel());
  CastElements(file.data() + view.data_offset, view.dtype, values.data(), DType::F32,
               values.size());
  return values;
}

// PEFT's pattern rule: the first key whose regex matches "(.*\.)?(key)$" of the module name.
std::optional<double> PatternValue(const nlohmann::json& patterns, const std::string& module) {
  if (!patterns.is_object()) return std::nullopt;
  for (const auto& [key, value] : patterns.items())
    if (value.is_number() && std::regex_match(module, std::regex("(.*\\.)?(" + key + ")")))
      return value.get<double>();
  return std::nullopt;
}

// The PEFT adapter to merge: a folder with adapter_config.json and adapter_model.safetensors.
// MCA adapter folders are first converted into `scratch`.
fs::path PeftAdapterDir(const ConvertArgs& args, const fs::path& scratch) {
  const fs::path root = *args.adapter_path;
  const std::string& name = *args.merge_lora;
  fs::path source_root = root;
  if (fs::exists(root / "mca_config.json")) {
    ExecutePlan(PlanMcaAdapterToPeft(args), scratch.string(), {});
    source_root = scratch;
  }
  const fs::path dir = name == "default" ? source_root : source_root / name;
  if (!fs::exists(dir / "adapter_config.json") || !fs::exists(dir / "adapter_model.safetensors"))
    ThrowUsage("--merge_lora " + name + ": no such adapter in " + root.string());
  return dir;
}

// W + s * B @ A for one weight, row by row, written over its output slot.
void MergeOne(const std::string& module, const TensorView& base, const MappedFile& base_file,
              const std::vector<float>& a, const std::vector<float>& b, int64_t rank, double scale,
              const OutputSlot& slot, int fd) {
  const int64_t rows = base.shape[0], cols = base.shape[1];
  const std::vector<float> weight = ReadFloat(base_file, base, module);
  std::vector<float> row(cols);
  std::vector<uint8_t> converted(cols * ElementSize(slot.dtype));
  for (int64_t i = 0; i < rows; ++i) {
    std::fill(row.begin(), row.end(), 0.0f);
    for (int64_t k = 0; k < rank; ++k) {
      const float coefficient = b[i * rank + k];
      const float* a_row = &a[k * cols];
      for (int64_t j = 0; j < cols; ++j) row[j] += coefficient * a_row[j];
    }
    for (int64_t j = 0; j < cols; ++j)
      row[j] = weight[i * cols + j] + static_cast<float>(row[j] * scale);
    CastElements(row.data(), DType::F32, converted.data(), slot.dtype, cols);
    const uint64_t offset = slot.offset + static_cast<uint64_t>(i * cols) * ElementSize(slot.dtype);
    if (::pwrite(fd, converted.data(), converted.size(), offset) !=
        static_cast<ssize_t>(converted.size()))
      ThrowIo("cannot write merged " + module + " to " + slot.path, errno);
  }
}

}  // namespace

Plan PlanMergedBase(const ConvertArgs& args) {
  const HfCheckpoint hf = OpenHfCheckpoint(args.checkpoint_path);
  Plan plan;
  plan.inputs = hf.files.paths;
  std::vector<OutputTensor> tensors;
  std::vector<const SourceTensor*> sources;
  for (const auto& [name, tensor] : hf.tensors) {
    tensors.push_back({name, OutputDType(tensor.view.dtype, args), tensor.view.shape});
    sources.push_back(&tensor);
  }
  std::vector<std::string> names;
  for (const auto& t : tensors) names.push_back(t.name);
  const auto shards =
      ShardTensors(tensors, ModelOrder(names), args.max_shard_size.value_or(kDefaultMaxShardSize));
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    OutputFilePlan file;
    file.relative_path = shards.size() == 1 ? "model.safetensors" : HfShardName(s, shards.size());
    for (int index : shards[s]) file.tensors.push_back(tensors[index]);
    file.layout = PlanSafetensors(file.tensors, {{"format", "pt"}});
    for (size_t t = 0; t < file.tensors.size(); ++t) {
      const SourceTensor& source = *sources[shards[s][t]];
      const OutputTensor& out = file.tensors[t];
      weight_map[out.name] = file.relative_path;
      total += out.nbytes();
      file.ops.push_back(MakeCopy(source, WholeTensor(out.shape), file.layout.tensor_offsets[t],
                                  WholeTensor(out.shape), out.dtype));
    }
    plan.files.push_back(std::move(file));
  }
  if (shards.size() > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    plan.text_files.push_back({"model.safetensors.index.json", DumpPythonJson(index) + "\n"});
  }
  nlohmann::json config = hf.config;
  if (args.bf16 || args.fp16) config["torch_dtype"] = args.bf16 ? "bfloat16" : "float16";
  if (config.contains("dtype") && config.contains("torch_dtype"))
    config["dtype"] = config["torch_dtype"];
  plan.text_files.push_back({"config.json", DumpPythonJson(config) + "\n"});
  plan.copied_files = AuxiliaryFiles(args.checkpoint_path, config.contains("auto_map"));
  return plan;
}

void MergeLora(const Plan& plan, const ConvertArgs& args, const std::string& output_dir) {
  const fs::path scratch = fs::path(output_dir) / ".lora-merge";
  const fs::path adapter_dir = PeftAdapterDir(args, scratch);
  const nlohmann::json config = ReadJsonFile((adapter_dir / "adapter_config.json").string());
  const SafetensorsFile adapter =
      OpenSafetensors((adapter_dir / "adapter_model.safetensors").string());
  const HfCheckpoint base = OpenHfCheckpoint(args.checkpoint_path);
  std::vector<MappedFile> base_files;
  for (const auto& path : base.files.paths) base_files.push_back(MappedFile::Open(path));
  const std::map<std::string, OutputSlot> slots = OutputSlots(plan);

  std::map<std::string, const SourceTensor*> lora;
  for (const auto& tensor : adapter.tensors) lora[tensor.name] = &tensor;
  const double alpha = config.value("lora_alpha", 8.0);
  const bool rslora = config.value("use_rslora", false);
  std::map<std::string, int> fds;
  for (const auto& [name, tensor_a] : lora) {
    const auto at = name.find(".lora_A.weight");
    if (at == std::string::npos) continue;
    std::string module = name.substr(0, at);
    if (module.rfind(kPeftPrefix, 0) == 0) module = module.substr(kPeftPrefix.size());
    auto b_it = lora.find(name.substr(0, at) + ".lora_B.weight");
    auto base_it = base.tensors.find(module + ".weight");
    if (b_it == lora.end() || base_it == base.tensors.end() || !slots.count(module + ".weight"))
      ThrowInvalid(adapter_dir.string() + ": " + name + " has no matching lora_B or base weight " +
                   module + ".weight");
    const TensorView& base_view = base_it->second.view;
    const int64_t rank = tensor_a->view.shape.at(0);
    if (base_view.shape.size() != 2 || tensor_a->view.shape != Shape{rank, base_view.shape[1]} ||
        b_it->second->view.shape != Shape{base_view.shape[0], rank})
      ThrowInvalid(adapter_dir.string() + ": " + module +
                   " adapter shapes do not match its base weight " +
                   ShapeToString(base_view.shape));
    const double module_alpha =
        PatternValue(config.value("alpha_pattern", nlohmann::json()), module).value_or(alpha);
    const double scale =
        rslora ? module_alpha / std::sqrt(double(rank)) : module_alpha / double(rank);
    const OutputSlot& slot = slots.at(module + ".weight");
    if (!fds.count(slot.path)) {
      const std::string path = (fs::path(output_dir) / slot.path).string();
      fds[slot.path] = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fds[slot.path] < 0) ThrowIo("cannot open " + path, errno);
    }
    MergeOne(module, base_view, base_files[base_it->second.file],
             ReadFloat(adapter.file, tensor_a->view, name),
             ReadFloat(adapter.file, b_it->second->view, b_it->first), rank, scale, slot,
             fds[slot.path]);
  }
  for (const auto& [path, fd] : fds)
    if (::fsync(fd) != 0 || ::close(fd) != 0) ThrowIo("cannot write " + path, errno);
  fs::remove_all(scratch);
}

}  // namespace mcaconv
