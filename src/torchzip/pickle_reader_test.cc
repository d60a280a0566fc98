#include "torchzip/pickle_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "core/error.h"
#include "torchzip/zip_reader.h"

namespace mcaconv::pickle {
namespace {

using namespace std::string_literals;

const std::string kDir = std::string(MCACONV_TEST_DATA_DIR) + "/torchzip/";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xF];
  }
  return out;
}

// The rendering make_fixtures.py's render() produces for the same Python value.
nlohmann::json Render(const Value& v) {
  using nlohmann::json;
  auto render_all = [](const std::vector<ValuePtr>& items) {
    json out = json::array();
    for (const auto& item : items) out.push_back(Render(*item));
    return out;
  };
  switch (v.kind) {
    case Kind::kNone: return nullptr;
    case Kind::kBool: return v.boolean;
    case Kind::kInt: return v.integer;
    case Kind::kFloat: return {{"float", v.number}};
    case Kind::kString: return v.text;
    case Kind::kBytes: return {{"bytes", Hex(v.text)}};
    case Kind::kTuple: return {{"tuple", render_all(v.items)}};
    case Kind::kList: return {{"list", render_all(v.items)}};
    case Kind::kDict: {
      json entries = json::array();
      for (const auto& [key, value] : v.entries)
        entries.push_back(json::array({Render(*key), Render(*value)}));
      return {{"dict", entries}};
    }
    case Kind::kObject: {
      json items = render_all(v.items);
      std::sort(items.begin(), items.end());
      return {{"object", v.class_name}, {"items", items}};
    }
    case Kind::kTensor: return {{"tensor", v.tensor}};
  }
  return nullptr;
}

// Expects Unpickle(bytes) to fail with `kind`; returns the message.
std::string ExpectError(const std::string& bytes, ErrorKind kind = ErrorKind::kInvalidInput) {
  try {
    Unpickle(bytes);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find("data.pkl offset "), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for " << Hex(bytes);
  return "";
}

class PythonPickle : public testing::TestWithParam<int> {};

// Protocol 2 and protocol 5 streams written by Python's pickle decode to the same tree Python
// rendered from the original value.
TEST_P(PythonPickle, MatchesPythonRendering) {
  std::string name = kDir + "pickle_p" + std::to_string(GetParam());
  UnpickledTorch result = Unpickle(ReadAll(name + ".pkl"));
  EXPECT_TRUE(result.tensors.empty());
  EXPECT_EQ(Render(*result.root), nlohmann::json::parse(ReadAll(name + ".json")));
}

INSTANTIATE_TEST_SUITE_P(Protocols, PythonPickle, testing::Values(2, 5));

TEST(Unpickle, UnknownOpcodeNamesByteAndOffset) {
  std::string message = ExpectError(std::string("\x80\x02K\x01\xff.", 6));
  EXPECT_NE(message.find("0xff"), std::string::npos) << message;
  EXPECT_NE(message.find("offset 4"), std::string::npos) << message;
  // Text-mode opcodes are refused too.
  EXPECT_NE(ExpectError("\x80\x02I01\n.").find("0x49"), std::string::npos);
}

TEST(Unpickle, GlobalsOutsideTheAllowlistAreRejected) {
  const char* globals[] = {"os\nsystem", "posix\nsystem", "nt\nsystem", "subprocess\nPopen",
                           "builtins\neval", "__builtin__\nexec", "sys\nexit",
                           "torch\nload", "collections\ndefaultdict", "numpy\nload"};
  for (const char* global : globals) {
    std::string stream = std::string("\x80\x02") + "c" + global + "\nX\x01\x00\x00\x00x\x85R."s;
    std::string message = ExpectError(stream);
    std::string dotted = global;
    dotted[dotted.find('\n')] = '.';
    EXPECT_NE(message.find("'" + dotted + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("offset 2"), std::string::npos) << message;
  }
  // The same through STACK_GLOBAL (protocol 4).
  std::string stacked("\x80\x04\x8c\x02os\x8c\x06system\x93.", 16);
  EXPECT_NE(ExpectError(stacked).find("'os.system'"), std::string::npos);
}

TEST(Unpickle, AllowedButNotCallableGlobals) {
  ExpectError("\x80\x02" "ctorch\nfloat32\n)R.");
  ExpectError("\x80\x02" "ctorch\nFloatStorage\n)\x81.");
  ExpectError("\x80\x02]b.");  // BUILD on a list
  ExpectError("\x80\x02" "ctorch\ncomplex32\n.", ErrorKind::kUnsupported);
}

TEST(Unpickle, AbsurdDeclaredLengths) {
  std::string unicode("\x80\x02X\x00\x00\x00\x80", 7);
  EXPECT_NE(ExpectError(unicode + "abc.").find("2147483648"), std::string::npos);
  ExpectError(std::string("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff.", 12));
  ExpectError(std::string("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x01\x00N.", 13));
  ExpectError(std::string("\x80\x02\x8b\x00\x00\x00\x10.", 8));  // LONG4 of 256 MiB
  ExpectError("\x80\x02N");                                     // no STOP
  ExpectError("\x80\x02" "cos");                                 // unterminated GLOBAL
}

TEST(Unpickle, NestingDepthIsCapped) {
  auto nested_lists = [](int depth) {
    return "\x80\x02" + std::string(depth, ']') + std::string(depth - 1, 'a') + ".";
  };
  EXPECT_NO_THROW(Unpickle(nested_lists(kMaxDepth)));
  EXPECT_NE(ExpectError(nested_lists(kMaxDepth + 2)).find("nested deeper"), std::string::npos);
  EXPECT_NE(ExpectError(nested_lists(200000)).find("nested deeper"), std::string::npos);
  // Tuples built from MARKs nest the same way.
  std::string tuples = "\x80\x02" + std::string(5000, '(') + "N" + std::string(5000, 't') + ".";
  ExpectError(tuples);
}

TEST(Unpickle, RecursiveAndMalformedStructures) {
  ExpectError(std::string("\x80\x02]q\x00h\x00" "a.", 9));  // a list inside itself
  // L1 goes into L0, then L0 into L1.
  ExpectError(std::string("\x80\x02]q\x00]q\x01" "ah\x01h\x00" "a.", 15));
  ExpectError(std::string("\x80\x02h\x05.", 5));           // memo entry never stored
  ExpectError("\x80\x02" "a.");                             // stack underflow
  ExpectError("\x80\x02N(\x86.");                          // pops across a MARK
  ExpectError("\x80\x02Ns.");                              // SETITEM without a dict
  ExpectError("\x80\x06N.", ErrorKind::kUnsupported);      // unknown protocol
  ExpectError("\x80\x02X\x01\x00\x00\x00sQ."s);             // pid is not a storage tuple
}

TEST(Unpickle, IntegersOfEveryWidth) {
  std::string stream("\x80\x02(J\xfe\xff\xff\xff\x8a\x00\x8a\x02\x00\x80"
                     "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                     "\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\xfft.", 38);
  UnpickledTorch result = Unpickle(stream);
  const auto& items = result.root->items;
  ASSERT_EQ(items.size(), 5u);
  EXPECT_EQ(items[0]->integer, -2);
  EXPECT_EQ(items[1]->integer, 0);
  EXPECT_EQ(items[2]->integer, -32768);
  EXPECT_EQ(items[3]->kind, Kind::kObject);  // 2**64 does not fit: kept inert
  EXPECT_EQ(items[3]->class_name, "builtins.int");
  EXPECT_EQ(items[4]->kind, Kind::kInt);
  EXPECT_EQ(items[4]->integer, -1);
}

TEST(Unpickle, StorageAndTensor) {
  // _rebuild_tensor_v3 over an UntypedStorage of 12 bytes viewed as float8 [3, 2] at offset 4.
  std::string stream =
      "\x80\x02" "ctorch._utils\n_rebuild_tensor_v3\n"
      "((X\x07\x00\x00\x00storagectorch.storage\nUntypedStorage\nX\x01\x00\x00\x00k"
      "X\x03\x00\x00\x00" "cpuK\x0ctQ"
      "K\x04K\x03K\x02\x86K\x02K\x01\x86\x89" "ccollections\nOrderedDict\n)R"
      "ctorch\nfloat8_e5m2\ntR."s;
  UnpickledTorch result = Unpickle(stream);
  ASSERT_EQ(result.storages.size(), 1u);
  EXPECT_EQ(result.storages[0].key, "k");
  EXPECT_FALSE(result.storages[0].typed);
  EXPECT_EQ(result.storages[0].nbytes, 12u);
  ASSERT_EQ(result.tensors.size(), 1u);
  EXPECT_EQ(result.tensors[0].dtype, DType::F8_E5M2);
  EXPECT_EQ(result.tensors[0].storage_offset, 4);
  EXPECT_EQ(result.tensors[0].shape, (Shape{3, 2}));
  EXPECT_EQ(result.tensors[0].strides, (Shape{2, 1}));
  EXPECT_EQ(result.root->kind, Kind::kTensor);
}

// Random byte flips and truncations of a real data.pkl either decode or throw Error; they never
// crash or read out of bounds (run under -DMCACONV_SANITIZE=ON to check the latter).
TEST(Unpickle, MutatedStreamsFailCleanly) {
  std::string archive = ReadAll(kDir + "megatron.pt");
  ZipDirectory dir = ZipDirectory::Parse(reinterpret_cast<const uint8_t*>(archive.data()),
                                         archive.size(), "megatron.pt");
  const ZipEntry* pkl = dir.Find("data.pkl");
  ASSERT_NE(pkl, nullptr);
  const std::string original = archive.substr(pkl->data_offset, pkl->size);
  std::mt19937 rng(1234);
  int failures = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string stream = original;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) stream[rng() % stream.size()] = static_cast<char>(rng());
    if (round % 5 == 0) stream.resize(rng() % stream.size());
    try {
      Unpickle(stream);
    } catch (const Error& e) {
      ++failures;
      EXPECT_NE(std::string(e.what()).find("data.pkl offset "), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(failures, 0);
}

}  // namespace
}  // namespace mcaconv::pickle
