// Element types and their spellings in the formats we read and write.
//
// One table (dtype.cc) holds, per dtype: the safetensors string, the torch dtype name, the legacy
// torch storage class (empty for dtypes that torch pickles through UntypedStorage and
// _rebuild_tensor_v3), and the size in bits. Enumerators use the safetensors spelling.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcaconv {

enum class DType : uint8_t {
  BOOL,
  U8,
  I8,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  F64,
  I64,
  U64,
  C64,
  C128,  // torch complex128; safetensors has no spelling for it
  F8_E5M2,
  F8_E4M3,  // torch float8_e4m3fn
  F8_E8M0,  // torch float8_e8m0fnu
  F8_E4M3FNUZ,
  F8_E5M2FNUZ,
  F4,  // torch float4_e2m1fn_x2 stores two values per byte; safetensors counts logical values
};

struct DTypeInfo {
  DType dtype;
  std::string_view safetensors_name;  // empty when safetensors cannot store it
  std::string_view torch_name;        // e.g. "float32", "bfloat16"
  std::string_view storage_class;     // e.g. "FloatStorage"; empty => UntypedStorage + v3 rebuild
  int bits;                           // bits per element as torch stores it (F4: 8 per packed pair)
};

const DTypeInfo& Info(DType dtype);
// Bytes per element as stored by torch (F4: one byte holds two values).
inline int ElementSize(DType dtype) { return Info(dtype).bits / 8; }
inline std::string_view Name(DType dtype) { return Info(dtype).torch_name; }

std::optional<DType> DTypeFromSafetensors(std::string_view name);
std::optional<DType> DTypeFromTorchName(std::string_view name);          // "float32"
std::optional<DType> DTypeFromStorageClass(std::string_view class_name);  // "FloatStorage"

// True for the three dtypes the cast kernels convert between.
inline bool IsCastable(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
}

}  // namespace mcaconv
