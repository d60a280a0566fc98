#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "torchzip/torch_file.h"
#include "torchzip/zip_reader.h"

namespace mcaconv {
namespace {

using namespace std::string_literals;

const std::string kDir = std::string(MCACONV_TEST_DATA_DIR) + "/torchzip/";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string WriteTemp(const std::string& name, const std::string& bytes) {
  std::string path = testing::TempDir() + "tzr_" + name + ".pt";
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
  return path;
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 0xF];
  }
  return out;
}

// The tensor's elements in C order, read one by one through its strides.
std::string ElementsHex(const MappedFile& file, const TensorView& view) {
  std::string out;
  int64_t count = view.numel();
  uint64_t element_size = ElementSize(view.dtype);
  std::vector<int64_t> index(view.shape.size(), 0);
  for (int64_t n = 0; n < count; ++n) {
    uint64_t offset = view.data_offset;
    for (size_t d = 0; d < index.size(); ++d) offset += index[d] * view.strides[d] * element_size;
    EXPECT_LE(offset + element_size, file.size());
    out += Hex(file.data() + offset, element_size);
    for (size_t d = index.size(); d-- > 0;) {
      if (++index[d] < view.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

// Expects OpenTorchFile(path) to throw `kind` with the path and an offset in the message.
std::string ExpectError(const std::string& path, ErrorKind kind = ErrorKind::kInvalidInput) {
  try {
    OpenTorchFile(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

class TorchFixture : public testing::TestWithParam<std::string> {};

// Every tensor torch.save wrote is found under its path name, with its dtype and shape, and its
// elements read through the view equal torch's own contiguous bytes.
TEST_P(TorchFixture, TensorsMatchTorch) {
  TorchFile file = OpenTorchFile(kDir + GetParam() + ".pt");
  auto expected = nlohmann::json::parse(ReadAll(kDir + GetParam() + ".json"));
  EXPECT_EQ(file.archive_prefix, expected["prefix"]);
  ASSERT_EQ(file.tensors.size(), expected["tensors"].size());
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const SourceTensor& tensor = file.tensors[i];
    const auto& want = expected["tensors"][i];
    SCOPED_TRACE(tensor.name);
    EXPECT_EQ(tensor.name, want["name"]);
    EXPECT_EQ(tensor.file, 0);
    EXPECT_EQ(std::string(Name(tensor.view.dtype)), want["dtype"]);
    EXPECT_EQ(tensor.view.shape, want["shape"].get<Shape>());
    EXPECT_EQ(ElementsHex(file.file, tensor.view), want["hex"]);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TorchFixture,
                         testing::Values("dtypes", "views", "module", "multi_model", "megatron",
                                         "fileobj", "proto4", "rezipped", "parameters"));

TEST(TorchReader, ViewsKeepStridesAndShareStorages) {
  TorchFile file = OpenTorchFile(kDir + "views.pt");
  std::map<std::string, TensorView> views;
  for (const auto& t : file.tensors) views[t.name] = t.view;
  EXPECT_EQ(views["transposed"].strides, (Shape{1, 6}));
  EXPECT_EQ(views["transposed"].data_offset, views["base"].data_offset);
  EXPECT_EQ(views["slice"].data_offset, views["base"].data_offset + 2 * 4);
  EXPECT_EQ(views["column"].strides, (Shape{6}));
  EXPECT_EQ(views["expanded"].strides, (Shape{0, 1}));
  EXPECT_TRUE(views["scalar"].shape.empty());
  EXPECT_EQ(views.count("shared_b"), 0u);  // the same tensor object, named once
  const pickle::Value* shared_b = file.root->Find("shared_b");
  ASSERT_NE(shared_b, nullptr);
  EXPECT_EQ(shared_b, file.root->Find("shared_a"));
}

TEST(TorchReader, ModuleStateDictWithExtraState) {
  TorchFile file = OpenTorchFile(kDir + "module.pt");
  const pickle::Value* bytes_io = file.root->Find("2._extra_state");
  ASSERT_NE(bytes_io, nullptr);
  EXPECT_EQ(bytes_io->kind, pickle::Kind::kObject);
  EXPECT_EQ(bytes_io->class_name, "_io.BytesIO");
  ASSERT_TRUE(bytes_io->state && !bytes_io->state->items.empty());
  EXPECT_EQ(bytes_io->state->items[0]->text.substr(0, 4), "PK\x03\x04");  // a nested torch.save
  const pickle::Value* none = file.root->Find("3._extra_state");
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(none->kind, pickle::Kind::kNone);
}

TEST(TorchReader, MegatronValues) {
  TorchFile file = OpenTorchFile(kDir + "megatron.pt");
  auto expected = nlohmann::json::parse(ReadAll(kDir + "megatron.json"));
  EXPECT_EQ(file.root->Find("iteration")->integer, expected["iteration"].get<int64_t>());
  EXPECT_EQ(file.root->Find("checkpoint_version")->number, expected["checkpoint_version"]);
  const pickle::Value* args = file.root->Find("args");
  ASSERT_EQ(args->class_name, "argparse.Namespace");
  EXPECT_EQ(args->state->Find("seq_length")->integer, expected["args_seq_length"]);
  EXPECT_EQ(args->state->Find("name")->text, expected["args_name"]);
  EXPECT_EQ(args->state->Find("params_dtype")->class_name, "torch.bfloat16");
  EXPECT_EQ(args->state->Find("model_type")->class_name, "megatron.core.enums.ModelType");
  EXPECT_EQ(args->state->Find("exit_signal")->class_name, "signal.Signals");
  EXPECT_EQ(args->state->Find("fp8_recipe")->state->Find("margin")->integer, 1);

  // np.random.get_state(): ('MT19937', ndarray, pos, has_gauss, cached); the array's BUILD state
  // ends with its raw bytes.
  const pickle::Value* rng = file.root->Find("rng_state")->items.at(0).get();
  const pickle::Value* np_state = rng->Find("np_rng_state");
  ASSERT_EQ(np_state->kind, pickle::Kind::kTuple);
  const pickle::Value& array = *np_state->items.at(1);
  EXPECT_EQ(array.class_name, "numpy._core.multiarray._reconstruct");
  const std::string& raw = array.state->items.at(4)->text;
  EXPECT_EQ(Hex(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()),
            expected["np_rng_keys"]);
  EXPECT_EQ(rng->Find("random_rng_state")->items.at(1)->items.size(), 625u);
}

TEST(TorchReader, DeflatedRecordsAreUnsupported) {
  std::string message = ExpectError(kDir + "deflated.pt", ErrorKind::kUnsupported);
  EXPECT_NE(message.find("bar/"), std::string::npos) << message;
}

TEST(TorchReader, ForbiddenGlobalNamesGlobalAndOffset) {
  std::string message = ExpectError(kDir + "evil_os_system.pt");
  EXPECT_NE(message.find("'os.system'"), std::string::npos) << message;
  EXPECT_NE(message.find("data.pkl offset 2"), std::string::npos) << message;
}

// ---- corrupt variants of a good fixture ----

class CorruptViews : public testing::Test {
 protected:
  void SetUp() override {
    bytes_ = ReadAll(kDir + "views.pt");
    dir_ = ZipDirectory::Parse(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size(),
                               "views.pt");
  }
  std::string bytes_;
  ZipDirectory dir_;
};

TEST_F(CorruptViews, Truncations) {
  std::vector<std::pair<std::string, uint64_t>> cuts = {
      {"local_header", 12},
      {"data", dir_.Find("data/0")->data_offset + 5},
      {"central_directory", dir_.directory_offset() + 20},
      {"end_record", bytes_.size() - 7}};
  for (const auto& [where, cut] : cuts) {
    SCOPED_TRACE(where);
    ExpectError(WriteTemp("cut_" + where, bytes_.substr(0, cut)));
  }
}

TEST_F(CorruptViews, BrokenCentralDirectory) {
  std::string bad_sig = bytes_;
  bad_sig[dir_.directory_offset()] = 'Z';
  ExpectError(WriteTemp("bad_cd_sig", bad_sig));
  std::string bad_count = bytes_;
  uint64_t zip64_end = bytes_.size() - 22 - 20 - 56;
  uint64_t count = dir_.entries().size() + 1;
  std::memcpy(bad_count.data() + zip64_end + 24, &count, 8);
  std::memcpy(bad_count.data() + zip64_end + 32, &count, 8);
  ExpectError(WriteTemp("bad_count", bad_count));
}

TEST_F(CorruptViews, MissingDataRecord) {
  std::string renamed = bytes_;
  const ZipEntry* entry = dir_.Find("data/0");
  renamed[entry->directory_offset + 46 + entry->name.size() - 1] = 'Z';  // views/data/0 -> data/Z
  std::string message = ExpectError(WriteTemp("missing_record", renamed));
  EXPECT_NE(message.find("views/data/0"), std::string::npos) << message;
}

TEST_F(CorruptViews, UnknownOpcode) {
  std::string patched = bytes_;
  const ZipEntry* pkl = dir_.Find("data.pkl");
  ASSERT_EQ(patched[pkl->data_offset + pkl->size - 1], '.');
  patched[pkl->data_offset + pkl->size - 1] = '\xfe';
  std::string message = ExpectError(WriteTemp("unknown_opcode", patched));
  EXPECT_NE(message.find("0xfe"), std::string::npos) << message;
  EXPECT_NE(message.find("data.pkl offset " + std::to_string(pkl->size - 1)), std::string::npos)
      << message;
}

// ---- hand-made archives (a minimal STORED zip, as Python's zipfile writes it) ----

void Le(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

std::string MakeZip(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out, cd;
  for (const auto& [name, data] : records) {
    uint64_t offset = out.size();
    Le(out, 0x04034b50, 4);
    Le(out, 20, 2), Le(out, 0, 2), Le(out, 0, 2), Le(out, 0, 4), Le(out, 0, 4);
    Le(out, data.size(), 4), Le(out, data.size(), 4), Le(out, name.size(), 2), Le(out, 0, 2);
    out += name + data;
    Le(cd, 0x02014b50, 4);
    Le(cd, 20, 2), Le(cd, 20, 2), Le(cd, 0, 2), Le(cd, 0, 2), Le(cd, 0, 4), Le(cd, 0, 4);
    Le(cd, data.size(), 4), Le(cd, data.size(), 4), Le(cd, name.size(), 2), Le(cd, 0, 2);
    Le(cd, 0, 2), Le(cd, 0, 2), Le(cd, 0, 2), Le(cd, 0, 4), Le(cd, offset, 4);
    cd += name;
  }
  uint64_t cd_offset = out.size();
  out += cd;
  Le(out, 0x06054b50, 4);
  Le(out, 0, 2), Le(out, 0, 2), Le(out, records.size(), 2), Le(out, records.size(), 2);
  Le(out, cd.size(), 4), Le(out, cd_offset, 4), Le(out, 0, 2);
  return out;
}

// {'w': _rebuild_tensor_v2(FloatStorage key '0' of `numel`, offset, (size,), (1,), ...)}.
std::string TensorPickle(int numel, int offset, int size) {
  std::string s = "\x80\x02}X\x01\x00\x00\x00w"s;
  s += "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"s;
  s += "ctorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK"s;
  s += static_cast<char>(numel);
  s += "tQK";
  s += static_cast<char>(offset);
  s += "K";
  s += static_cast<char>(size);
  s += "\x85K\x01\x85\x89" "ccollections\nOrderedDict\n)RtRs.";
  return s;
}

std::string TensorArchive(int numel, int offset, int size, int record_bytes) {
  return MakeZip({{"t/data.pkl", TensorPickle(numel, offset, size)},
                  {"t/data/0", std::string(record_bytes, '\x01')},
                  {"t/version", "3\n"}});
}

TEST(TorchReaderHandMade, ClassicEndRecordAndView) {
  TorchFile file = OpenTorchFile(WriteTemp("hand_ok", TensorArchive(4, 1, 3, 16)));
  ASSERT_EQ(file.tensors.size(), 1u);
  EXPECT_EQ(file.tensors[0].name, "w");
  EXPECT_EQ(file.archive_prefix, "t");
  EXPECT_EQ(file.tensors[0].view.shape, (Shape{3}));
  EXPECT_EQ(ElementsHex(file.file, file.tensors[0].view), "010101010101010101010101");
}

TEST(TorchReaderHandMade, ViewPastStorageEnd) {
  std::string message = ExpectError(WriteTemp("view_past", TensorArchive(4, 2, 3, 16)));
  EXPECT_NE(message.find("tensor 'w'"), std::string::npos) << message;
  EXPECT_NE(message.find("element 4"), std::string::npos) << message;
}

TEST(TorchReaderHandMade, RecordShorterThanStorage) {
  std::string message = ExpectError(WriteTemp("short_record", TensorArchive(4, 0, 4, 15)));
  EXPECT_NE(message.find("t/data/0"), std::string::npos) << message;
}

TEST(TorchReaderHandMade, EmptyTensorAtStorageEndIsFine) {
  TorchFile file = OpenTorchFile(WriteTemp("empty_end", TensorArchive(4, 4, 0, 16)));
  EXPECT_EQ(file.tensors.at(0).view.numel(), 0);
}

TEST(TorchReaderHandMade, AbsurdPickles) {
  std::string deep = "\x80\x02" + std::string(100000, ']') + std::string(99999, 'a') + ".";
  std::string huge_string("\x80\x02X\x00\x00\x00\x80.", 8);
  for (const auto& [name, pkl] : std::vector<std::pair<std::string, std::string>>{
           {"deep", deep}, {"huge_string", huge_string}}) {
    std::string message =
        ExpectError(WriteTemp(name, MakeZip({{"t/data.pkl", pkl}, {"t/version", "3\n"}})));
    EXPECT_NE(message.find("data.pkl offset"), std::string::npos) << message;
  }
}

TEST(TorchReaderHandMade, ArchiveLevelChecks) {
  std::string pkl = TensorPickle(4, 0, 4);
  std::string data(16, '\0');
  ExpectError(WriteTemp("no_version", MakeZip({{"t/data.pkl", pkl}, {"t/data/0", data}})));
  ExpectError(WriteTemp("no_pickle", MakeZip({{"t/version", "3\n"}})));
  ExpectError(WriteTemp("missing_storage", MakeZip({{"t/data.pkl", pkl}, {"t/version", "3\n"}})));
  ExpectError(WriteTemp("future_version", MakeZip({{"t/data.pkl", pkl}, {"t/data/0", data},
                                                   {"t/version", "11\n"}})),
              ErrorKind::kUnsupported);
  ExpectError(WriteTemp("big_endian", MakeZip({{"t/data.pkl", pkl}, {"t/data/0", data},
                                               {"t/byteorder", "big"}, {"t/version", "3\n"}})),
              ErrorKind::kUnsupported);
  ExpectError(WriteTemp("other_prefix", MakeZip({{"t/data.pkl", pkl}, {"u/data/0", data},
                                                 {"t/version", "3\n"}})));
  TorchFile dotted = OpenTorchFile(WriteTemp(
      "data_version", MakeZip({{"t/data/0", data}, {"t/.data/version", "3\n"},
                               {"t/byteorder", "little"}, {"t/data.pkl", pkl}})));
  EXPECT_EQ(dotted.tensors.size(), 1u);
}

}  // namespace
}  // namespace mcaconv
