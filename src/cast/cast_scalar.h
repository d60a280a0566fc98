// Scalar element conversions shared by the portable kernels and the vector kernels' tails.
//
// They reproduce, bit for bit, what torch 2.13's vectorized CPU kernels (AVX2 and AVX-512, the
// capability torch picks on any x86-64 CPU with AVX2) produce for Tensor.to(). Measured with
// torch, not guessed:
//   f32 -> bf16  round to nearest even; every NaN becomes 0xFFFF (torch's vector kernel blends an
//                all-ones pattern over unordered lanes; its scalar code would give 0x7FC0).
//   f32 -> f16   round to nearest even, overflow to infinity, subnormals rounded exactly; a NaN
//                keeps its sign and the top 10 payload bits and gets the quiet bit (VCVTPS2PH).
//   f16 -> f32   exact; a NaN keeps sign and payload and gets the quiet bit (VCVTPH2PS).
//   bf16 -> f32  exact: the 16 bits become the high half, NaN payloads untouched.
//   bf16 -> f16  through f32, i.e. bf16 -> f32 -> f16 as above.
//   f16 -> bf16  through f32, then torch's scalar rounding: every NaN becomes 0x7FC0.
#pragma once

#include <cstdint>

namespace mcaconv::cast_internal {

constexpr uint16_t kBF16NaNFromF32 = 0xFFFF;  // f32 -> bf16, vector kernel
constexpr uint16_t kBF16NaNFromF16 = 0x7FC0;  // f16 -> bf16, scalar rounding

inline bool IsNaNBits(uint32_t f) { return (f & 0x7FFFFFFFu) > 0x7F800000u; }

// Round to nearest even on the high 16 bits; callers handle NaN first.
inline uint16_t RoundF32BitsToBF16(uint32_t f) {
  uint32_t rounding_bias = 0x7FFFu + ((f >> 16) & 1u);
  return static_cast<uint16_t>((f + rounding_bias) >> 16);
}

inline uint16_t F32ToBF16(uint32_t f) {
  return IsNaNBits(f) ? kBF16NaNFromF32 : RoundF32BitsToBF16(f);
}

inline uint32_t BF16ToF32(uint16_t b) { return static_cast<uint32_t>(b) << 16; }

inline uint16_t F32ToF16(uint32_t f) {
  const uint16_t sign = static_cast<uint16_t>((f >> 16) & 0x8000u);
  const uint32_t abs = f & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {
    if (abs == 0x7F800000u) return sign | 0x7C00u;
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
  }
  // 65520 and above round to infinity (65504 has an odd mantissa, so the tie goes up).
  if (abs >= 0x477FF000u) return sign | 0x7C00u;
  if (abs >= 0x38800000u) {  // normal in f16: rebias the exponent by 127 - 15
    uint32_t half = (abs - 0x38000000u) >> 13;
    uint32_t rest = abs & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  // Subnormal or zero in f16: value = mantissa * 2^(exponent - 150), in units of 2^-24.
  const uint32_t exponent = abs >> 23;
  if (exponent < 102) return sign;  // below 2^-25: rounds to zero (2^-25 itself is a tie to 0)
  const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126 - exponent;  // 14..24
  uint32_t half = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1);
  const uint32_t tie = 1u << (shift - 1);
  if (rest > tie || (rest == tie && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

inline uint32_t F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1F) {
    if (mantissa == 0) return sign | 0x7F800000u;
    return sign | 0x7FC00000u | (mantissa << 13);
  }
  if (exponent != 0) return sign | ((exponent + 112) << 23) | (mantissa << 13);
  if (mantissa == 0) return sign;
  // Subnormal: normalize so the leading one becomes the implicit bit.
  uint32_t e = 113;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return sign | (e << 23) | ((mantissa & 0x3FFu) << 13);
}

inline uint16_t BF16ToF16(uint16_t b) { return F32ToF16(BF16ToF32(b)); }

inline uint16_t F16ToBF16(uint16_t h) {
  const uint32_t f = F16ToF32(h);
  return IsNaNBits(f) ? kBF16NaNFromF16 : RoundF32BitsToBF16(f);
}

}  // namespace mcaconv::cast_internal
