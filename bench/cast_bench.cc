// Single-thread throughput of the cast kernels: f32 -> bf16 and f32 -> f16 with each kernel set.
// Reports GB/s of source data (4 bytes per element), best of several passes over a buffer larger
// than the last-level cache.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "cast/cast_kernels.h"

namespace {

double BestGigabytesPerSecond(mcaconv::cast_internal::CastFn fn, const std::vector<float>& src,
                              std::vector<uint16_t>& dst) {
  double best = 0;
  for (int pass = 0; pass < 7; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    fn(src.data(), dst.data(), src.size());
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    const double rate = static_cast<double>(src.size()) * 4 / took.count() / 1e9;
    if (rate > best) best = rate;
  }
  return best;
}

}  // namespace

int main() {
  constexpr size_t kCount = 32u << 20;  // 128 MiB of f32
  std::vector<float> src(kCount);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (float& x : src) x = normal(rng);
  std::vector<uint16_t> dst(kCount, 1);

  using mcaconv::cast_internal::CastKernelSet;
  std::vector<const CastKernelSet*> sets = {&mcaconv::cast_internal::PortableKernels()};
  if (const CastKernelSet* avx2 = mcaconv::cast_internal::Avx2Kernels()) sets.push_back(avx2);
  for (const CastKernelSet* set : sets) {
    std::printf("%-10s f32->bf16 %6.2f GB/s   f32->f16 %6.2f GB/s\n", set->name,
                BestGigabytesPerSecond(set->f32_to_bf16, src, dst),
                BestGigabytesPerSecond(set->f32_to_f16, src, dst));
  }
  return 0;
}
