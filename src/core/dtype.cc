#include "core/dtype.h"

#include <array>

namespace mcaconv {
namespace {

constexpr std::array<DTypeInfo, 21> kDTypes = {{
    {DType::BOOL, "BOOL", "bool", "BoolStorage", 8},
    {DType::U8, "U8", "uint8", "ByteStorage", 8},
    {DType::I8, "I8", "int8", "CharStorage", 8},
    {DType::I16, "I16", "int16", "ShortStorage", 16},
    {DType::U16, "U16", "uint16", "", 16},
    {DType::F16, "F16", "float16", "HalfStorage", 16},
    {DType::BF16, "BF16", "bfloat16", "BFloat16Storage", 16},
    {DType::I32, "I32", "int32", "IntStorage", 32},
    {DType::U32, "U32", "uint32", "", 32},
    {DType::F32, "F32", "float32", "FloatStorage", 32},
    {DType::F64, "F64", "float64", "DoubleStorage", 64},
    {DType::I64, "I64", "int64", "LongStorage", 64},
    {DType::U64, "U64", "uint64", "", 64},
    {DType::C64, "C64", "complex64", "ComplexFloatStorage", 64},
    {DType::C128, "", "complex128", "ComplexDoubleStorage", 128},
    {DType::F8_E5M2, "F8_E5M2", "float8_e5m2", "", 8},
    {DType::F8_E4M3, "F8_E4M3", "float8_e4m3fn", "", 8},
    {DType::F8_E8M0, "F8_E8M0", "float8_e8m0fnu", "", 8},
    {DType::F8_E4M3FNUZ, "F8_E4M3FNUZ", "float8_e4m3fnuz", "", 8},
    {DType::F8_E5M2FNUZ, "F8_E5M2FNUZ", "float8_e5m2fnuz", "", 8},
    {DType::F4, "F4", "float4_e2m1fn_x2", "", 8},
}};

}  // namespace

const DTypeInfo& Info(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }

std::optional<DType> DTypeFromSafetensors(std::string_view name) {
  for (const auto& info : kDTypes)
    if (!info.safetensors_name.empty() && info.safetensors_name == name) return info.dtype;
  return std::nullopt;
}

std::optional<DType> DTypeFromTorchName(std::string_view name) {
  for (const auto& info : kDTypes)
    if (info.torch_name == name) return info.dtype;
  return std::nullopt;
}

std::optional<DType> DTypeFromStorageClass(std::string_view class_name) {
  for (const auto& info : kDTypes)
    if (!info.storage_class.empty() && info.storage_class == class_name) return info.dtype;
  return std::nullopt;
}

}  // namespace mcaconv
