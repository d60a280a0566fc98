// mcaconv-cast-check: converts a raw little-endian array of one dtype into another with
// CastElements, so tests can compare every bit pattern against torch.
//
//   mcaconv-cast-check SRC_DTYPE DST_DTYPE IN.bin OUT.bin   (dtypes: float32/F32, bfloat16/BF16,
//                                                           float16/F16)
//   mcaconv-cast-check --kernel                             prints the kernel set in use
//
// MCACONV_CAST_KERNEL=portable forces the portable kernels.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "cast/cast.h"
#include "core/dtype.h"

namespace {

std::optional<mcaconv::DType> ParseDType(const std::string& name) {
  auto dtype = mcaconv::DTypeFromTorchName(name);
  if (!dtype) dtype = mcaconv::DTypeFromSafetensors(name);
  if (!dtype || !mcaconv::IsCastable(*dtype)) return std::nullopt;
  return dtype;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "mcaconv-cast-check: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--kernel") {
    std::printf("%s\n", mcaconv::CastKernelName());
    return 0;
  }
  if (argc != 5) return Fail("usage: mcaconv-cast-check SRC_DTYPE DST_DTYPE IN.bin OUT.bin");
  const auto src_dtype = ParseDType(argv[1]);
  const auto dst_dtype = ParseDType(argv[2]);
  if (!src_dtype || !dst_dtype) return Fail("dtypes must be float32, bfloat16 or float16");

  std::ifstream in(argv[3], std::ios::binary);
  if (!in) return Fail(std::string("cannot open ") + argv[3]);
  const std::vector<char> input((std::istreambuf_iterator<char>(in)), {});
  const size_t src_size = mcaconv::ElementSize(*src_dtype);
  if (input.size() % src_size != 0) {
    return Fail(std::string(argv[3]) + ": size " + std::to_string(input.size()) +
                " is not a multiple of the element size " + std::to_string(src_size));
  }
  const size_t count = input.size() / src_size;
  std::vector<char> output(count * mcaconv::ElementSize(*dst_dtype));
  mcaconv::CastElements(input.data(), *src_dtype, output.data(), *dst_dtype, count);

  std::ofstream out(argv[4], std::ios::binary | std::ios::trunc);
  out.write(output.data(), static_cast<std::streamsize>(output.size()));
  out.close();
  if (!out) return Fail(std::string("cannot write ") + argv[4]);
  return 0;
}
