// Element conversions among F32, BF16 and F16, bit-exact with torch's Tensor.to() on CPU: round to
// nearest even, infinities kept, NaN mapped as torch maps it, subnormals handled exactly. The
// kernel is chosen once at run time (AVX2 + F16C when the CPU has them, else portable code).
#pragma once

#include <cstddef>

#include "core/dtype.h"

namespace mcaconv {

// Converts `count` contiguous elements. Both dtypes must satisfy IsCastable(); equal dtypes copy.
// Thread-safe; single-threaded (callers parallelize over chunks).
void CastElements(const void* src, DType src_dtype, void* dst, DType dst_dtype, size_t count);

// Name of the kernel set in use, e.g. "avx2+f16c" or "portable" (for benchmarks and logs).
const char* CastKernelName();

}  // namespace mcaconv
