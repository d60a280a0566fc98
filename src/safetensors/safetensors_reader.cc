// OpenSafetensors: validates a safetensors file as the reference reader does (formats.md 3.4)
// and describes its tensors as views into the mapping. No tensor byte is read here.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "safetensors/header_json.h"
#include "safetensors/header_text.h"
#include "safetensors/safetensors.h"

namespace mcaconv {
namespace {

using safetensors_internal::FindInvalidUtf8;
using safetensors_internal::HeaderJson;
using safetensors_internal::Quote;
using safetensors_internal::TopLevelKeyOffsets;
using Json = nlohmann::json;

constexpr uint64_t kLengthFieldSize = 8;
constexpr uint64_t kMaxHeaderSize = 100'000'000;  // the reference reader's HeaderTooLarge limit
constexpr std::string_view kMetadataKey = "__metadata__";

// One tensor entry of the header, before layout validation.
struct Entry {
  std::string name;
  uint64_t header_offset = 0;  // file offset of the entry's key
  std::optional<DType> dtype;  // empty for the F6 dtypes, which torch cannot hold
  std::string dtype_name;
  uint64_t bits = 0;  // per logical element
  std::vector<uint64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Where a header or data problem is reported: "<path>: offset N, tensor "t": <what>".
struct Reporter {
  const std::string& path;

  [[noreturn]] void Invalid(uint64_t offset, std::string_view tensor,
                            const std::string& what) const {
    ThrowInvalid(Message(offset, tensor, what));
  }
  [[noreturn]] void Unsupported(uint64_t offset, std::string_view tensor,
                                const std::string& what) const {
    ThrowUnsupported(Message(offset, tensor, what));
  }
  std::string Message(uint64_t offset, std::string_view tensor, const std::string& what) const {
    std::string message = path + ": offset " + std::to_string(offset);
    if (!tensor.empty()) message += ", tensor " + Quote(tensor);
    return message + ": " + what;
  }
};

// A JSON value for an error message, cut short: hostile headers can hold megabyte strings.
std::string Describe(const Json& value) {
  constexpr size_t kMaxLength = 40;
  std::string text = value.dump();
  if (text.size() <= kMaxLength) return text;
  size_t cut = kMaxLength;
  while (cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;  // whole characters
  return text.substr(0, cut) + "...";
}

std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b) {
  if (a > UINT64_MAX - b) return std::nullopt;
  return a + b;
}

std::optional<uint64_t> CheckedMul(uint64_t a, uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) return std::nullopt;
  return a * b;
}

uint64_t ReadLittleEndian64(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// Returns N, the header length, after checking it against the limit and the file size.
uint64_t ReadHeaderLength(const MappedFile& file, const Reporter& report) {
  if (file.size() < kLengthFieldSize) {
    report.Invalid(0, "", "file is " + std::to_string(file.size()) +
                              " bytes, expected at least the 8-byte header length");
  }
  const uint64_t length = ReadLittleEndian64(file.data());
  if (length > kMaxHeaderSize) {
    report.Invalid(0, "", "declared header length " + std::to_string(length) +
                              " exceeds the limit of " + std::to_string(kMaxHeaderSize) + " bytes");
  }
  if (kLengthFieldSize + length > file.size()) {
    report.Invalid(0, "", "declared header length " + std::to_string(length) +
                              " runs past the end of the " + std::to_string(file.size()) +
                              "-byte file");
  }
  return length;
}

// Reads a JSON array of non-negative integers, as the reference's usize fields require.
std::vector<uint64_t> ReadUnsignedArray(const Json& value, std::string_view field,
                                        const Entry& entry, const Reporter& report) {
  if (!value.is_array()) {
    report.Invalid(entry.header_offset, entry.name,
                   std::string(field) + " must be an array, found " + Describe(value));
  }
  std::vector<uint64_t> numbers;
  for (const Json& item : value) {
    if (!item.is_number_unsigned()) {
      report.Invalid(entry.header_offset, entry.name,
                     std::string(field) + " must hold non-negative integers, found " +
                         Describe(item));
    }
    numbers.push_back(item.get<uint64_t>());
  }
  return numbers;
}

const Json& RequiredField(const Json& object, const char* field, const Entry& entry,
                          const Reporter& report) {
  const auto it = object.find(field);
  if (it == object.end()) {
    report.Invalid(entry.header_offset, entry.name,
                   std::string("missing field \"") + field + "\"");
  }
  return *it;
}

// Reads one "name": {"dtype": .., "shape": [..], "data_offsets": [b, e]} entry; other fields of
// the entry are ignored, as the reference reader ignores them.
Entry ReadEntry(const std::string& name, const Json& value, uint64_t header_offset,
                const Reporter& report) {
  Entry entry;
  entry.name = name;
  entry.header_offset = header_offset;
  if (!value.is_object()) {
    report.Invalid(header_offset, name, "tensor entry must be a JSON object, found " +
                                            Describe(value));
  }
  const Json& dtype = RequiredField(value, "dtype", entry, report);
  if (!dtype.is_string()) report.Invalid(header_offset, name, "dtype must be a string");
  entry.dtype_name = dtype.get<std::string>();
  entry.dtype = DTypeFromSafetensors(entry.dtype_name);
  if (entry.dtype_name == "F6_E2M3" || entry.dtype_name == "F6_E3M2") {
    entry.bits = 6;
  } else if (!entry.dtype) {
    report.Invalid(header_offset, name, "unknown dtype " + Quote(entry.dtype_name));
  } else {
    entry.bits = *entry.dtype == DType::F4 ? 4 : Info(*entry.dtype).bits;
  }
  entry.shape = ReadUnsignedArray(RequiredField(value, "shape", entry, report), "shape", entry,
                                  report);
  const std::vector<uint64_t> offsets = ReadUnsignedArray(
      RequiredField(value, "data_offsets", entry, report), "data_offsets", entry, report);
  if (offsets.size() != 2) {
    report.Invalid(header_offset, name, "data_offsets must hold 2 integers, found " +
                                            std::to_string(offsets.size()));
  }
  entry.begin = offsets[0];
  entry.end = offsets[1];
  return entry;
}

void ReadMetadata(const Json& value, const std::vector<std::string>& keys_in_order,
                  uint64_t header_offset, const Reporter& report, SafetensorsFile* out) {
  if (value.is_null()) return;  // the reference reader accepts an explicit null
  if (!value.is_object()) {
    report.Invalid(header_offset, "", "__metadata__ must be an object of strings, found " +
                                          Describe(value));
  }
  for (const std::string& key : keys_in_order) {
    const Json& item = value.at(key);
    if (!item.is_string()) {
      report.Invalid(header_offset, "", "__metadata__ value of " + Quote(key) +
                                            " must be a string, found " + Describe(item));
    }
    out->metadata.emplace_back(key, item.get<std::string>());
  }
}

// Parses the header JSON; a problem is reported at its header position, naming the tensor.
HeaderJson ParseHeader(std::string_view header, const Reporter& report) {
  HeaderJson parsed;
  const auto problem = safetensors_internal::ParseHeaderJson(header, &parsed);
  if (problem) {
    report.Invalid(kLengthFieldSize + problem->offset,
                   problem->entry == kMetadataKey ? "" : problem->entry, problem->what);
  }
  return parsed;
}

std::vector<Entry> ReadEntries(const HeaderJson& parsed, std::string_view header,
                               const Reporter& report, SafetensorsFile* out) {
  const Json& doc = parsed.doc;
  if (!doc.is_object()) {
    report.Invalid(kLengthFieldSize, "", "header must be a JSON object, found JSON type " +
                                             std::string(doc.type_name()));
  }
  const std::vector<size_t> key_offsets = TopLevelKeyOffsets(header);
  std::vector<Entry> entries;
  entries.reserve(parsed.keys.size());
  for (size_t index = 0; index < parsed.keys.size(); ++index) {
    const std::string& key = parsed.keys[index];
    const Json& value = doc.at(key);
    const uint64_t at =
        kLengthFieldSize + (index < key_offsets.size() ? key_offsets[index] : 0);
    if (key == kMetadataKey) {
      ReadMetadata(value, parsed.metadata_keys, at, report, out);
    } else {
      entries.push_back(ReadEntry(key, value, at, report));
    }
  }
  return entries;
}

// Bytes of a tensor as the reference computes them: numel and numel * bits overflow-checked,
// bits a multiple of 8.
uint64_t EntryByteSize(const Entry& entry, const Reporter& report) {
  std::optional<uint64_t> numel = 1;
  for (uint64_t dim : entry.shape) {
    numel = CheckedMul(*numel, dim);
    if (!numel) report.Invalid(entry.header_offset, entry.name, "element count overflows");
  }
  const std::optional<uint64_t> bits = CheckedMul(*numel, entry.bits);
  if (!bits) report.Invalid(entry.header_offset, entry.name, "size in bits overflows");
  if (*bits % 8 != 0) {
    report.Invalid(entry.header_offset, entry.name,
                   std::to_string(*numel) + " elements of " + entry.dtype_name +
                       " do not fill whole bytes");
  }
  return *bits / 8;
}

// Walks the entries in data-offset order: they must tile [0, last end) exactly and each range
// must be as long as dtype and shape say; the data must end exactly at the end of the file.
void ValidateLayout(std::vector<Entry>& entries, uint64_t data_start, uint64_t file_size,
                    const Reporter& report) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  uint64_t expected = 0;
  for (const Entry& e : entries) {
    const std::string range =
        "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    const uint64_t at = CheckedAdd(data_start, e.begin).value_or(e.header_offset);
    if (e.begin != expected) {
      const std::string problem = expected == 0 ? "the first tensor must start at 0"
                                  : e.begin < expected ? "overlaps the previous tensor"
                                                       : "leaves a gap after the previous tensor";
      report.Invalid(at, e.name, range + " " + problem + " (expected begin " +
                                     std::to_string(expected) + ")");
    }
    if (e.end < e.begin) report.Invalid(at, e.name, range + " end before begin");
    const uint64_t nbytes = EntryByteSize(e, report);
    if (e.end - e.begin != nbytes) {
      report.Invalid(at, e.name, range + " span " + std::to_string(e.end - e.begin) +
                                     " bytes, expected " + std::to_string(nbytes) + " for " +
                                     e.dtype_name + " shape " +
                                     ShapeToString(Shape(e.shape.begin(), e.shape.end())));
    }
    expected = e.end;
  }
  const std::optional<uint64_t> data_end = CheckedAdd(data_start, expected);
  if (data_end && *data_end == file_size) return;
  const std::string last = entries.empty() ? "" : entries.back().name;
  const std::string found = data_end ? std::to_string(*data_end) : "beyond 2^64";
  if (data_end && *data_end < file_size) {
    report.Invalid(*data_end, last,
                   "tensor data ends at file offset " + found + " but the file has " +
                       std::to_string(file_size - *data_end) + " trailing bytes");
  }
  report.Invalid(data_start, last, "tensor data ends at file offset " + found +
                                       ", past the end of the " + std::to_string(file_size) +
                                       "-byte file");
}

// The torch-visible tensor: F4 packs two values per byte, so its last dimension halves.
SourceTensor ToSourceTensor(const Entry& entry, uint64_t data_start, const Reporter& report) {
  const uint64_t at = data_start + entry.begin;  // validated: inside the file
  if (!entry.dtype) {
    report.Unsupported(at, entry.name, "dtype " + entry.dtype_name + " has no torch equivalent");
  }
  SourceTensor tensor;
  tensor.name = entry.name;
  tensor.view.dtype = *entry.dtype;
  for (uint64_t dim : entry.shape) {
    if (dim > static_cast<uint64_t>(INT64_MAX)) {
      report.Unsupported(at, entry.name, "dimension " + std::to_string(dim) + " exceeds int64");
    }
    tensor.view.shape.push_back(static_cast<int64_t>(dim));
  }
  if (tensor.view.dtype == DType::F4) {
    if (tensor.view.shape.empty() || tensor.view.shape.back() % 2 != 0) {
      report.Unsupported(at, entry.name, "F4 shape " + ShapeToString(tensor.view.shape) +
                                             " needs an even last dimension for torch "
                                             "float4_e2m1fn_x2");
    }
    tensor.view.shape.back() /= 2;
  }
  tensor.view.strides = ContiguousStrides(tensor.view.shape);
  tensor.view.data_offset = at;
  return tensor;
}

}  // namespace

SafetensorsFile OpenSafetensors(const std::string& path) {
  const Reporter report{path};
  SafetensorsFile out;
  out.file = MappedFile::Open(path);
  const uint64_t header_size = ReadHeaderLength(out.file, report);
  const std::string_view header(reinterpret_cast<const char*>(out.file.data()) + kLengthFieldSize,
                                header_size);
  const size_t bad_byte = FindInvalidUtf8(header);
  if (bad_byte != std::string_view::npos) {
    report.Invalid(kLengthFieldSize + bad_byte, "", "header is not valid UTF-8");
  }
  std::vector<Entry> entries = ReadEntries(ParseHeader(header, report), header, report, &out);
  const uint64_t data_start = kLengthFieldSize + header_size;
  ValidateLayout(entries, data_start, out.file.size(), report);
  out.tensors.reserve(entries.size());
  for (const Entry& entry : entries) {
    out.tensors.push_back(ToSourceTensor(entry, data_start, report));
  }
  return out;
}

}  // namespace mcaconv
