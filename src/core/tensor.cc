#include "core/tensor.h"

#include "core/error.h"

namespace mcaconv {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) ThrowInvalid("negative dimension in shape " + ShapeToString(shape));
    if (d != 0 && n > INT64_MAX / d)
      ThrowInvalid("element count overflows in shape " + ShapeToString(shape));
    n *= d;
  }
  return n;
}

Shape ContiguousStrides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i] == 0 ? 1 : shape[i];
  }
  return strides;
}

std::string ShapeToString(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

bool TensorView::IsContiguous() const {
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    if (strides[i] != expected) return NumElements(shape) == 0;
    expected *= shape[i];
  }
  return true;
}

}  // namespace mcaconv
