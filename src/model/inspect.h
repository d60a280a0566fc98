// `mca-convert inspect PATH`: what a checkpoint holds, without converting it.
//
// PATH may be
//   * a .safetensors file;
//   * a torch.save zip file (.pt, .bin, .pth; recognised by its zip magic whatever the name);
//   * an HF folder: the shards named by model.safetensors.index.json or
//     pytorch_model.bin.index.json, or else every model*.safetensors, or else every
//     pytorch_model*.bin (adapter_model.safetensors / .bin for a PEFT adapter folder);
//   * an MCA folder (mca_config.json): iter_0000001/mp_rank_*/model_optim_rng.pt, one entry per
//     rank file, in rank order. Like the reference converter, the tracker file is not consulted.
// For torch files the pickled object is walked as well, so entries that are not tensors (None,
// numbers, strings, opaque objects such as io.BytesIO or argparse.Namespace, empty containers)
// are listed with their kind. Names are dict keys and list indices joined with '/', as
// TorchFile::tensors names tensors. Files are opened one at a time; nothing is read beyond the
// headers and the pickle.
//
// The library never prints: the Write* functions render a report onto a stream the caller owns.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace mcaconv {

struct InspectFile {
  std::string path;    // relative to the inspected folder; the file name for a single file
  std::string format;  // "safetensors" or "torch"
  uint64_t size = 0;   // bytes on disk
  std::vector<std::pair<std::string, std::string>> metadata;  // safetensors __metadata__
};

struct InspectTensor {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t bytes = 0;  // logical size: elements times element size (not the storage size)
  int file = 0;        // index into InspectReport::files
};

struct InspectNonTensor {
  std::string name;  // "" for the root object
  std::string kind;  // None, bool, int, float, str, bytes, object, dict, list, tuple
  std::string value;  // display text: the number, the string, the class of an object, "{}"
  int file = 0;
};

struct InspectReport {
  std::string path;
  std::string layout;  // "safetensors file", "torch file", "HF folder", "MCA folder"
  std::vector<InspectFile> files;
  std::vector<InspectTensor> tensors;
  std::vector<InspectNonTensor> non_tensors;
  // Display order: tensors and non-tensor entries interleaved as each file holds them.
  struct Row {
    bool is_tensor;
    size_t index;
  };
  std::vector<Row> rows;
  uint64_t total_bytes = 0;
};

// Reads the headers of every file under `path`. Throws Error(kUsage) when `path` is none of the
// supported inputs, and the readers' Error(kInvalidInput / kUnsupported / kIo) on bad files.
InspectReport InspectPath(const std::string& path);

// An aligned table (name, dtype, shape, bytes, file), a per-file summary, and the totals.
void WriteInspectTable(const InspectReport& report, std::ostream& out);

// One JSON document: {"path", "layout", "files": [{"path", "format", "bytes", "tensors",
// "metadata"}], "tensors": [{"name", "dtype", "shape", "bytes", "file"}], "non_tensors":
// [{"name", "kind", "value", "file"}], "total_tensors", "total_bytes", "total_files",
// "total_non_tensors"}. dtype is the torch name ("bfloat16"); file is the relative path.
void WriteInspectJson(const InspectReport& report, std::ostream& out);

}  // namespace mcaconv
