// Byte extents of strided element boxes (CopyOp / CompareOp operands). Internal to the engine.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace mcaconv {

// Bytes [begin, end) a box can touch.
struct ByteRange {
  uint64_t begin = 0;
  uint64_t end = 0;
};

// The smallest byte range holding every element of the non-empty box `shape` read through
// `strides` (elements, possibly negative) from `offset`. Returns false when that range leaves
// [0, 2^64) or shape and strides differ in length, so hostile strides cannot wrap around.
bool BoxByteRange(uint64_t offset, const Shape& shape, const Shape& strides, int element_size,
                  ByteRange* range);

// "[begin, end)".
std::string RangeToString(const ByteRange& range);

}  // namespace mcaconv
