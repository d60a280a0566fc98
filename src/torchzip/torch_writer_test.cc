// Tests of PlanTorchFile: planned archives are materialised here (blobs, patterned tensor data,
// CRC patches), checked structurally by an independent zip walker, and loaded by real torch
// (weights_only=True, with and without mmap) and Python's zipfile when python3 has torch.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "torchzip/torch_file.h"

namespace mcaconv {
namespace {

using pickle::MakeBool;
using pickle::MakeDict;
using pickle::MakeFloat;
using pickle::MakeInt;
using pickle::MakeList;
using pickle::MakeNone;
using pickle::MakeString;
using pickle::MakeTensor;
using pickle::MakeTuple;
using pickle::ValuePtr;
using Entries = std::vector<std::pair<ValuePtr, ValuePtr>>;

// Byte j of tensor i; the Python checker recomputes the same pattern.
uint8_t PatternByte(size_t tensor, uint64_t j) {
  return static_cast<uint8_t>((j * 31 + tensor * 7) % 251);
}

uint32_t Crc(const char* data, uint64_t size) {
  return static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(data), size));
}

void PutLe32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

// The whole file in memory: blobs, tensor i filled with PatternByte(i, .), CRCs patched.
std::string Materialize(const FileLayout& layout, const std::vector<OutputTensor>& tensors) {
  std::string file(layout.size, '\0');
  for (const Blob& blob : layout.blobs) file.replace(blob.offset, blob.bytes.size(), blob.bytes);
  for (size_t i = 0; i < tensors.size(); ++i)
    for (uint64_t j = 0; j < tensors[i].nbytes(); ++j)
      file[layout.tensor_offsets[i] + j] = static_cast<char>(PatternByte(i, j));
  for (const CrcPatch& patch : layout.crc_patches) {
    const uint32_t crc = Crc(file.data() + patch.data_offset, patch.data_size);
    for (uint64_t at : patch.patch_offsets) PutLe32(file.data() + at, crc);
  }
  return file;
}

// Reads [offset, offset + n) from the blobs alone, for plans too large to materialise.
std::string ReadBlobs(const FileLayout& layout, uint64_t offset, uint64_t n) {
  for (const Blob& blob : layout.blobs)
    if (offset >= blob.offset && offset + n <= blob.offset + blob.bytes.size())
      return blob.bytes.substr(offset - blob.offset, n);
  ADD_FAILURE() << "no blob covers [" << offset << ", " << offset + n << ")";
  return std::string(n, '\0');
}

// Blobs and tensor slots must tile the file exactly: no gap, no overlap.
void ExpectBlobsCoverNonTensorBytes(const FileLayout& layout,
                                    const std::vector<OutputTensor>& tensors) {
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const Blob& blob : layout.blobs) spans.push_back({blob.offset, blob.bytes.size()});
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].nbytes() > 0) spans.push_back({layout.tensor_offsets[i], tensors[i].nbytes()});
  std::sort(spans.begin(), spans.end());
  uint64_t pos = 0;
  for (const auto& [offset, size] : spans) {
    EXPECT_EQ(offset, pos) << "gap or overlap before offset " << offset;
    pos = offset + size;
  }
  EXPECT_EQ(pos, layout.size);
}

// ---------------------------------------------------------------------------------------------
// An independent walker over the zip structure, written from formats.md 1.2 alone.

struct ZipRecordInfo {
  std::string name;
  uint64_t header_offset = 0;
  uint64_t data_offset = 0;
  uint64_t size = 0;
  uint32_t crc = 0;
  bool local_zip64_sizes = false;
  bool local_zip64_offset = false;
  uint64_t descriptor_size = 0;
};

uint64_t Le(const std::string& s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s.at(at + i));
  return v;
}

using ReadFn = std::function<std::string(uint64_t offset, uint64_t n)>;

// Parses one local header and its descriptor against the central entry `r`; returns the end.
uint64_t CheckLocalRecord(const ReadFn& read, ZipRecordInfo& r, uint16_t flags) {
  const std::string lh = read(r.header_offset, 30);
  EXPECT_EQ(Le(lh, 0, 4), 0x04034b50u) << r.name;
  EXPECT_EQ(Le(lh, 4, 2), 0u) << r.name;  // version needed
  EXPECT_EQ(Le(lh, 6, 2), flags) << r.name;
  for (int at = 8; at < 26; at += 2) EXPECT_EQ(Le(lh, at, 2), 0u) << r.name << " field " << at;
  const uint64_t name_len = Le(lh, 26, 2), extra_len = Le(lh, 28, 2);
  EXPECT_EQ(read(r.header_offset + 30, name_len), r.name);
  const std::string extra = read(r.header_offset + 30 + name_len, extra_len);
  size_t at = 0;
  if (Le(extra, 0, 2) == 1) {
    r.local_zip64_sizes = r.size >= 0xFFFFFFFF;
    r.local_zip64_offset = r.header_offset >= 0xFFFFFFFF;
    const uint64_t len = Le(extra, 2, 2);
    EXPECT_EQ(len, (r.local_zip64_sizes ? 16u : 0u) + (r.local_zip64_offset ? 8u : 0u)) << r.name;
    size_t f = 4;
    if (r.local_zip64_sizes) {
      EXPECT_EQ(Le(extra, f, 8), r.size);
      EXPECT_EQ(Le(extra, f + 8, 8), r.size);
      f += 16;
    }
    if (r.local_zip64_offset) {
      EXPECT_EQ(Le(extra, f, 8), r.header_offset) << r.name;
    }
    at = 4 + len;
  } else {
    EXPECT_LT(r.size, 0xFFFFFFFFu) << r.name;
    EXPECT_LT(r.header_offset, 0xFFFFFFFFu) << r.name;
  }
  EXPECT_EQ(extra.substr(at, 2), "FB") << r.name;
  const uint64_t pad = Le(extra, at + 2, 2);
  EXPECT_EQ(at + 4 + pad, extra.size()) << r.name;
  EXPECT_EQ(extra.substr(at + 4), std::string(pad, 'Z')) << r.name;
  r.data_offset = r.header_offset + 30 + name_len + extra_len;
  EXPECT_EQ(r.data_offset % 64, 0u) << r.name;
  if (r.size == 0) return r.data_offset;

  const bool wide = r.local_zip64_sizes || r.local_zip64_offset;
  r.descriptor_size = wide ? 24 : 16;
  const std::string dd = read(r.data_offset + r.size, r.descriptor_size);
  EXPECT_EQ(Le(dd, 0, 4), 0x08074b50u) << r.name;
  EXPECT_EQ(Le(dd, 4, 4), r.crc) << r.name;
  EXPECT_EQ(Le(dd, 8, wide ? 8 : 4), r.size) << r.name;
  EXPECT_EQ(Le(dd, wide ? 16 : 12, wide ? 8 : 4), r.size) << r.name;
  return r.data_offset + r.size + r.descriptor_size;
}

// Walks end records, central directory and local records; checks the PyTorch/miniz rules and
// that records tile the file from offset 0 to the central directory.
void WalkZip(const ReadFn& read, uint64_t file_size, std::vector<ZipRecordInfo>* records) {
  ASSERT_GE(file_size, 98u);
  const std::string eocd = read(file_size - 22, 22);
  ASSERT_EQ(Le(eocd, 0, 4), 0x06054b50u);
  const std::string loc = read(file_size - 42, 20);
  ASSERT_EQ(Le(loc, 0, 4), 0x07064b50u);
  EXPECT_EQ(Le(loc, 4, 4), 0u);
  EXPECT_EQ(Le(loc, 16, 4), 1u);
  const uint64_t z64_offset = Le(loc, 8, 8);
  ASSERT_EQ(z64_offset, file_size - 42 - 56);
  const std::string z64 = read(z64_offset, 56);
  ASSERT_EQ(Le(z64, 0, 4), 0x06064b50u);
  EXPECT_EQ(Le(z64, 4, 8), 44u);
  EXPECT_EQ(Le(z64, 12, 2), 0x031Eu);
  EXPECT_EQ(Le(z64, 14, 2), 0x2Du);
  EXPECT_EQ(Le(z64, 16, 8), 0u);  // both disk numbers
  const uint64_t count = Le(z64, 24, 8), cd_size = Le(z64, 40, 8), cd_offset = Le(z64, 48, 8);
  EXPECT_EQ(Le(z64, 32, 8), count);
  EXPECT_EQ(cd_offset + cd_size, z64_offset);
  EXPECT_EQ(Le(eocd, 4, 4), 0u);
  EXPECT_EQ(Le(eocd, 8, 2), std::min<uint64_t>(count, 0xFFFF));
  EXPECT_EQ(Le(eocd, 10, 2), std::min<uint64_t>(count, 0xFFFF));
  EXPECT_EQ(Le(eocd, 12, 4), std::min<uint64_t>(cd_size, 0xFFFFFFFF));
  EXPECT_EQ(Le(eocd, 16, 4), std::min<uint64_t>(cd_offset, 0xFFFFFFFF));
  EXPECT_EQ(Le(eocd, 20, 2), 0u);

  const std::string cd = read(cd_offset, cd_size);
  uint64_t at = 0, expected_header = 0;
  for (uint64_t i = 0; i < count; ++i) {
    ASSERT_LE(at + 46, cd.size());
    ASSERT_EQ(Le(cd, at, 4), 0x02014b50u);
    ZipRecordInfo r;
    const auto flags = static_cast<uint16_t>(Le(cd, at + 8, 2));
    EXPECT_EQ(Le(cd, at + 4, 4), 0u);  // versions
    EXPECT_EQ(Le(cd, at + 10, 6), 0u);  // method, time, date
    r.crc = static_cast<uint32_t>(Le(cd, at + 16, 4));
    const uint64_t csize = Le(cd, at + 20, 4), usize = Le(cd, at + 24, 4);
    EXPECT_EQ(csize, usize);
    const uint64_t name_len = Le(cd, at + 28, 2), extra_len = Le(cd, at + 30, 2);
    EXPECT_EQ(Le(cd, at + 32, 6), 0u);  // comment length, disk, internal attributes
    EXPECT_EQ(Le(cd, at + 38, 4), 0u);  // external attributes
    r.header_offset = Le(cd, at + 42, 4);
    r.name = cd.substr(at + 46, name_len);
    r.size = usize;
    // Only a zip64 field, holding exactly the saturated values; no 'FB' padding here.
    const std::string extra = cd.substr(at + 46 + name_len, extra_len);
    const size_t expected_len =
        (usize == 0xFFFFFFFF ? 16 : 0) + (r.header_offset == 0xFFFFFFFF ? 8 : 0);
    EXPECT_EQ(extra.size(), expected_len ? expected_len + 4 : 0) << r.name;
    if (expected_len) {
      EXPECT_EQ(Le(extra, 0, 2), 1u);
      EXPECT_EQ(Le(extra, 2, 2), expected_len);
      size_t f = 4;
      if (usize == 0xFFFFFFFF) r.size = Le(extra, f, 8), f += 16;
      if (r.header_offset == 0xFFFFFFFF) r.header_offset = Le(extra, f, 8);
    }
    EXPECT_EQ(flags, r.size > 0 ? 0x0808 : 0x0800) << r.name;
    EXPECT_EQ(r.header_offset, expected_header) << r.name;
    expected_header = CheckLocalRecord(read, r, flags);
    records->push_back(r);
    at += 46 + name_len + extra_len;
  }
  EXPECT_EQ(at, cd.size());
  EXPECT_EQ(expected_header, cd_offset);
}

// ---------------------------------------------------------------------------------------------
// Python side: loads with torch and compares against a JSON description of the expected tree.

nlohmann::json Describe(const pickle::Value& v) {
  using pickle::Kind;
  switch (v.kind) {
    case Kind::kNone: return {{"k", "none"}};
    case Kind::kBool: return {{"k", "bool"}, {"v", v.boolean}};
    case Kind::kInt: return {{"k", "int"}, {"v", std::to_string(v.integer)}};
    case Kind::kFloat: {
      uint64_t bits;
      std::memcpy(&bits, &v.number, 8);
      char hex[17];
      std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(bits));
      return {{"k", "float"}, {"hex", hex}};
    }
    case Kind::kString: return {{"k", "str"}, {"v", v.text}};
    case Kind::kTensor: return {{"k", "tensor"}, {"index", v.tensor}};
    case Kind::kDict: {
      nlohmann::json items = nlohmann::json::array();
      for (const auto& [key, value] : v.entries)
        items.push_back({Describe(*key), Describe(*value)});
      return {{"k", "dict"}, {"items", items}};
    }
    default: {
      nlohmann::json items = nlohmann::json::array();
      for (const auto& item : v.items) items.push_back(Describe(*item));
      return {{"k", v.kind == Kind::kList ? "list" : "tuple"}, {"items", items}};
    }
  }
}

// Checker shared with the pytest module: loads an archive with torch and zipfile and compares it
// with a JSON manifest (Describe() of the tree plus the tensor list).
const std::string kCheckScript =
    std::string(MCACONV_TEST_DATA_DIR) + "/../python/test_torch_writer_interop.py";

class TorchWriterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/mcaconv_tzw_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    has_torch_ = std::system("python3 -c 'import torch' >/dev/null 2>&1") == 0;
  }
  static void TearDownTestSuite() {
    if (!std::getenv("MCACONV_KEEP_TEST_FILES"))
      std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  // Writes the manifest for `path` and runs the checker; returns its output on failure.
  static void RunPython(const std::string& path, const pickle::Value& root,
                        const std::vector<OutputTensor>& tensors, nlohmann::json options) {
    nlohmann::json manifest = std::move(options);
    manifest["root"] = Describe(root);
    manifest["tensors"] = nlohmann::json::array();
    for (size_t i = 0; i < tensors.size(); ++i) {
      manifest["tensors"].push_back({{"dtype", std::string(Name(tensors[i].dtype))},
                                     {"shape", tensors[i].shape},
                                     {"seed", i},
                                     {"nbytes", tensors[i].nbytes()}});
    }
    std::ofstream(path + ".json") << manifest.dump();
    const std::string log = path + ".log";
    const std::string cmd = "python3 '" + kCheckScript + "' '" + path + "' '" + path +
                            ".json' >'" + log + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream in(log);
    const std::string output((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(rc, 0) << output;
  }

  static void WriteFile(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  }

  static inline std::string dir_;
  static inline bool has_torch_ = false;
};

// A checkpoint-like tree holding every dtype, nested models, None, scalars and containers.
struct Fixture {
  std::vector<OutputTensor> tensors;
  ValuePtr root;
};

Fixture AllKindsFixture() {
  Fixture f;
  const Shape shapes[] = {{3, 5}, {7}, {2, 3, 4, 2}, {1, 1, 9}};
  for (int d = 0; d <= static_cast<int>(DType::F4); ++d) {
    const auto dtype = static_cast<DType>(d);
    f.tensors.push_back({"w_" + std::string(Name(dtype)), dtype, shapes[d % 4]});
  }
  f.tensors.push_back({"scalar_f32", DType::F32, {}});
  f.tensors.push_back({"scalar_bf16", DType::BF16, {}});
  f.tensors.push_back({"empty_f16", DType::F16, {0, 3}});
  f.tensors.push_back({"empty_u16", DType::U16, {0}});
  f.tensors.push_back({"shared_i64", DType::I64, {5}});
  const int shared = static_cast<int>(f.tensors.size()) - 1;

  Entries model0, model1;
  for (int i = 0; i < shared; ++i) {
    Entries& model = i % 2 ? model1 : model0;
    model.push_back({MakeString("layers." + std::to_string(i) + ".weight"), MakeTensor(i)});
    if (i % 5 == 0)
      model.push_back({MakeString("layers." + std::to_string(i) + "._extra_state"), MakeNone()});
  }
  std::vector<ValuePtr> many;
  for (int i = 0; i < 1001; ++i) many.push_back(MakeString("s" + std::to_string(i)));
  Entries big_dict;
  for (int i = 0; i < 2001; ++i) big_dict.push_back({MakeInt(i * 1000003LL), MakeInt(-i)});
  const int64_t ints[] = {0, 255, 256, 65535, 65536, -1, INT32_MIN, INT32_MAX,
                          int64_t{INT32_MAX} + 1, int64_t{INT32_MIN} - 1, -128, -129,
                          INT64_MIN, INT64_MAX, int64_t{1} << 40};
  std::vector<ValuePtr> int_values;
  for (int64_t v : ints) int_values.push_back(MakeInt(v));
  const double floats[] = {2.5, -0.0, 1e300, -3.25e-310, HUGE_VAL, -HUGE_VAL, std::nan("")};
  std::vector<ValuePtr> float_values;
  for (double v : floats) float_values.push_back(MakeFloat(v));

  f.root = MakeDict({
      {MakeString("model0"), MakeDict(model0)},
      {MakeString("model1"), MakeDict(model1)},
      {MakeString("iteration"), MakeInt(1234)},
      {MakeString("checkpoint_version"), MakeFloat(3.0)},
      {MakeString("flags"), MakeList({MakeBool(true), MakeBool(false), MakeNone()})},
      {MakeString("ints"), MakeList(int_values)},
      {MakeString("floats"), MakeTuple(float_values)},
      {MakeString("tuples"),
       MakeList({MakeTuple({}), MakeTuple({MakeInt(1)}), MakeTuple({MakeInt(1), MakeString("b")}),
                 MakeTuple({MakeInt(1), MakeInt(2), MakeInt(3)}),
                 MakeTuple({MakeInt(1), MakeInt(2), MakeInt(3), MakeInt(4)})})},
      {MakeString("text"), MakeString("h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x99\x82")},
      {MakeString("many"), MakeList(many)},
      {MakeString("empty"), MakeDict({{MakeString("l"), MakeList({})},
                                      {MakeString("d"), MakeDict({})}})},
      {MakeString("state"), MakeDict(big_dict)},
      {MakeString("single"), MakeDict({{MakeInt(7), MakeList({MakeString("x")})}})},
      // After the 1001 memoised strings, so its second reference needs LONG_BINGET.
      {MakeString("shared"), MakeList({MakeTensor(shared), MakeTensor(shared)})},
  });
  return f;
}

TEST_F(TorchWriterTest, StructureOfMaterializedFile) {
  const Fixture f = AllKindsFixture();
  const FileLayout layout = PlanTorchFile("ckpt", *f.root, f.tensors);
  ExpectBlobsCoverNonTensorBytes(layout, f.tensors);
  const std::string file = Materialize(layout, f.tensors);
  ASSERT_EQ(file.size(), layout.size);

  std::vector<ZipRecordInfo> records;
  ASSERT_NO_FATAL_FAILURE(WalkZip([&](uint64_t off, uint64_t n) { return file.substr(off, n); },
                                  file.size(), &records));
  // 2.1-2.6 record order; keys in first-encounter order, which is model0's tensors first.
  ASSERT_EQ(records.size(), f.tensors.size() + 3);
  EXPECT_EQ(records[0].name, "ckpt/data.pkl");
  EXPECT_EQ(records[1].name, "ckpt/byteorder");
  EXPECT_EQ(records.back().name, "ckpt/version");
  EXPECT_EQ(file.substr(records[1].data_offset, records[1].size), "little");
  EXPECT_EQ(file.substr(records.back().data_offset, records.back().size), "3\n");
  std::vector<int> expected_order;
  for (size_t i = 0; i + 1 < f.tensors.size(); i += 2) expected_order.push_back(i);
  for (size_t i = 1; i + 1 < f.tensors.size(); i += 2) expected_order.push_back(i);
  expected_order.push_back(f.tensors.size() - 1);
  for (size_t k = 0; k < expected_order.size(); ++k) {
    const ZipRecordInfo& r = records[2 + k];
    EXPECT_EQ(r.name, "ckpt/data/" + std::to_string(k));
    EXPECT_EQ(r.data_offset, layout.tensor_offsets[expected_order[k]]) << r.name;
    EXPECT_EQ(r.size, f.tensors[expected_order[k]].nbytes()) << r.name;
  }
  for (const ZipRecordInfo& r : records)
    EXPECT_EQ(r.crc, Crc(file.data() + r.data_offset, r.size)) << r.name;
  // Every non-empty tensor record has its CRC patched in the descriptor and the central entry.
  size_t non_empty = 0;
  for (const OutputTensor& t : f.tensors) non_empty += t.nbytes() > 0;
  EXPECT_EQ(layout.crc_patches.size(), non_empty);
  for (const CrcPatch& p : layout.crc_patches) EXPECT_EQ(p.patch_offsets.size(), 2u);
}

TEST_F(TorchWriterTest, LoadsInTorchWithAndWithoutMmap) {
  if (!has_torch_) GTEST_SKIP() << "python3 cannot import torch";
  const Fixture f = AllKindsFixture();
  const FileLayout layout = PlanTorchFile("all_kinds", *f.root, f.tensors);
  const std::string path = dir_ + "/all_kinds.pt";
  WriteFile(path, Materialize(layout, f.tensors));
  RunPython(path, *f.root, f.tensors, {{"prefix", "all_kinds"}});
}

// torch 1.13 knows only _rebuild_tensor_v2 and legacy storages; a file of legacy dtypes must not
// name anything newer. Checked by decoding the pickle with Python's pickletools.
TEST_F(TorchWriterTest, LegacyDtypesUseOnlyRebuildV2) {
  std::vector<OutputTensor> tensors;
  Entries entries;
  for (int d = 0; d <= static_cast<int>(DType::F4); ++d) {
    const auto dtype = static_cast<DType>(d);
    if (Info(dtype).storage_class.empty()) continue;
    entries.push_back({MakeString(std::string(Name(dtype))), MakeTensor(tensors.size())});
    tensors.push_back({std::string(Name(dtype)), dtype, {2, 2}});
  }
  const ValuePtr root = MakeDict(entries);
  const FileLayout layout = PlanTorchFile("legacy", *root, tensors);
  const std::string file = Materialize(layout, tensors);
  EXPECT_EQ(file.find("_rebuild_tensor_v3"), std::string::npos);
  EXPECT_EQ(file.find("UntypedStorage"), std::string::npos);
  EXPECT_NE(file.find("_rebuild_tensor_v2"), std::string::npos);
  if (!has_torch_) GTEST_SKIP() << "python3 cannot import torch";
  const std::string path = dir_ + "/legacy.pt";
  WriteFile(path, file);
  RunPython(path, *root, tensors, {{"prefix", "legacy"}, {"legacy_only", true}});
}

TEST_F(TorchWriterTest, PlanIsDeterministic) {
  const Fixture f = AllKindsFixture();
  const FileLayout a = PlanTorchFile("ckpt", *f.root, f.tensors);
  const FileLayout b = PlanTorchFile("ckpt", *AllKindsFixture().root, f.tensors);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.tensor_offsets, b.tensor_offsets);
  ASSERT_EQ(a.blobs.size(), b.blobs.size());
  for (size_t i = 0; i < a.blobs.size(); ++i) {
    EXPECT_EQ(a.blobs[i].offset, b.blobs[i].offset);
    EXPECT_EQ(a.blobs[i].bytes, b.blobs[i].bytes);
  }
  ASSERT_EQ(a.crc_patches.size(), b.crc_patches.size());
  for (size_t i = 0; i < a.crc_patches.size(); ++i)
    EXPECT_EQ(a.crc_patches[i].patch_offsets, b.crc_patches[i].patch_offsets);
}

// A record of exactly 0xFFFFFFFF bytes needs zip64 sizes; everything after it sits beyond 4 GiB
// and needs zip64 offsets (also in the local header, as miniz writes them).
std::vector<OutputTensor> HugeTensors() {
  return {{"huge", DType::U8, {0xFFFFFFFFLL}},
          {"after", DType::F32, {4}},
          {"empty", DType::U8, {0}}};
}
ValuePtr HugeRoot() {
  return MakeDict({{MakeString("huge"), MakeTensor(0)},
                   {MakeString("after"), MakeTensor(1)},
                   {MakeString("empty"), MakeTensor(2)}});
}

TEST_F(TorchWriterTest, Zip64FieldsInPlanOfHugeTensor) {
  const std::vector<OutputTensor> tensors = HugeTensors();
  const FileLayout layout = PlanTorchFile("big", *HugeRoot(), tensors);
  ExpectBlobsCoverNonTensorBytes(layout, tensors);
  std::vector<ZipRecordInfo> records;
  ASSERT_NO_FATAL_FAILURE(WalkZip(
      [&](uint64_t off, uint64_t n) { return ReadBlobs(layout, off, n); }, layout.size, &records));
  ASSERT_EQ(records.size(), 6u);
  const ZipRecordInfo& huge = records[2];
  EXPECT_EQ(huge.size, 0xFFFFFFFFu);
  EXPECT_TRUE(huge.local_zip64_sizes);
  EXPECT_FALSE(huge.local_zip64_offset);
  EXPECT_EQ(huge.descriptor_size, 24u);
  const ZipRecordInfo& after = records[3];
  EXPECT_GE(after.header_offset, 0xFFFFFFFFu);
  EXPECT_FALSE(after.local_zip64_sizes);
  EXPECT_TRUE(after.local_zip64_offset);
  EXPECT_EQ(after.descriptor_size, 24u);
  EXPECT_EQ(records[4].descriptor_size, 0u);  // empty record: no descriptor
  EXPECT_TRUE(records[4].local_zip64_offset);
  EXPECT_TRUE(records[5].local_zip64_offset);  // version
  EXPECT_EQ(layout.tensor_offsets[0], huge.data_offset);
  EXPECT_EQ(layout.tensor_offsets[1], after.data_offset);
  EXPECT_EQ(layout.tensor_offsets[2], records[4].data_offset);
  // Tensor CRCs are placeholders until patched: zero in the blobs, patched in two places each.
  ASSERT_EQ(layout.crc_patches.size(), 2u);
  EXPECT_EQ(layout.crc_patches[0].data_offset, huge.data_offset);
  EXPECT_EQ(layout.crc_patches[0].data_size, 0xFFFFFFFFu);
  for (const CrcPatch& p : layout.crc_patches)
    for (uint64_t at : p.patch_offsets) EXPECT_EQ(ReadBlobs(layout, at, 4), std::string(4, '\0'));
}

// The same plan as a sparse file (the 4 GiB record stays a hole of zeros), loaded by torch with
// mmap=True and parsed by Python's zipfile.
TEST_F(TorchWriterTest, Zip64SparseFileLoadsInTorch) {
  if (!has_torch_) GTEST_SKIP() << "python3 cannot import torch";
  const std::vector<OutputTensor> tensors = HugeTensors();
  const FileLayout layout = PlanTorchFile("big", *HugeRoot(), tensors);
  const std::string path = dir_ + "/big.pt";
  const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(layout.size)), 0);
  auto pwrite_all = [&](const std::string& bytes, uint64_t offset) {
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
              static_cast<ssize_t>(bytes.size()));
  };
  for (const Blob& blob : layout.blobs) pwrite_all(blob.bytes, blob.offset);
  std::string after(tensors[1].nbytes(), '\0');
  for (size_t j = 0; j < after.size(); ++j) after[j] = static_cast<char>(PatternByte(1, j));
  pwrite_all(after, layout.tensor_offsets[1]);
  // CRC of 0xFFFFFFFF zero bytes, composed by doubling instead of reading 4 GiB.
  uLong zeros_crc = 0, zeros_len = 0, block_crc = crc32(0, reinterpret_cast<const Bytef*>("\0"), 1);
  for (uLong block_len = 1, left = 0xFFFFFFFF; left; left >>= 1) {
    if (left & 1) {
      zeros_crc = crc32_combine(zeros_crc, block_crc, block_len);
      zeros_len += block_len;
    }
    block_crc = crc32_combine(block_crc, block_crc, block_len);
    block_len *= 2;
  }
  ASSERT_EQ(zeros_len, 0xFFFFFFFFu);
  std::string crc_bytes(4, '\0');
  for (const CrcPatch& p : layout.crc_patches) {
    const uint32_t crc = p.data_size == after.size()
                             ? Crc(after.data(), after.size())
                             : static_cast<uint32_t>(zeros_crc);
    PutLe32(crc_bytes.data(), crc);
    for (uint64_t at : p.patch_offsets) pwrite_all(crc_bytes, at);
  }
  close(fd);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  if (static_cast<uint64_t>(st.st_blocks) * 512 > (uint64_t{64} << 20)) {
    unlink(path.c_str());
    GTEST_SKIP() << "file system does not keep holes";
  }
  RunPython(path, *HugeRoot(), tensors,
            {{"prefix", "big"}, {"mmap_only", true}, {"no_testzip", true}, {"skip_data", {0}}});
  unlink(path.c_str());
}

TEST_F(TorchWriterTest, RejectsWhatItCannotWrite) {
  const std::vector<OutputTensor> one = {{"w", DType::F32, {2}}};
  auto bytes = std::make_shared<pickle::Value>();
  bytes->kind = pickle::Kind::kBytes;
  auto object = std::make_shared<pickle::Value>();
  object->kind = pickle::Kind::kObject;
  object->class_name = "argparse.Namespace";
  auto expect_error = [&](const ValuePtr& root, ErrorKind kind, const std::string& fragment,
                          const std::string& archive = "ckpt") {
    try {
      PlanTorchFile(archive, *root, one);
      ADD_FAILURE() << "no error, expected one containing " << fragment;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  auto with_w = [&](Entries more) {
    more.insert(more.begin(), {MakeString("w"), MakeTensor(0)});
    return MakeDict(std::move(more));
  };
  expect_error(with_w({{MakeString("model"), MakeDict({{MakeString("blob"), bytes}})}}),
               ErrorKind::kUnsupported, "'model/blob'");
  expect_error(with_w({{MakeString("args"), object}}), ErrorKind::kUnsupported,
               "'args' is an object of class 'argparse.Namespace'");
  expect_error(with_w({{MakeString("l"), MakeList({MakeNone(), object})}}),
               ErrorKind::kUnsupported, "'l/1'");
  expect_error(with_w({{MakeFloat(1.0), MakeNone()}}), ErrorKind::kUnsupported,
               "key of kind float");
  expect_error(with_w({{MakeString("x"), MakeTensor(3)}}), ErrorKind::kInvalidInput,
               "'x' has index 3");
  expect_error(MakeDict({}), ErrorKind::kInvalidInput, "tensor 'w' (index 0) is not referenced");
  expect_error(with_w({{MakeString("s"), MakeString("\xff")}}), ErrorKind::kInvalidInput,
               "'s' is not valid UTF-8");
  expect_error(with_w({}), ErrorKind::kInvalidInput, "archive name", "a/b");
  expect_error(with_w({}), ErrorKind::kInvalidInput, "archive name", "");
}

}  // namespace
}  // namespace mcaconv
