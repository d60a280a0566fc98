// A restricted, inert unpickler for the data.pkl record of torch.save archives (formats.md 2).
//
// The stream is run on a value stack machine that builds a pickle::Value tree. Nothing it names is
// imported or executed: GLOBALs are looked up in a fixed allowlist and interpreted. Torch rebuild
// functions become kTensor nodes described by PickleTensor, persistent ids become PickleStorage
// references, OrderedDict becomes kDict, torch.Size a kTuple, _codecs.encode kBytes, and the
// opaque classes seen in real checkpoints (io.BytesIO, argparse.Namespace, numpy arrays and
// dtypes, pathlib paths, enums, Megatron and TransformerEngine classes) become kObject nodes
// carrying their class name, arguments and BUILD state. Any other global, unknown opcodes,
// containers nested deeper than kMaxDepth, self-referencing containers and declared lengths
// beyond the end of the stream are rejected.
//
// Protocol 2 is what torch writes; the protocol 3-5 opcodes (FRAME, SHORT_BINUNICODE, BINUNICODE8,
// STACK_GLOBAL, MEMOIZE, BINBYTES, SHORT_BINBYTES, EMPTY_SET, ADDITEMS, NEWOBJ_EX, LONG4, ...)
// are accepted as well.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "torchzip/pickle_value.h"

namespace mcaconv::pickle {

inline constexpr int kMaxDepth = 1000;

// A storage named by a persistent id ('storage', class, key, location, numel).
struct PickleStorage {
  std::string key;       // the record is "<prefix>/data/<key>"
  std::string location;  // "cpu", "cuda:0", ...; informational
  bool typed = true;     // false for torch.storage.UntypedStorage
  DType dtype = DType::U8;  // element type of a typed storage (U8 for untyped)
  uint64_t nbytes = 0;      // numel times the element size (numel counts bytes when untyped)
  uint64_t offset = 0;      // byte offset in the stream of the BINPERSID that first named it
};

// A tensor built by _rebuild_tensor_v2/_v3 (possibly wrapped by a parameter or subclass rebuild).
struct PickleTensor {
  int storage = 0;  // index into UnpickledTorch::storages
  DType dtype = DType::F32;
  int64_t storage_offset = 0;  // in elements
  Shape shape;
  Shape strides;        // in elements
  uint64_t offset = 0;  // byte offset in the stream of the REDUCE that built it
};

struct UnpickledTorch {
  ValuePtr root;
  std::vector<PickleStorage> storages;  // one per distinct key, in first-reference order
  std::vector<PickleTensor> tensors;    // in pickle order; kTensor::tensor indexes this
};

// Runs the pickle `bytes`. Errors are Error(kInvalidInput) (kUnsupported for valid but
// unsupported content such as an unsupported protocol) with the message
// "<stream_name> offset <N>: <what>", where N is the offset of the offending opcode.
UnpickledTorch Unpickle(std::string_view bytes, const std::string& stream_name = "data.pkl");

}  // namespace mcaconv::pickle
