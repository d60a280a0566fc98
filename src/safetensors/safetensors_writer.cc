// PlanSafetensors: the byte layout the reference writer (safetensors `serialize`) produces for
// the same tensors and a single-key metadata map (formats.md 3.5).
#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "safetensors/header_text.h"
#include "safetensors/safetensors.h"

namespace mcaconv {
namespace {

using safetensors_internal::AppendJsonString;
using safetensors_internal::FindInvalidUtf8;
using safetensors_internal::Quote;

constexpr uint64_t kLengthFieldSize = 8;
constexpr uint64_t kMaxHeaderSize = 100'000'000;  // what readers accept

// The reference writer sorts by its Dtype enum, descending. Its declaration order (F6 dtypes
// omitted: torch has none) is BOOL, F4, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ,
// F8_E5M2FNUZ, I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64.
int WriterRank(DType dtype) {
  static constexpr std::array<DType, 20> kEnumOrder = {
      DType::BOOL,    DType::F4,          DType::U8,          DType::I8,  DType::F8_E5M2,
      DType::F8_E4M3, DType::F8_E8M0,     DType::F8_E4M3FNUZ, DType::F8_E5M2FNUZ,
      DType::I16,     DType::U16,         DType::F16,         DType::BF16, DType::I32,
      DType::U32,     DType::F32,         DType::C64,         DType::F64, DType::I64,
      DType::U64};
  const auto it = std::find(kEnumOrder.begin(), kEnumOrder.end(), dtype);
  if (it == kEnumOrder.end()) {
    ThrowUnsupported("safetensors cannot store torch dtype " + std::string(Name(dtype)));
  }
  return static_cast<int>(it - kEnumOrder.begin());
}

void CheckText(std::string_view text, std::string_view what) {
  if (FindInvalidUtf8(text) != std::string_view::npos) {
    ThrowInvalid("safetensors plan: " + std::string(what) + " " + Quote(text) +
                 " is not valid UTF-8");
  }
}

void CheckInputs(const std::vector<OutputTensor>& tensors,
                 const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::set<std::string_view> names;
  for (const OutputTensor& t : tensors) {
    if (t.name.empty()) ThrowInvalid("safetensors plan: empty tensor name");
    if (t.name == "__metadata__") {
      ThrowInvalid("safetensors plan: tensor name \"__metadata__\" is reserved");
    }
    CheckText(t.name, "tensor name");
    if (!names.insert(t.name).second) {
      ThrowInvalid("safetensors plan: duplicate tensor name " + Quote(t.name));
    }
    WriterRank(t.dtype);
    if (t.dtype == DType::F4 && t.shape.empty()) {
      ThrowInvalid("safetensors plan: F4 tensor " + Quote(t.name) +
                   " needs at least one dimension");
    }
  }
  std::set<std::string_view> keys;
  for (const auto& [key, value] : metadata) {
    CheckText(key, "metadata key");
    CheckText(value, "metadata value");
    if (!keys.insert(key).second) {
      ThrowInvalid("safetensors plan: duplicate metadata key " + Quote(key));
    }
  }
}

// The header shape: safetensors counts F4 values, torch counts packed pairs.
Shape HeaderShape(const OutputTensor& tensor) {
  Shape shape = tensor.shape;
  if (tensor.dtype == DType::F4) {
    if (shape.back() > INT64_MAX / 2) {
      ThrowInvalid("safetensors plan: F4 tensor " + Quote(tensor.name) + " is too large");
    }
    shape.back() *= 2;
  }
  return shape;
}

// tensor.nbytes() with the overflow checks a hostile shape needs.
uint64_t TensorBytes(const OutputTensor& tensor) {
  const int64_t numel = WithContext("safetensors plan: tensor " + Quote(tensor.name),
                                    [&] { return NumElements(tensor.shape); });
  const auto element_size = static_cast<uint64_t>(ElementSize(tensor.dtype));
  if (static_cast<uint64_t>(numel) > UINT64_MAX / element_size) {
    ThrowInvalid("safetensors plan: tensor " + Quote(tensor.name) + " byte size overflows");
  }
  return static_cast<uint64_t>(numel) * element_size;
}

void AppendShape(const Shape& shape, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out->push_back(',');
    *out += std::to_string(shape[i]);
  }
  out->push_back(']');
}

}  // namespace

FileLayout PlanSafetensors(const std::vector<OutputTensor>& tensors,
                           const std::vector<std::pair<std::string, std::string>>& metadata) {
  CheckInputs(tensors, metadata);
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int rank_a = WriterRank(tensors[a].dtype);
    const int rank_b = WriterRank(tensors[b].dtype);
    if (rank_a != rank_b) return rank_a > rank_b;
    return tensors[a].name < tensors[b].name;  // char_traits<char> compares as unsigned bytes
  });

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i) {
      if (i > 0) header.push_back(',');
      AppendJsonString(metadata[i].first, &header);
      header.push_back(':');
      AppendJsonString(metadata[i].second, &header);
    }
    header.push_back('}');
  }
  std::vector<uint64_t> relative_offsets(tensors.size());
  uint64_t data_size = 0;
  for (size_t index : order) {
    const OutputTensor& tensor = tensors[index];
    const uint64_t nbytes = TensorBytes(tensor);
    if (nbytes > UINT64_MAX / 2 - data_size) {
      ThrowInvalid("safetensors plan: total data size overflows at tensor " + Quote(tensor.name));
    }
    relative_offsets[index] = data_size;
    if (header.size() > 1) header.push_back(',');
    AppendJsonString(tensor.name, &header);
    header += ":{\"dtype\":\"";
    header += Info(tensor.dtype).safetensors_name;
    header += "\",\"shape\":";
    AppendShape(HeaderShape(tensor), &header);
    header += ",\"data_offsets\":[" + std::to_string(data_size) + "," +
              std::to_string(data_size + nbytes) + "]}";
    data_size += nbytes;
  }
  header.push_back('}');
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kMaxHeaderSize) {
    ThrowInvalid("safetensors plan: header of " + std::to_string(header.size()) +
                 " bytes exceeds the " + std::to_string(kMaxHeaderSize) + "-byte reader limit");
  }

  FileLayout layout;
  const uint64_t data_start = kLengthFieldSize + header.size();
  std::string blob(kLengthFieldSize, '\0');
  for (size_t i = 0; i < kLengthFieldSize; ++i) {
    blob[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  }
  blob += header;
  layout.blobs.push_back(Blob{0, std::move(blob)});
  layout.size = data_start + data_size;
  layout.tensor_offsets.reserve(tensors.size());
  for (uint64_t offset : relative_offsets) layout.tensor_offsets.push_back(data_start + offset);
  return layout;
}

}  // namespace mcaconv
