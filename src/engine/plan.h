// The conversion plan: every output file laid out in full before any byte is written, and the
// list of region copies that fill it.
//
// A format writer's planning step (safetensors, torch zip) turns a list of OutputTensors into a
// FileLayout: the file's total size, the fixed bytes it owns (headers, pickles, zip records), the
// byte offset of each tensor's data, and the CRC32 values to patch in once the data is written.
// The model layer then adds CopyOps that move elements from mapped input files into those data
// slots. ExecutePlan (executor.h) runs it.
//
// Every transformation of the reference converter (renames, TP splits and merges, QKV interleave,
// gate/up stacking, expert placement, transposed grouped-GEMM layouts, casts) is a set of
// CopyOps: an N-d box of elements read through source strides and written through destination
// strides, with an optional dtype conversion.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace mcaconv {

// Fixed bytes owned by a format writer, written at `offset` before any tensor data.
struct Blob {
  uint64_t offset = 0;
  std::string bytes;
};

// After all data is written: CRC32 (IEEE, as zlib computes it) of [data_offset, data_offset +
// data_size) is stored little-endian as 4 bytes at each of patch_offsets.
struct CrcPatch {
  uint64_t data_offset = 0;
  uint64_t data_size = 0;
  std::vector<uint64_t> patch_offsets;
};

struct FileLayout {
  uint64_t size = 0;                     // total file size in bytes
  std::vector<Blob> blobs;               // non-overlapping
  std::vector<uint64_t> tensor_offsets;  // data offset of each planned tensor, in input order
  std::vector<CrcPatch> crc_patches;
};

// Copies the box `shape` from an input file to the output file. Element [i0, i1, ...] is read at
// src_offset + sum(ik * src_strides[k]) * ElementSize(src_dtype) and written, converted to
// dst_dtype, at dst_offset + sum(ik * dst_strides[k]) * ElementSize(dst_dtype). src_dtype and
// dst_dtype are equal or both in {F32, BF16, F16}.
struct CopyOp {
  int src_file = 0;  // index into Plan::inputs
  uint64_t src_offset = 0;
  Shape src_strides;
  DType src_dtype = DType::F32;
  uint64_t dst_offset = 0;
  Shape dst_strides;
  DType dst_dtype = DType::F32;
  Shape shape;
};

// Asserts that two input regions hold identical elements (replicated tensors across TP ranks).
// On mismatch the executor reports `what` with the largest absolute difference.
struct CompareOp {
  int a_file = 0;
  uint64_t a_offset = 0;
  Shape a_strides;
  int b_file = 0;
  uint64_t b_offset = 0;
  Shape b_strides;
  DType dtype = DType::F32;
  Shape shape;
  std::string what;  // e.g. "decoder.layers.0.mlp.linear_fc1.layer_norm_weight: TP rank 1 vs 0"
  // Largest accepted absolute difference (float dtypes); 0 means bit-for-bit equality.
  double tolerance = 0;
};

struct OutputFilePlan {
  std::string relative_path;          // inside the output directory, '/'-separated
  std::vector<OutputTensor> tensors;  // what the file holds, for --dry-run and coverage checks
  FileLayout layout;
  std::vector<CopyOp> ops;
};

// A small file written verbatim (JSON configs, tracker file) or copied from an input path.
struct TextFile {
  std::string relative_path;
  std::string content;
};
struct CopiedFile {
  std::string source_path;
  std::string relative_path;
};

struct Plan {
  std::vector<std::string> inputs;  // input files read by CopyOps, indexed by src_file
  std::vector<OutputFilePlan> files;
  std::vector<TextFile> text_files;
  std::vector<CopiedFile> copied_files;
  std::vector<CompareOp> checks;

  uint64_t OutputBytes() const;  // sum of layout sizes plus text and copied files' known sizes
};

// Verifies that each file's CopyOps stay inside the file, write only inside its tensor slots, and
// together write exactly as many elements as the tensors hold (no tensor left unwritten). Throws
// kInvalidInput naming the file and tensor on the first violation. Called before execution.
void CheckCoverage(const Plan& plan);

}  // namespace mcaconv
