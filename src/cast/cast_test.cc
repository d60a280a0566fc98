// Unit tests for the cast kernels. The full bit-exact comparison with torch lives in
// tests/python/test_cast.py; here the vector kernels are checked against the portable ones over
// every 16-bit pattern and many f32 patterns, and a few values measured with torch 2.13 anchor
// the NaN conventions.
#include "cast/cast.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "cast/cast_kernels.h"
#include "cast/cast_scalar.h"

namespace mcaconv::cast_internal {
namespace {

std::vector<uint16_t> All16BitPatterns() {
  std::vector<uint16_t> v(65536);
  for (uint32_t i = 0; i < 65536; ++i) v[i] = static_cast<uint16_t>(i);
  return v;
}

std::vector<uint32_t> F32Patterns() {
  std::vector<uint32_t> v = {0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7F800000,
                             0xFF800000, 0x7F7FFFFF, 0x477FF000, 0x477FEFFF, 0x33000000,
                             0x33000001, 0x00000001, 0x80000000, 0x38800000, 0x387FFFFF};
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) v.push_back(rng());
  for (int i = 0; i < 200000; ++i) {
    // Exponents around the f16 range and low bits at rounding ties.
    uint32_t exponent = 95 + rng() % 50;
    uint32_t low = (i % 2 == 0) ? 0x1000 : 0x8000;
    v.push_back((rng() & 0x80000000u) | (exponent << 23) | (rng() & 0x7F0000u) | low);
  }
  return v;
}

template <typename From, typename To>
void ExpectKernelsAgree(CastFn vector_fn, CastFn portable_fn, const std::vector<From>& input,
                        const char* what) {
  // Odd length exercises the scalar tail of the vector kernel.
  const size_t count = input.size() - 3;
  std::vector<To> a(count), b(count);
  vector_fn(input.data(), a.data(), count);
  portable_fn(input.data(), b.data(), count);
  for (size_t i = 0; i < count; ++i) {
    ASSERT_EQ(a[i], b[i]) << what << " input 0x" << std::hex << input[i];
  }
}

TEST(CastKernels, VectorMatchesPortable) {
  const CastKernelSet* avx2 = Avx2Kernels();
  if (avx2 == nullptr) GTEST_SKIP() << "no AVX2 + F16C on this CPU";
  const CastKernelSet& p = PortableKernels();
  const auto h = All16BitPatterns();
  const auto f = F32Patterns();
  ExpectKernelsAgree<uint32_t, uint16_t>(avx2->f32_to_bf16, p.f32_to_bf16, f, "f32->bf16");
  ExpectKernelsAgree<uint32_t, uint16_t>(avx2->f32_to_f16, p.f32_to_f16, f, "f32->f16");
  ExpectKernelsAgree<uint16_t, uint32_t>(avx2->bf16_to_f32, p.bf16_to_f32, h, "bf16->f32");
  ExpectKernelsAgree<uint16_t, uint32_t>(avx2->f16_to_f32, p.f16_to_f32, h, "f16->f32");
  ExpectKernelsAgree<uint16_t, uint16_t>(avx2->bf16_to_f16, p.bf16_to_f16, h, "bf16->f16");
  ExpectKernelsAgree<uint16_t, uint16_t>(avx2->f16_to_bf16, p.f16_to_bf16, h, "f16->bf16");
}

// Values printed by torch 2.13 (AVX2/AVX-512 capability) for Tensor.to().
TEST(CastScalar, MatchesTorchAnchors) {
  EXPECT_EQ(F32ToBF16(0x7FC00000), 0xFFFF);
  EXPECT_EQ(F32ToBF16(0xFF800001), 0xFFFF);
  EXPECT_EQ(F32ToBF16(0x7F7FFFFF), 0x7F80);
  EXPECT_EQ(F32ToBF16(0x477FF000), 0x4780);
  EXPECT_EQ(F32ToF16(0xFFC00000), 0xFE00);
  EXPECT_EQ(F32ToF16(0x7FA00000), 0x7F00);
  EXPECT_EQ(F32ToF16(0x7F812345), 0x7E09);
  EXPECT_EQ(F32ToF16(0xFFFFFFFF), 0xFFFF);
  EXPECT_EQ(F32ToF16(0x477FF000), 0x7C00);
  EXPECT_EQ(F32ToF16(0x477FEFFF), 0x7BFF);
  EXPECT_EQ(F16ToF32(0x7C01), 0x7FC02000u);
  EXPECT_EQ(F16ToF32(0x03FF), 0x387FC000u);
  EXPECT_EQ(F16ToF32(0x0001), 0x33800000u);
  EXPECT_EQ(F16ToBF16(0xFE00), 0x7FC0);
  EXPECT_EQ(BF16ToF16(0x7F81), 0x7E08);
  EXPECT_EQ(BF16ToF16(0xFF81), 0xFE08);
  EXPECT_EQ(BF16ToF16(0x3381), 0x0001);
  EXPECT_EQ(BF16ToF32(0x7F81), 0x7F810000u);
}

TEST(CastElements, SameDtypeCopiesAndDispatches) {
  const std::vector<uint16_t> src = {0x3C00, 0x7E00, 0x0001};
  std::vector<uint16_t> copy(3);
  CastElements(src.data(), DType::F16, copy.data(), DType::F16, 3);
  EXPECT_EQ(copy, src);
  std::vector<uint32_t> widened(3);
  CastElements(src.data(), DType::F16, widened.data(), DType::F32, 3);
  EXPECT_EQ(widened[0], 0x3F800000u);
  EXPECT_NE(std::string(CastKernelName()), "");
}

}  // namespace
}  // namespace mcaconv::cast_internal
