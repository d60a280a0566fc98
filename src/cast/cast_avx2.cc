// AVX2 + F16C kernels. Only these functions are compiled for AVX2 (target attribute), so the
// rest of the build keeps the baseline ISA; Avx2Kernels() checks the CPU before handing them out.
// Tails shorter than a vector go through the scalar conversions, which give identical bits.
#include <cstdint>
#include <cstring>

#include "cast/cast_kernels.h"
#include "cast/cast_scalar.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MCACONV_HAVE_AVX2_KERNELS 1
#endif

namespace mcaconv::cast_internal {

#ifdef MCACONV_HAVE_AVX2_KERNELS
namespace {

#define MCACONV_AVX2 __attribute__((target("avx2,f16c")))

template <typename From, typename To, To (*Convert)(From)>
void ScalarTail(const uint8_t* in, uint8_t* out, size_t begin, size_t count) {
  for (size_t i = begin; i < count; ++i) {
    From value;
    std::memcpy(&value, in + i * sizeof(From), sizeof(From));
    const To converted = Convert(value);
    std::memcpy(out + i * sizeof(To), &converted, sizeof(To));
  }
}

// Round-to-nearest-even of eight f32 lanes to bf16 in the low half of each 32-bit lane, with
// `nan_bits` in unordered lanes.
MCACONV_AVX2 inline __m256i RoundToBF16Lanes(__m256 x, __m256i nan_bits) {
  const __m256i bits = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  const __m256i bias = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
  const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(rounded, nan_bits, is_nan);
}

// Packs two vectors of 16-bit values held in 32-bit lanes into 16 ordered uint16.
MCACONV_AVX2 inline __m256i PackLanes(__m256i lo, __m256i hi) {
  return _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
}

MCACONV_AVX2 inline __m256 LoadBF16AsF32(const uint8_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

MCACONV_AVX2 inline __m256 LoadF16AsF32(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

MCACONV_AVX2 inline void StoreF32AsF16(uint8_t* p, __m256 x) {
  const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
}

MCACONV_AVX2 void F32ToBF16Avx2(const void* src, void* dst, size_t count) {
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  const __m256i nan_bits = _mm256_set1_epi32(kBF16NaNFromF32);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m256 a = _mm256_loadu_ps(reinterpret_cast<const float*>(in + i * 4));
    const __m256 b = _mm256_loadu_ps(reinterpret_cast<const float*>(in + i * 4 + 32));
    const __m256i packed = PackLanes(RoundToBF16Lanes(a, nan_bits), RoundToBF16Lanes(b, nan_bits));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i * 2), packed);
  }
  ScalarTail<uint32_t, uint16_t, F32ToBF16>(in, out, i, count);
}

MCACONV_AVX2 void F16ToBF16Avx2(const void* src, void* dst, size_t count) {
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  const __m256i nan_bits = _mm256_set1_epi32(kBF16NaNFromF16);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m256 a = LoadF16AsF32(in + i * 2);
    const __m256 b = LoadF16AsF32(in + i * 2 + 16);
    const __m256i packed = PackLanes(RoundToBF16Lanes(a, nan_bits), RoundToBF16Lanes(b, nan_bits));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i * 2), packed);
  }
  ScalarTail<uint16_t, uint16_t, F16ToBF16>(in, out, i, count);
}

MCACONV_AVX2 void F32ToF16Avx2(const void* src, void* dst, size_t count) {
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const auto* from = reinterpret_cast<const float*>(in + i * 4);
    StoreF32AsF16(out + i * 2, _mm256_loadu_ps(from));
    StoreF32AsF16(out + i * 2 + 16, _mm256_loadu_ps(from + 8));
  }
  ScalarTail<uint32_t, uint16_t, F32ToF16>(in, out, i, count);
}

MCACONV_AVX2 void BF16ToF16Avx2(const void* src, void* dst, size_t count) {
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    StoreF32AsF16(out + i * 2, LoadBF16AsF32(in + i * 2));
    StoreF32AsF16(out + i * 2 + 16, LoadBF16AsF32(in + i * 2 + 16));
  }
  ScalarTail<uint16_t, uint16_t, BF16ToF16>(in, out, i, count);
}

MCACONV_AVX2 void BF16ToF32Avx2(const void* src, void* dst, size_t count) {
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    _mm256_storeu_ps(reinterpret_cast<float*>(out + i * 4), LoadBF16AsF32(in + i * 2));
    _mm256_storeu_ps(reinterpret_cast<float*>(out + i * 4 + 32), LoadBF16AsF32(in + i * 2 + 16));
  }
  ScalarTail<uint16_t, uint32_t, BF16ToF32>(in, out, i, count);
}

MCACONV_AVX2 void F16ToF32Avx2(const void* src, void* dst, size_t count) {
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    _mm256_storeu_ps(reinterpret_cast<float*>(out + i * 4), LoadF16AsF32(in + i * 2));
    _mm256_storeu_ps(reinterpret_cast<float*>(out + i * 4 + 32), LoadF16AsF32(in + i * 2 + 16));
  }
  ScalarTail<uint16_t, uint32_t, F16ToF32>(in, out, i, count);
}

constexpr CastKernelSet kAvx2 = {
    "avx2+f16c",  F32ToBF16Avx2, F32ToF16Avx2,  BF16ToF32Avx2,
    F16ToF32Avx2, BF16ToF16Avx2, F16ToBF16Avx2,
};

}  // namespace

const CastKernelSet* Avx2Kernels() {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("f16c")) return nullptr;
  return &kAvx2;
}

#else

const CastKernelSet* Avx2Kernels() { return nullptr; }

#endif

}  // namespace mcaconv::cast_internal
