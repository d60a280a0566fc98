#include "model/checkpoint_files.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "safetensors/safetensors.h"
#include "torchzip/torch_file.h"

namespace mcaconv {
namespace fs = std::filesystem;

nlohmann::json ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ThrowIo("cannot open " + path, errno);
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    ThrowInvalid(path + ": invalid JSON at byte offset " + std::to_string(e.byte) + ": " +
                 e.what());
  }
}

namespace {

// Adds every tensor of one weight file to `out`, under its state-dict name.
void AddWeightFile(const std::string& path, HfCheckpoint& out) {
  const int index = static_cast<int>(out.files.paths.size());
  out.files.paths.push_back(path);
  std::vector<SourceTensor> tensors;
  if (path.size() > 12 && path.substr(path.size() - 12) == ".safetensors") {
    auto file = std::make_shared<SafetensorsFile>(OpenSafetensors(path));
    tensors = file->tensors;
    out.files.keep_alive.push_back(file);
  } else {
    auto file = std::make_shared<TorchFile>(OpenTorchFile(path));
    tensors = file->tensors;
    out.files.keep_alive.push_back(file);
  }
  for (auto& tensor : tensors) {
    tensor.file = index;
    if (out.tensors.count(tensor.name))
      ThrowInvalid(path + ": tensor " + tensor.name + " also appears in " +
                   out.files.paths[out.tensors.at(tensor.name).file]);
    out.tensors.emplace(tensor.name, tensor);
  }
}

// Shard files named by an index json, in first-mention order; checks the weight map against them.
void AddIndexedWeights(const std::string& index_path, HfCheckpoint& out) {
  const nlohmann::json index = ReadJsonFile(index_path);
  if (!index.contains("weight_map") || !index["weight_map"].is_object())
    ThrowInvalid(index_path + ": no weight_map object");
  std::vector<std::string> shards;
  std::vector<std::string> first_tensor;  // of each shard, to name in errors
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string())
      ThrowInvalid(index_path + ": weight_map entry " + name + " is not a file name");
    if (std::find(shards.begin(), shards.end(), shard.get<std::string>()) == shards.end()) {
      shards.push_back(shard.get<std::string>());
      first_tensor.push_back(name);
    }
  }
  for (const auto& shard : shards)
    if (shard.empty() || shard.find('/') != std::string::npos ||
        shard.find('\\') != std::string::npos || shard == "." || shard == "..")
      ThrowInvalid(index_path + ": shard name \"" + shard +
                   "\" must be a file name in the same folder");
  const fs::path dir = fs::path(index_path).parent_path();
  for (size_t s = 0; s < shards.size(); ++s) {
    const fs::path path = dir / shards[s];
    if (!fs::is_regular_file(path))
      ThrowInvalid(path.string() + ": missing shard (" + index_path + " lists tensor " +
                   first_tensor[s] + " in it)");
    AddWeightFile(path.string(), out);
  }
  for (const auto& [name, shard] : index["weight_map"].items()) {
    auto it = out.tensors.find(name);
    if (it == out.tensors.end() ||
        fs::path(out.files.paths[it->second.file]).filename() != shard.get<std::string>())
      ThrowInvalid(index_path + ": tensor " + name + " is listed in " + shard.get<std::string>() +
                   " but that shard does not hold it");
  }
}

}  // namespace

HfCheckpoint OpenHfCheckpoint(const std::string& dir) {
  HfCheckpoint out;
  out.dir = dir;
  const fs::path root(dir);
  if (!fs::is_directory(root)) ThrowUsage(dir + " is not a directory");
  if (!fs::exists(root / "config.json"))
    ThrowInvalid(dir + ": no config.json (not an HF model folder)");
  out.config = ReadJsonFile((root / "config.json").string());
  for (const char* candidate : {"model.safetensors.index.json", "pytorch_model.bin.index.json",
                                "model.safetensors", "pytorch_model.bin"}) {
    const fs::path path = root / candidate;
    if (!fs::exists(path)) continue;
    out.weights_description = candidate;
    if (path.extension() == ".json")
      AddIndexedWeights(path.string(), out);
    else
      AddWeightFile(path.string(), out);
    return out;
  }
  ThrowInvalid(dir +
               ": no weights (model.safetensors[.index.json] or pytorch_model.bin[.index.json])");
}

std::string McaTensorKey(const McaTensor& tensor, const LayoutParams& params) {
  return RankDirName(tensor.tp, tensor.pp, tensor.ep, params) + "/" + StageKey(tensor.vp, params) +
         "/" + tensor.name;
}

McaCheckpoint OpenMcaCheckpoint(const std::string& dir, const LayoutParams& params) {
  McaCheckpoint out;
  out.dir = dir;
  const fs::path iter = fs::path(dir) / "iter_0000001";
  for (int tp = 0; tp < params.tp; ++tp) {
    for (int pp = 0; pp < params.pp; ++pp) {
      for (int ep = 0; ep < params.ep; ++ep) {
        const std::string rank = RankDirName(tp, pp, ep, params);
        const fs::path path = iter / rank / "model_optim_rng.pt";
        if (!fs::is_regular_file(path))
          ThrowInvalid(path.string() + ": missing rank file (mca_config.json declares TP " +
                       std::to_string(params.tp) + ", PP " + std::to_string(params.pp) + ", EP " +
                       std::to_string(params.ep) + ")");
        const int index = static_cast<int>(out.files.paths.size());
        out.files.paths.push_back(path.string());
        auto file = std::make_shared<TorchFile>(OpenTorchFile(path.string()));
        out.files.keep_alive.push_back(file);
        for (SourceTensor tensor : file->tensors) {
          const auto slash = tensor.name.find('/');
          if (slash == std::string::npos) continue;  // a top-level tensor (e.g. rng state)
          const std::string top = tensor.name.substr(0, slash);
          if (top.rfind("model", 0) != 0) continue;  // optimizer, rng_state, ...
          std::string name = tensor.name.substr(slash + 1);
          // Adapter files may keep PEFT's prefix on their keys (mca-format.md 8.2).
          if (name.rfind("base_model.model.", 0) == 0) name = name.substr(17);
          if (name.size() >= 13 && name.substr(name.size() - 13) == "._extra_state") continue;
          tensor.file = index;
          out.tensors.emplace(rank + "/" + top + "/" + name, tensor);
        }
      }
    }
  }
  return out;
}

}  // namespace mcaconv
