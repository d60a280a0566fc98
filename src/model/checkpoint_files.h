// Opening whole checkpoints: an HF model folder (safetensors or .bin, sharded or not) and an MCA
// folder (mca_config.json + one torch file per rank). Both give a name -> SourceTensor map over
// a list of input files, which becomes Plan::inputs.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/layout.h"

namespace mcaconv {

struct InputFiles {
  std::vector<std::string> paths;  // indexed by SourceTensor::file
  // Keeps the readers' mappings alive while tensors are inspected.
  std::vector<std::shared_ptr<void>> keep_alive;
};

struct HfCheckpoint {
  std::string dir;
  nlohmann::json config;  // config.json
  InputFiles files;
  std::map<std::string, SourceTensor> tensors;
  // Weight files in the order they were chosen (index json first, then single files).
  std::string weights_description;
};

// Reads config.json and the weights of an HF folder. Weights are taken, as the reference does,
// from the first of model.safetensors.index.json, pytorch_model.bin.index.json,
// model.safetensors, pytorch_model.bin that exists. Throws kInvalidInput naming the file on a
// missing shard, a tensor listed in an index but absent from its shard, or a duplicate name.
HfCheckpoint OpenHfCheckpoint(const std::string& dir);

// The rank files of an MCA folder, opened. Tensors are keyed "<rank dir>/<stage key>/<name>";
// `._extra_state` entries are dropped. Non-tensor values inside a stage dict (other than
// _extra_state) are an error naming the file and key.
struct McaCheckpoint {
  std::string dir;
  InputFiles files;
  std::map<std::string, SourceTensor> tensors;
};
McaCheckpoint OpenMcaCheckpoint(const std::string& dir, const LayoutParams& params);

// The key under which OpenMcaCheckpoint files an MCA tensor of the layout.
std::string McaTensorKey(const McaTensor& tensor, const LayoutParams& params);

// Reads a JSON file; kInvalidInput naming the file and byte offset on a parse error.
nlohmann::json ReadJsonFile(const std::string& path);

}  // namespace mcaconv
