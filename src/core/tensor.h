// Descriptions of tensors that live inside mapped files, and of output tensors to be written.
//
// A TensorView says where a tensor's elements are: element [i0, i1, ...] of the tensor is at byte
// data_offset + (i0*strides[0] + i1*strides[1] + ...) * ElementSize(dtype) of its file. Strides
// are in elements, as torch records them, and may describe views: storage offsets, transposes,
// row slices. Readers validate that every element a view can address lies inside the storage it
// names, which itself lies inside the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mcaconv {

using Shape = std::vector<int64_t>;

// Number of elements of `shape`; 1 for a 0-dim tensor. Throws kInvalidInput on overflow or on a
// negative dimension.
int64_t NumElements(const Shape& shape);
// Row-major (C-contiguous) strides for `shape`, in elements.
Shape ContiguousStrides(const Shape& shape);
// "[2, 3]".
std::string ShapeToString(const Shape& shape);

struct TensorView {
  DType dtype = DType::F32;
  Shape shape;
  Shape strides;             // in elements; same length as shape
  uint64_t data_offset = 0;  // byte offset of element [0, ..., 0] within the file

  int64_t numel() const { return NumElements(shape); }
  uint64_t nbytes() const { return static_cast<uint64_t>(numel()) * ElementSize(dtype); }
  bool IsContiguous() const;
};

// A named tensor inside one of the input files a reader opened. `file` indexes the reader's list
// of mapped files.
struct SourceTensor {
  std::string name;
  int file = 0;
  TensorView view;
};

// A tensor to be written: name, dtype and shape. Output tensors are always stored contiguously.
struct OutputTensor {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;

  uint64_t nbytes() const { return static_cast<uint64_t>(NumElements(shape)) * ElementSize(dtype); }
};

}  // namespace mcaconv
