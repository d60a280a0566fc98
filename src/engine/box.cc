#include "engine/box.h"

namespace mcaconv {

bool BoxByteRange(uint64_t offset, const Shape& shape, const Shape& strides, int element_size,
                  ByteRange* range) {
  if (shape.size() != strides.size()) return false;
  // One int64 product fits in 127 bits; sums are cut off far above any real file size before a
  // second product could overflow them.
  constexpr __int128 kLimit = static_cast<__int128>(1) << 100;
  __int128 low = 0;
  __int128 high = 0;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] <= 0) return false;
    const __int128 span = static_cast<__int128>(strides[k]) * (shape[k] - 1);
    (span > 0 ? high : low) += span;
    if (high > kLimit || low < -kLimit) return false;
  }
  const __int128 begin = static_cast<__int128>(offset) + low * element_size;
  const __int128 end = static_cast<__int128>(offset) + (high + 1) * element_size;
  if (begin < 0 || end > static_cast<__int128>(UINT64_MAX)) return false;
  range->begin = static_cast<uint64_t>(begin);
  range->end = static_cast<uint64_t>(end);
  return true;
}

std::string RangeToString(const ByteRange& range) {
  return "[" + std::to_string(range.begin) + ", " + std::to_string(range.end) + ")";
}

}  // namespace mcaconv
