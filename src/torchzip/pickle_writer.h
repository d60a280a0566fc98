// Encoding of a value tree as the data.pkl of a torch.save archive (formats.md 2.1-2.3, 2.6).
//
// The stream is pickle protocol 2 and uses only opcodes and globals that torch's weights_only
// unpickler accepts, so the archive loads with torch.load(weights_only=True). Tensors become
// torch._utils._rebuild_tensor_v2 calls over a legacy typed storage (loadable by torch 1.13 and
// later), or _rebuild_tensor_v3 over an UntypedStorage for dtypes without a legacy storage class
// (float8, uint16/32/64, float4; torch 2.1 and later). Every tensor gets its own compact,
// contiguous storage at offset 0.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "torchzip/pickle_value.h"

namespace mcaconv::pickle {

struct TorchPickle {
  std::string bytes;  // the data.pkl record
  // storage_tensors[k] is the index (into the tensor list) of the tensor stored in record
  // "data/<k>". Keys are assigned in the order the pickle first meets each tensor, as torch does.
  std::vector<int> storage_tensors;
};

// Encodes `root`: dicts (string or int keys, kept in insertion order), None, bools, ints, floats,
// strings (valid UTF-8), lists, tuples, and kTensor nodes indexing `tensors`. A tensor referenced
// twice is pickled once and referenced again through the memo, like torch does for one object.
// Throws Error(kUnsupported) for other kinds (kBytes, kObject) and Error(kInvalidInput) for a
// tensor index out of range, invalid UTF-8, nesting deeper than Python's pickler allows, or a
// tensor that the tree never references. Messages start with `what` and name the key path.
TorchPickle PickleTorchObject(const Value& root, const std::vector<OutputTensor>& tensors,
                              const std::string& what);

}  // namespace mcaconv::pickle
