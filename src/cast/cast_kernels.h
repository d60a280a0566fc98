// Kernel sets behind CastElements: one function per conversion direction, all with the scalar
// semantics of cast_scalar.h. Internal to the cast component.
#pragma once

#include <cstddef>

namespace mcaconv::cast_internal {

using CastFn = void (*)(const void* src, void* dst, size_t count);

struct CastKernelSet {
  const char* name;
  CastFn f32_to_bf16;
  CastFn f32_to_f16;
  CastFn bf16_to_f32;
  CastFn f16_to_f32;
  CastFn bf16_to_f16;
  CastFn f16_to_bf16;
};

const CastKernelSet& PortableKernels();
// The AVX2 + F16C set, or nullptr when this build or this CPU cannot run it.
const CastKernelSet* Avx2Kernels();

}  // namespace mcaconv::cast_internal
