// The MCA -> HF core shared by full-model conversion and LoRA adapter export: gathering HF
// tensors out of MCA rank files through a layout, with replica checks.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "engine/plan.h"
#include "model/checkpoint_files.h"
#include "model/convert_args.h"
#include "model/layout.h"

namespace mcaconv {

// How the gathered HF tensors are written.
struct HfFilesSpec {
  std::string name_prefix;     // prepended to every HF tensor name ("base_model.model." for PEFT)
  std::string dir_prefix;      // output sub-folder, "" or "<name>/"
  std::string single_file;     // write one file of this name instead of transformers-style shards
  bool allow_missing = false;  // layout tensors absent from the rank files are skipped (LoRA)
};

struct HfFilesResult {
  std::vector<int> written_hf;  // layout.hf indices written
  std::optional<DType> dtype;   // dtype of the first tensor written
};

// Adds to `plan` the safetensors files (and index) holding the HF tensors of `layout` gathered
// from `mca`, plus the replica checks. Appends mca's files to plan.inputs.
HfFilesResult PlanHfFilesFromMca(const Layout& layout, const LayoutParams& params,
                                 const McaCheckpoint& mca, const ConvertArgs& args,
                                 const HfFilesSpec& spec, Plan& plan);

// transformers' default maximum shard size, "5GB".
inline constexpr uint64_t kDefaultMaxShardSize = 5'000'000'000;

// Groups tensors (visited in `order`) into shards of at most `max_size` bytes, greedily as
// huggingface_hub does; a tensor larger than the limit gets a shard of its own.
std::vector<std::vector<int>> ShardTensors(const std::vector<OutputTensor>& tensors,
                                           const std::vector<size_t>& order, uint64_t max_size);
// "model-00001-of-00004.safetensors" for shard `index` (0-based) of `count`.
std::string HfShardName(size_t index, size_t count);

// The expert layout of a rank-file set, from its tensor names.
ExpertFormat DetectExpertFormat(const McaCheckpoint& mca);

}  // namespace mcaconv
