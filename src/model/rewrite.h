// `mca-convert rewrite IN OUT`: copy the tensors of one checkpoint file into a fresh file,
// every tensor stored contiguously, optionally casting the floating-point ones.
//
// IN is a safetensors file or a torch.save zip (recognised by content, not by name). OUT is
// written as safetensors when its name ends in ".safetensors", otherwise as a torch.save zip
// holding a flat dict {name: tensor} under the archive folder named after OUT's stem
// ("model.pt" -> "model/data.pkl"). Only ".safetensors", ".pt", ".pth" and ".bin" are accepted.
//
// Names. Safetensors tensors keep their names and the output keeps the input's __metadata__ (so
// a file written by safetensors.torch.save_file comes back byte for byte when nothing is cast).
// A torch input is flattened: every tensor reachable from the pickled root is named by its path
// of dict keys and list indices joined with '/' (TorchFile::tensors), e.g. "model/decoder.x" for
// {"model": {"decoder.x": t}}; values that are not tensors (numbers, strings, None, opaque
// objects) are dropped, so a nested file comes out as a flat dict. Safetensors output from a
// torch input gets the metadata {"format": "pt"}. Views are materialised: a
// tensor that is a slice or a transpose of a larger storage is written as its own contiguous
// data, and two tensors sharing one storage are written twice. Names that collide after
// flattening are an error.
//
// The output is built in a temporary file next to OUT and renamed into place only on success,
// so OUT is never left half written; OUT may equal IN. Output is deterministic.
#pragma once

#include <optional>
#include <string>

#include "core/dtype.h"
#include "engine/plan.h"

namespace mcaconv {

struct RewriteArgs {
  std::string input;
  std::string output;
  // Target of F32/BF16/F16 tensors (--fp32/--bf16/--fp16); other dtypes are copied unchanged.
  std::optional<DType> cast;
  int threads = 0;  // 0: one per online CPU
};

// Reads IN's header (or pickle) and plans OUT: one OutputFilePlan whose relative_path is OUT's
// file name, reading plan.inputs[0] == args.input. Throws Error(kUsage) for an unsupported OUT
// extension, Error(kInvalidInput / kUnsupported) for unreadable input or colliding names.
Plan PlanRewrite(const RewriteArgs& args);

// Plans and executes the rewrite through a temporary sibling of OUT. Throws Error on failure,
// after removing the temporary file.
void RunRewrite(const RewriteArgs& args);

}  // namespace mcaconv
