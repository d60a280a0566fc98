#include "model/rewrite.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/tensor.h"
#include "engine/executor.h"
#include "safetensors/safetensors.h"
#include "torchzip/pickle_value.h"
#include "torchzip/torch_file.h"

namespace mcaconv {
namespace {

namespace fs = std::filesystem;

enum class Format { kSafetensors, kTorch };

// What the rewrite needs from the input: its tensors (views into the file) and metadata.
struct Source {
  std::vector<SourceTensor> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;
  bool has_metadata = false;  // safetensors input: keep its __metadata__ even when empty
};

// A torch.save file is a zip archive; anything else is read as safetensors, whose reader
// explains what is wrong with a file that is neither.
Format DetectInputFormat(const std::string& path) {
  const MappedFile file = MappedFile::Open(path);
  constexpr char kZipMagic[] = {'P', 'K', '\x03', '\x04'};
  const bool zip = file.size() >= sizeof(kZipMagic) &&
                   std::memcmp(file.data(), kZipMagic, sizeof(kZipMagic)) == 0;
  return zip ? Format::kTorch : Format::kSafetensors;
}

Format OutputFormat(const std::string& path) {
  const std::string extension = fs::path(path).extension().string();
  if (extension == ".safetensors") return Format::kSafetensors;
  if (extension == ".pt" || extension == ".pth" || extension == ".bin") return Format::kTorch;
  ThrowUsage("rewrite: cannot tell the output format of '" + path +
             "' (expected a name ending in .safetensors, .pt, .pth or .bin)");
}

Source ReadSource(const std::string& path) {
  Source source;
  if (DetectInputFormat(path) == Format::kTorch) {
    TorchFile file = OpenTorchFile(path);
    source.tensors = std::move(file.tensors);
    return source;
  }
  SafetensorsFile file = OpenSafetensors(path);
  source.tensors = std::move(file.tensors);
  source.metadata = std::move(file.metadata);
  source.has_metadata = true;
  return source;
}

DType TargetDType(DType dtype, const std::optional<DType>& cast) {
  return cast && IsCastable(dtype) ? *cast : dtype;
}

// Flattened torch names can collide ({"a/b": t} and {"a": {"b": u}}); formats need unique keys.
void CheckUniqueNames(const std::vector<SourceTensor>& tensors, const std::string& path) {
  std::set<std::string> seen;
  for (const SourceTensor& tensor : tensors) {
    if (!seen.insert(tensor.name).second) {
      ThrowUnsupported(path + ": two tensors are both named '" + tensor.name +
                       "' once nested keys are joined with '/'; rewrite needs unique names");
    }
  }
}

FileLayout PlanLayout(Format format, const std::string& output, const Source& source,
                      const std::vector<OutputTensor>& tensors) {
  if (format == Format::kSafetensors) {
    if (source.has_metadata) return PlanSafetensors(tensors, source.metadata);
    return PlanSafetensors(tensors, {{"format", "pt"}});
  }
  std::vector<std::pair<pickle::ValuePtr, pickle::ValuePtr>> entries;
  entries.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    entries.emplace_back(pickle::MakeString(tensors[i].name),
                         pickle::MakeTensor(static_cast<int>(i)));
  }
  const std::string archive = fs::path(output).stem().string();
  if (archive.empty()) ThrowUsage("rewrite: output name '" + output + "' has no stem");
  return PlanTorchFile(archive, *pickle::MakeDict(std::move(entries)), tensors);
}

}  // namespace

Plan PlanRewrite(const RewriteArgs& args) {
  const Format format = OutputFormat(args.output);
  const Source source = ReadSource(args.input);
  CheckUniqueNames(source.tensors, args.input);

  OutputFilePlan file;
  file.relative_path = fs::path(args.output).filename().string();
  for (const SourceTensor& tensor : source.tensors) {
    file.tensors.push_back(
        {tensor.name, TargetDType(tensor.view.dtype, args.cast), tensor.view.shape});
  }
  file.layout = PlanLayout(format, args.output, source, file.tensors);

  for (size_t i = 0; i < source.tensors.size(); ++i) {
    const TensorView& view = source.tensors[i].view;
    if (view.numel() == 0) continue;
    CopyOp op;
    op.src_file = 0;
    op.src_offset = view.data_offset;
    op.src_strides = view.strides;
    op.src_dtype = view.dtype;
    op.dst_offset = file.layout.tensor_offsets[i];
    op.dst_strides = ContiguousStrides(view.shape);
    op.dst_dtype = file.tensors[i].dtype;
    op.shape = view.shape;
    file.ops.push_back(std::move(op));
  }

  Plan plan;
  plan.inputs.push_back(args.input);
  plan.files.push_back(std::move(file));
  return plan;
}

void RunRewrite(const RewriteArgs& args) {
  Plan plan = PlanRewrite(args);
  CheckCoverage(plan);

  const fs::path output = fs::absolute(args.output);
  const fs::path folder = output.parent_path();
  // Built by appending: GCC 12 gives a false -Wrestrict warning for "literal" + std::string&&.
  std::string temp_name = ".";
  temp_name += output.filename().string();
  temp_name += ".mcaconv-tmp-" + std::to_string(::getpid());
  plan.files[0].relative_path = temp_name;
  const fs::path temp = folder / temp_name;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) ThrowIo("rewrite: cannot create the folder of " + output.string(), ec.value());

  try {
    ExecuteOptions options;
    options.threads = args.threads;
    ExecutePlan(plan, folder.string(), options);
    fs::rename(temp, output, ec);
    if (ec) ThrowIo("rewrite: cannot rename " + temp.string() + " to " + output.string(),
                    ec.value());
  } catch (...) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw;
  }
}

}  // namespace mcaconv
