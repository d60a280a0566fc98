// Round trips through PlanSafetensors and OpenSafetensors, and byte-exact agreement with files
// written by the Python reference (tests/data/safetensors, made by make_fixtures.py).
#include "safetensors/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mcaconv {
namespace {

using Metadata = std::vector<std::pair<std::string, std::string>>;

const std::string kDataDir = std::string(MCACONV_TEST_DATA_DIR) + "/safetensors/";

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string TempPath(const std::string& stem) {
  return testing::TempDir() + "st_" + std::to_string(::getpid()) + "_" + stem + ".safetensors";
}

std::string HexToBytes(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

std::string TensorBytes(const SafetensorsFile& file, const SourceTensor& tensor) {
  return std::string(reinterpret_cast<const char*>(file.file.data()) + tensor.view.data_offset,
                     tensor.view.nbytes());
}

// Fills every planned byte: the blobs, then tensor i with bytes derived from i and the position.
std::string Materialize(const FileLayout& layout, const std::vector<OutputTensor>& tensors) {
  std::string file(layout.size, '\xAA');
  for (const Blob& blob : layout.blobs) file.replace(blob.offset, blob.bytes.size(), blob.bytes);
  for (size_t i = 0; i < tensors.size(); ++i) {
    for (uint64_t k = 0; k < tensors[i].nbytes(); ++k) {
      file[layout.tensor_offsets[i] + k] = static_cast<char>(i * 31 + k * 7 + 1);
    }
  }
  return file;
}

void WriteWholeFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

TEST(SafetensorsRoundTrip, PlannedFileReadsBack) {
  const std::vector<OutputTensor> tensors = {
      {"model.embed.weight", DType::BF16, {4, 3}},
      {"scalar", DType::F32, {}},
      {"empty", DType::F16, {0, 5}},
      {"ids", DType::I64, {3}},
      {"flags", DType::BOOL, {5}},
      {"packed", DType::F4, {2, 3}},
      {"scale", DType::F8_E8M0, {2}},
      {"q\"uote\n", DType::U8, {7}},
      {"c", DType::C64, {1, 1}},
  };
  const Metadata metadata = {{"format", "pt"}, {"a_second_key", "kept in order"}};
  const FileLayout layout = PlanSafetensors(tensors, metadata);
  const std::string path = TempPath("roundtrip");
  const std::string bytes = Materialize(layout, tensors);
  WriteWholeFile(path, bytes);

  const SafetensorsFile file = OpenSafetensors(path);
  EXPECT_EQ(file.metadata, metadata);
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (size_t i = 1; i < file.tensors.size(); ++i) {
    EXPECT_LE(file.tensors[i - 1].view.data_offset, file.tensors[i].view.data_offset);
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto it = std::find_if(file.tensors.begin(), file.tensors.end(),
                                 [&](const SourceTensor& t) { return t.name == tensors[i].name; });
    ASSERT_NE(it, file.tensors.end()) << tensors[i].name;
    EXPECT_EQ(it->file, 0);
    EXPECT_EQ(it->view.dtype, tensors[i].dtype) << tensors[i].name;
    EXPECT_EQ(it->view.shape, tensors[i].shape) << tensors[i].name;
    EXPECT_EQ(it->view.strides, ContiguousStrides(tensors[i].shape)) << tensors[i].name;
    EXPECT_EQ(it->view.data_offset, layout.tensor_offsets[i]) << tensors[i].name;
    EXPECT_EQ(TensorBytes(file, *it), bytes.substr(layout.tensor_offsets[i], tensors[i].nbytes()));
  }
  ::unlink(path.c_str());
}

TEST(SafetensorsPlan, HeaderIsCompactPaddedAndAligned) {
  const FileLayout layout =
      PlanSafetensors({{"w", DType::F32, {2, 3}}, {"b", DType::F16, {3}}}, {{"format", "pt"}});
  ASSERT_EQ(layout.blobs.size(), 1u);
  const std::string& blob = layout.blobs[0].bytes;
  EXPECT_EQ(layout.blobs[0].offset, 0u);
  const std::string header = blob.substr(8);
  EXPECT_EQ(header.size() % 8, 0u);
  EXPECT_EQ(static_cast<uint8_t>(blob[0]), header.size());
  EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1),
            "{\"__metadata__\":{\"format\":\"pt\"},"
            "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
            "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[24,30]}}");
  EXPECT_EQ(layout.tensor_offsets, (std::vector<uint64_t>{blob.size(), blob.size() + 24}));
  EXPECT_EQ(layout.size, blob.size() + 30);
  EXPECT_TRUE(layout.crc_patches.empty());
}

TEST(SafetensorsPlan, RejectsBadInputs) {
  const auto kind_of = [](const std::vector<OutputTensor>& tensors, const Metadata& metadata) {
    try {
      PlanSafetensors(tensors, metadata);
    } catch (const Error& e) {
      return e.kind();
    }
    ADD_FAILURE() << "no error";
    return ErrorKind::kUsage;
  };
  const Metadata pt = {{"format", "pt"}};
  EXPECT_EQ(kind_of({{"a", DType::F32, {1}}, {"a", DType::F16, {1}}}, pt),
            ErrorKind::kInvalidInput);
  EXPECT_EQ(kind_of({{"", DType::F32, {1}}}, pt), ErrorKind::kInvalidInput);
  EXPECT_EQ(kind_of({{"__metadata__", DType::F32, {1}}}, pt), ErrorKind::kInvalidInput);
  EXPECT_EQ(kind_of({{"bad\xff", DType::F32, {1}}}, pt), ErrorKind::kInvalidInput);
  EXPECT_EQ(kind_of({{"f4", DType::F4, {}}}, pt), ErrorKind::kInvalidInput);
  EXPECT_EQ(kind_of({{"neg", DType::F32, {-1}}}, pt), ErrorKind::kInvalidInput);
  EXPECT_EQ(kind_of({{"c", DType::C128, {1}}}, pt), ErrorKind::kUnsupported);
  EXPECT_EQ(kind_of({{"a", DType::F32, {1}}}, {{"k", "1"}, {"k", "2"}}),
            ErrorKind::kInvalidInput);
}

// One fixture of expected.json: what save_file was given.
struct Fixture {
  std::string name;
  Metadata metadata;
  std::vector<OutputTensor> tensors;  // save_file's dict order
  std::vector<std::string> hex;       // bytes of each tensor as torch holds them
};

std::vector<Fixture> LoadFixtures() {
  const auto doc = nlohmann::ordered_json::parse(ReadWholeFile(kDataDir + "expected.json"));
  std::vector<Fixture> fixtures;
  for (const auto& [name, spec] : doc.items()) {
    Fixture fixture{name, {}, {}, {}};
    for (const auto& [key, value] : spec["metadata"].items()) {
      fixture.metadata.emplace_back(key, value.get<std::string>());
    }
    for (const auto& t : spec["tensors"]) {
      const auto dtype = DTypeFromTorchName(t["dtype"].get<std::string>());
      EXPECT_TRUE(dtype.has_value()) << t["dtype"];
      fixture.tensors.push_back({t["name"], dtype.value_or(DType::U8), t["shape"].get<Shape>()});
      fixture.hex.push_back(t["hex"]);
    }
    fixtures.push_back(std::move(fixture));
  }
  return fixtures;
}

TEST(SafetensorsReference, ReaderMatchesTorchValues) {
  const std::vector<Fixture> fixtures = LoadFixtures();
  ASSERT_EQ(fixtures.size(), 4u);
  for (const Fixture& fixture : fixtures) {
    SCOPED_TRACE(fixture.name);
    const SafetensorsFile file = OpenSafetensors(kDataDir + fixture.name + ".safetensors");
    EXPECT_EQ(file.metadata, fixture.metadata);
    ASSERT_EQ(file.tensors.size(), fixture.tensors.size());
    std::map<std::string, const SourceTensor*> by_name;
    for (const SourceTensor& t : file.tensors) by_name[t.name] = &t;
    for (size_t i = 0; i < fixture.tensors.size(); ++i) {
      const OutputTensor& want = fixture.tensors[i];
      ASSERT_TRUE(by_name.count(want.name)) << want.name;
      const SourceTensor& got = *by_name[want.name];
      EXPECT_EQ(Name(got.view.dtype), Name(want.dtype)) << want.name;
      EXPECT_EQ(got.view.shape, want.shape) << want.name;
      EXPECT_TRUE(got.view.IsContiguous()) << want.name;
      EXPECT_EQ(TensorBytes(file, got), HexToBytes(fixture.hex[i])) << want.name;
    }
  }
}

TEST(SafetensorsReference, PlanReproducesPythonHeaderBytes) {
  for (const Fixture& fixture : LoadFixtures()) {
    SCOPED_TRACE(fixture.name);
    const std::string path = kDataDir + fixture.name + ".safetensors";
    const std::string bytes = ReadWholeFile(path);
    const FileLayout layout = PlanSafetensors(fixture.tensors, fixture.metadata);
    ASSERT_EQ(layout.blobs.size(), 1u);
    EXPECT_EQ(layout.blobs[0].offset, 0u);
    EXPECT_EQ(layout.blobs[0].bytes, bytes.substr(0, layout.blobs[0].bytes.size()));
    EXPECT_EQ(layout.size, bytes.size());

    const SafetensorsFile file = OpenSafetensors(path);
    for (size_t i = 0; i < fixture.tensors.size(); ++i) {
      const auto it = std::find_if(file.tensors.begin(), file.tensors.end(), [&](const auto& t) {
        return t.name == fixture.tensors[i].name;
      });
      ASSERT_NE(it, file.tensors.end());
      EXPECT_EQ(layout.tensor_offsets[i], it->view.data_offset) << it->name;
    }

    // The layout depends on the tensors, not on the order they are passed in.
    std::vector<OutputTensor> reversed(fixture.tensors.rbegin(), fixture.tensors.rend());
    EXPECT_EQ(PlanSafetensors(reversed, fixture.metadata).blobs[0].bytes, layout.blobs[0].bytes);
  }
}

}  // namespace
}  // namespace mcaconv
