// PyTorch checkpoint files (torch.save zip archives): a zero-copy reader and a layout planner
// for the writer. See ../shared/docs/formats.md sections 1 and 2.
#pragma once

#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"
#include "engine/plan.h"
#include "torchzip/pickle_value.h"

namespace mcaconv {

struct TorchFile {
  MappedFile file;
  std::string archive_prefix;  // top-level folder of the zip, e.g. "model_optim_rng"
  pickle::ValuePtr root;       // the unpickled object; tensors appear as kTensor nodes
  // Every tensor of the tree in pickle order; SourceTensor::file is 0. name is the path of dict
  // keys (and list indices) from the root joined with '/', e.g. "model/decoder.layers.0.x.weight"
  // or, for a flat state dict, just "lm_head.weight".
  std::vector<SourceTensor> tensors;
};

// Opens `path`, parses the zip central directory and data.pkl with the restricted unpickler, and
// resolves every tensor to a view of its storage record. Values that are not tensors become inert
// values (kObject for opaque objects such as io.BytesIO or argparse.Namespace). Throws
// Error(kInvalidInput) naming the file, byte offset and record or tensor on corrupt input,
// Error(kUnsupported) for valid but unsupported content (big-endian data, compressed records).
TorchFile OpenTorchFile(const std::string& path);

// Plans a torch.save-compatible archive under top-level folder `archive_name`. `root` is the
// object to pickle: dicts with string keys, None, bools, ints, floats, strings, lists, tuples and
// kTensor nodes indexing `tensors`. Each tensor gets its own compact storage record. The result
// loads with torch.load(weights_only=True) and with mmap=True (torch 1.13 to 2.13), is
// deterministic, and carries CRC patches for every record. layout.tensor_offsets follows the order
// of `tensors`.
FileLayout PlanTorchFile(const std::string& archive_name, const pickle::Value& root,
                         const std::vector<OutputTensor>& tensors);

}  // namespace mcaconv
