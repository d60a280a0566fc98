#include "cast/cast.h"

#include <cassert>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cast/cast_kernels.h"
#include "cast/cast_scalar.h"

namespace mcaconv {
namespace cast_internal {
namespace {

// Element-at-a-time loops over the scalar conversions. memcpy keeps the loads free of alignment
// and aliasing assumptions; compilers turn it into plain moves.
template <typename From, typename To, To (*Convert)(From)>
void ConvertLoop(const void* src, void* dst, size_t count) {
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t i = 0; i < count; ++i) {
    From value;
    std::memcpy(&value, in + i * sizeof(From), sizeof(From));
    const To converted = Convert(value);
    std::memcpy(out + i * sizeof(To), &converted, sizeof(To));
  }
}

constexpr CastKernelSet kPortable = {
    "portable",
    ConvertLoop<uint32_t, uint16_t, F32ToBF16>,
    ConvertLoop<uint32_t, uint16_t, F32ToF16>,
    ConvertLoop<uint16_t, uint32_t, BF16ToF32>,
    ConvertLoop<uint16_t, uint32_t, F16ToF32>,
    ConvertLoop<uint16_t, uint16_t, BF16ToF16>,
    ConvertLoop<uint16_t, uint16_t, F16ToBF16>,
};

// MCACONV_CAST_KERNEL=portable forces the portable set so tests can check both on one machine.
const CastKernelSet& SelectKernels() {
  const char* forced = std::getenv("MCACONV_CAST_KERNEL");
  if (forced != nullptr && std::strcmp(forced, "portable") == 0) return kPortable;
  const CastKernelSet* avx2 = Avx2Kernels();
  return avx2 != nullptr ? *avx2 : kPortable;
}

const CastKernelSet& Kernels() {
  static const CastKernelSet& kernels = SelectKernels();
  return kernels;
}

CastFn FindKernel(DType src, DType dst) {
  const CastKernelSet& k = Kernels();
  if (src == DType::F32 && dst == DType::BF16) return k.f32_to_bf16;
  if (src == DType::F32 && dst == DType::F16) return k.f32_to_f16;
  if (src == DType::BF16 && dst == DType::F32) return k.bf16_to_f32;
  if (src == DType::F16 && dst == DType::F32) return k.f16_to_f32;
  if (src == DType::BF16 && dst == DType::F16) return k.bf16_to_f16;
  if (src == DType::F16 && dst == DType::BF16) return k.f16_to_bf16;
  return nullptr;
}

}  // namespace

const CastKernelSet& PortableKernels() { return kPortable; }

}  // namespace cast_internal

void CastElements(const void* src, DType src_dtype, void* dst, DType dst_dtype, size_t count) {
  assert(IsCastable(src_dtype) && IsCastable(dst_dtype));
  if (count == 0) return;
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, count * static_cast<size_t>(ElementSize(src_dtype)));
    return;
  }
  cast_internal::CastFn kernel = cast_internal::FindKernel(src_dtype, dst_dtype);
  assert(kernel != nullptr);
  kernel(src, dst, count);
}

const char* CastKernelName() { return cast_internal::Kernels().name; }

}  // namespace mcaconv
