// Pieces shared by both conversion directions: reading layout parameters from mca_config.json,
// resolving layout boxes onto real (possibly strided) source views, dtype selection, and the
// auxiliary files (tokenizer, processor, remote code) that travel with a checkpoint.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "engine/plan.h"
#include "model/convert_args.h"
#include "model/layout.h"

namespace mcaconv {

// Layout parameters of the model described by an mca_config.json (already validated by the
// config layer). `config_path` names the file in errors.
LayoutParams LayoutParamsFromMcaConfig(const nlohmann::json& mca, const std::string& config_path);

// Where the elements of `box` (a box of a tensor of logical shape `shape`) are in the file that
// holds `view`: byte offset of the first element and strides in elements. Handles contiguous views
// and strided views whose dimensions the box follows (row and column slices, storage offsets).
// Throws kUnsupported naming `what` when the box cannot be expressed through the view's strides.
struct ResolvedRegion {
  uint64_t offset = 0;
  Shape strides;
};
ResolvedRegion ResolveBox(const TensorView& view, const Box& box, const std::string& what);

// A copy of `box` of `source` into an output tensor whose data starts at byte `dst_tensor_offset`,
// the destination box given by `dst_box` (same shape), converting to `dst_dtype`.
CopyOp MakeCopy(const SourceTensor& source, const Box& src_box, uint64_t dst_tensor_offset,
                const Box& dst_box, DType dst_dtype);

// An equality check between `a_box` of `a` and `b_box` of `b` (same shape), reported as `what`.
CompareOp MakeCheck(const SourceTensor& a, const Box& a_box, const SourceTensor& b,
                    const Box& b_box, std::string what);

// The box covering all of a tensor of `shape`.
Box WholeTensor(const Shape& shape);

// The dtype a tensor is written in: the --bf16/--fp16 target for floating tensors, else its own.
DType OutputDType(DType source, const ConvertArgs& args);

// Tokenizer, processor, generation config and (with auto_map) remote-code files found in
// `source_dir`, to be copied verbatim next to the converted weights.
std::vector<CopiedFile> AuxiliaryFiles(const std::string& source_dir, bool copy_python);

// Orders tensor names the way readers expect to see a model: embedding first, then decoder layers
// in index order, then everything else, keeping the given order within each group.
std::vector<size_t> ModelOrder(const std::vector<std::string>& names);

}  // namespace mcaconv
