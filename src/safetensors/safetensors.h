// safetensors files: a zero-copy reader over mmap and a layout planner for the writer.
//
// Byte layout: u64 little-endian header length N, N bytes of UTF-8 JSON
// {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}},
// then the data buffer; offsets are relative to the buffer, contiguous from 0, no gaps, no
// overlaps, and the last end is the end of the file. See ../shared/docs/formats.md section 3.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"
#include "engine/plan.h"

namespace mcaconv {

struct SafetensorsFile {
  MappedFile file;
  std::vector<SourceTensor> tensors;  // in data-offset order; SourceTensor::file is 0
  std::vector<std::pair<std::string, std::string>> metadata;  // __metadata__, header order
};

// Opens and validates `path` with the rules of the reference reader (formats.md 3.4). Throws
// Error(kInvalidInput) naming the file, the byte offset and the tensor on any violation.
SafetensorsFile OpenSafetensors(const std::string& path);

// Plans a safetensors file holding `tensors` (unique names) with the given metadata (written in
// the given order; callers pass {"format", "pt"}). Tensors are laid out as the reference writer
// orders them (dtype by descending alignment, then name), the JSON header is compact and padded
// with spaces to a multiple of 8. The result is deterministic. layout.tensor_offsets follows the
// order of `tensors`.
FileLayout PlanSafetensors(const std::vector<OutputTensor>& tensors,
                           const std::vector<std::pair<std::string, std::string>>& metadata);

}  // namespace mcaconv
