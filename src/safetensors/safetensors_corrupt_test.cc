// OpenSafetensors on hostile and malformed files: one case per failure class of the reference
// reader (formats.md 3.4), plus the valid corner cases it accepts.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "safetensors/safetensors.h"

namespace mcaconv {
namespace {

std::string LittleEndian64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return bytes;
}

// A file of: the header length (declared_length, else header.size()), header, then data.
std::string MakeFile(const std::string& header, const std::string& data,
                     std::optional<uint64_t> declared_length = std::nullopt) {
  return LittleEndian64(declared_length.value_or(header.size())) + header + data;
}

std::string WriteTemp(const std::string& stem, const std::string& bytes) {
  const std::string path =
      testing::TempDir() + "stc_" + std::to_string(::getpid()) + "_" + stem + ".safetensors";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

struct CorruptCase {
  std::string label;
  std::string bytes;
  ErrorKind kind = ErrorKind::kInvalidInput;
  std::string tensor;                  // must appear in the message when not empty
  std::optional<uint64_t> offset;      // the exact "offset N" reported, where pinned down
};

CorruptCase Case(std::string label, std::string bytes, ErrorKind kind = ErrorKind::kInvalidInput,
                 std::string tensor = "", std::optional<uint64_t> offset = std::nullopt) {
  return CorruptCase{std::move(label), std::move(bytes), kind, std::move(tensor), offset};
}

// "<name>":{"dtype":..,"shape":..,"data_offsets":..}, with shape and offsets as JSON text.
std::string Entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

std::string Header(const std::string& entries) { return "{" + entries + "}"; }

const std::string kEntryW = Entry("w", "F32", "[2]", "[0,8]");

std::vector<CorruptCase> Cases() {
  const ErrorKind kInvalid = ErrorKind::kInvalidInput;
  const std::string x4(4, 'x');
  const std::string x8(8, 'x');
  const std::string x12(12, 'x');
  const auto w = [](const std::string& dtype, const std::string& shape,
                    const std::string& offsets) {
    return Header(Entry("w", dtype, shape, offsets));
  };
  return {
      // Length field.
      Case("truncated_below_8_bytes", std::string("\x05\x00\x00", 3)),
      Case("empty_file", ""),
      Case("header_length_past_end", MakeFile("{}", "", 4096), kInvalid, "", 0),
      Case("absurd_header_size", MakeFile("{}", "", 200'000'000), kInvalid, "", 0),
      // Header text.
      Case("header_not_json", MakeFile(R"({"w":{"dtype":"F32",})", "")),
      Case("header_truncated_json", MakeFile(R"({"w":{"dtype":"F32","sha)", "")),
      Case("header_not_object", MakeFile("[1,2]", "")),
      Case("header_not_utf8", MakeFile("{\"w\xff\":{}}", ""), kInvalid, "", 11),
      Case("header_overlong_utf8", MakeFile("{\"\xc0\xaf\":1}", "")),
      Case("deep_nesting",
           MakeFile("{\"w\":{\"x\":" + std::string(200, '[') + std::string(200, ']') + "}}", "")),
      // Schema.
      Case("metadata_non_string_value", MakeFile(R"({"__metadata__":{"format":1}})", ""),
           kInvalid, "", 9),
      Case("metadata_not_object", MakeFile(R"({"__metadata__":"pt"})", "")),
      Case("unknown_dtype", MakeFile(w("F12", "[2]", "[0,8]"), x8), kInvalid, "w", 9),
      Case("lowercase_dtype", MakeFile(w("f32", "[2]", "[0,8]"), x8), kInvalid, "w"),
      Case("f6_dtype", MakeFile(w("F6_E2M3", "[4]", "[0,3]"), "abc"), ErrorKind::kUnsupported,
           "w"),
      Case("f4_odd_last_dim", MakeFile(w("F4", "[2,3]", "[0,3]"), "abc"),
           ErrorKind::kUnsupported, "w"),
      Case("f4_partial_byte", MakeFile(w("F4", "[3]", "[0,1]"), "a"), kInvalid, "w"),
      Case("negative_shape", MakeFile(w("F32", "[-2]", "[0,8]"), x8), kInvalid, "w"),
      Case("fractional_shape", MakeFile(w("F32", "[2.0]", "[0,8]"), x8), kInvalid, "w"),
      Case("string_offset", MakeFile(w("F32", "[2]", "[\"0\",8]"), x8), kInvalid, "w"),
      Case("three_offsets", MakeFile(w("F32", "[2]", "[0,8,8]"), x8), kInvalid, "w"),
      Case("missing_shape", MakeFile(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", x8),
           kInvalid, "w"),
      Case("entry_not_object", MakeFile(R"({"w":[1]})", ""), kInvalid, "w"),
      Case("duplicate_tensor", MakeFile(Header(kEntryW + "," + kEntryW), x8), kInvalid, "w"),
      Case("duplicate_field",
           MakeFile(R"({"w":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                    x8),
           kInvalid, "w"),
      Case("duplicate_metadata_key", MakeFile(R"({"__metadata__":{"a":"b","a":"c"}})", ""),
           kInvalid, "a"),
      // Layout.
      Case("offsets_overlap",
           MakeFile(Header(kEntryW + "," + Entry("v", "F32", "[2]", "[4,12]")), x12), kInvalid,
           "v"),
      Case("offsets_gap",
           MakeFile(Header(kEntryW + "," + Entry("v", "F32", "[1]", "[12,16]")), x12 + x4),
           kInvalid, "v"),
      Case("offsets_not_from_zero", MakeFile(w("F32", "[1]", "[4,8]"), x8), kInvalid, "w"),
      Case("offsets_end_before_begin",
           MakeFile(Header(kEntryW + "," + Entry("v", "F32", "[0]", "[8,4]")), x8), kInvalid,
           "v"),
      Case("offsets_out_of_range", MakeFile(Header(kEntryW), x4), kInvalid, "w"),
      Case("dtype_shape_length_mismatch", MakeFile(w("F32", "[3]", "[0,8]"), x8), kInvalid, "w"),
      Case("trailing_bytes", MakeFile(Header(kEntryW), x8 + "tail"), kInvalid, "w"),
      Case("trailing_bytes_no_tensors", MakeFile("{}", "tail")),
      Case("numel_overflow", MakeFile(w("F32", "[4294967296,4294967296,16]", "[0,0]"), ""),
           kInvalid, "w"),
      Case("bits_overflow", MakeFile(w("F64", "[1152921504606846976]", "[0,0]"), ""), kInvalid,
           "w"),
  };
}

TEST(SafetensorsCorrupt, EveryFailureClassIsReported) {
  for (const CorruptCase& c : Cases()) {
    SCOPED_TRACE(c.label);
    const std::string path = WriteTemp(c.label, c.bytes);
    try {
      OpenSafetensors(path);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_EQ(e.kind(), c.kind) << message;
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_NE(message.find("offset"), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      if (!c.tensor.empty()) {
        EXPECT_NE(message.find("\"" + c.tensor + "\""), std::string::npos) << message;
      }
      if (c.offset) {
        const std::string at = "offset " + std::to_string(*c.offset);
        EXPECT_TRUE(message.find(at + ",") != std::string::npos ||
                    message.find(at + ":") != std::string::npos)
            << message;
      }
    }
    ::unlink(path.c_str());
  }
}

// Offsets are reported as file positions: the data range for layout problems.
TEST(SafetensorsCorrupt, LayoutErrorsNameTheDataRange) {
  const std::string header =
      "{" + kEntryW + R"(,"v":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})";
  const std::string path = WriteTemp("gap_offset", MakeFile(header, std::string(16, 'x')));
  try {
    OpenSafetensors(path);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    const std::string expected = "offset " + std::to_string(8 + header.size() + 12) + ",";
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
  ::unlink(path.c_str());
}

// Files the reference reader accepts (checked with safetensors 0.8 safe_open).
TEST(SafetensorsCorrupt, AcceptsWhatTheReferenceAccepts) {
  const std::string entry = R"("w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":[{}]})";
  const std::string cases[] = {
      MakeFile(" \t\n{" + entry + "}\r\n ", "a"),
      MakeFile(R"({"__metadata__":null,)" + entry + "}", "a"),
      MakeFile("{" + entry + R"(,"__metadata__":{"format":"pt"}})", "a"),
      MakeFile(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
               R"("b":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]},)" + entry + "}",
               "a"),
  };
  int index = 0;
  for (const std::string& bytes : cases) {
    SCOPED_TRACE(index);
    const std::string path = WriteTemp("valid" + std::to_string(index++), bytes);
    const SafetensorsFile file = OpenSafetensors(path);
    ASSERT_FALSE(file.tensors.empty());
    EXPECT_EQ(file.tensors.back().name, "w");
    EXPECT_EQ(file.tensors.back().view.data_offset, bytes.size() - 1);
    ::unlink(path.c_str());
  }
}

}  // namespace
}  // namespace mcaconv
