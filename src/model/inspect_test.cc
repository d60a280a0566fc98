// InspectPath against the torch / safetensors fixtures of tests/data, whose expected JSON was
// written by torch and safetensors themselves (make_fixtures.py).
#include "model/inspect.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/error.h"

namespace mcaconv {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const fs::path kData = MCACONV_TEST_DATA_DIR;

Json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  return Json::parse(in);
}

// name -> (dtype, shape) of a report's tensors, and of a fixture's expected tensors.
using Listing = std::map<std::string, std::pair<std::string, Shape>>;

Listing FromReport(const InspectReport& report, int file = -1) {
  Listing out;
  for (const InspectTensor& t : report.tensors) {
    if (file < 0 || t.file == file) out[t.name] = {std::string(Name(t.dtype)), t.shape};
  }
  return out;
}

Listing FromExpected(const Json& tensors) {
  Listing out;
  for (const Json& t : tensors) {
    out[t["name"].get<std::string>()] = {t["dtype"].get<std::string>(), t["shape"].get<Shape>()};
  }
  return out;
}

const InspectNonTensor* FindNonTensor(const InspectReport& report, const std::string& name) {
  for (const InspectNonTensor& n : report.non_tensors) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

ErrorKind KindOfFailure(const std::string& path) {
  try {
    InspectPath(path);
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no error for " << path;
  return ErrorKind::kIo;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("inspect_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(Inspect, TorchFixturesListEveryTensor) {
  for (const char* stem : {"views", "dtypes", "megatron", "multi_model", "module", "parameters",
                           "fileobj", "proto4", "rezipped"}) {
    SCOPED_TRACE(stem);
    InspectReport report = InspectPath((kData / "torchzip" / (std::string(stem) + ".pt")).string());
    Json expected = ReadJson(kData / "torchzip" / (std::string(stem) + ".json"));
    EXPECT_EQ(FromReport(report), FromExpected(expected["tensors"]));
    ASSERT_EQ(report.files.size(), 1u);
    EXPECT_EQ(report.files[0].format, "torch");
    EXPECT_EQ(report.files[0].path, std::string(stem) + ".pt");
    uint64_t bytes = 0;
    for (const InspectTensor& t : report.tensors) bytes += t.bytes;
    EXPECT_EQ(report.total_bytes, bytes);
  }
}

TEST(Inspect, TorchNonTensorEntriesCarryTheirKind) {
  InspectReport report = InspectPath((kData / "torchzip" / "megatron.pt").string());
  Json expected = ReadJson(kData / "torchzip" / "megatron.json");
  const InspectNonTensor* iteration = FindNonTensor(report, "iteration");
  ASSERT_NE(iteration, nullptr);
  EXPECT_EQ(iteration->kind, "int");
  EXPECT_EQ(iteration->value, std::to_string(expected["iteration"].get<int>()));
  const InspectNonTensor* version = FindNonTensor(report, "checkpoint_version");
  ASSERT_NE(version, nullptr);
  EXPECT_EQ(version->kind, "float");
  EXPECT_EQ(version->value, "3.0");  // repr(expected["checkpoint_version"])
  const InspectNonTensor* args = FindNonTensor(report, "args");
  ASSERT_NE(args, nullptr);
  EXPECT_EQ(args->kind, "object");
  EXPECT_EQ(args->value, "argparse.Namespace");
  const InspectNonTensor* extra =
      FindNonTensor(report, "model/decoder.layers.0.self_attention.linear_qkv._extra_state");
  ASSERT_NE(extra, nullptr);
  EXPECT_EQ(extra->kind, "None");
  const InspectNonTensor* betas = FindNonTensor(report, "optimizer/param_groups/0/betas");
  ASSERT_NE(betas, nullptr);
  EXPECT_EQ(betas->value, "(0.9, 0.999)");

  InspectReport module = InspectPath((kData / "torchzip" / "module.pt").string());
  const InspectNonTensor* bytes_io = FindNonTensor(module, "2._extra_state");
  ASSERT_NE(bytes_io, nullptr);
  EXPECT_EQ(bytes_io->value, "_io.BytesIO");
}

TEST(Inspect, SafetensorsFixtures) {
  Json expected = ReadJson(kData / "safetensors" / "expected.json");
  for (const auto& [stem, file] : expected.items()) {
    SCOPED_TRACE(stem);
    InspectReport report = InspectPath((kData / "safetensors" / (stem + ".safetensors")).string());
    EXPECT_EQ(report.layout, "safetensors file");
    EXPECT_EQ(FromReport(report), FromExpected(file["tensors"]));
    EXPECT_TRUE(report.non_tensors.empty());
  }
}

TEST(Inspect, HfFolderUsesItsWeightFiles) {
  InspectReport folder = InspectPath((kData / "tiny-llama").string());
  InspectReport file = InspectPath((kData / "tiny-llama" / "model.safetensors").string());
  EXPECT_EQ(folder.layout, "HF folder");
  ASSERT_EQ(folder.files.size(), 1u);
  EXPECT_EQ(folder.files[0].path, "model.safetensors");
  EXPECT_FALSE(folder.tensors.empty());
  EXPECT_EQ(FromReport(folder), FromReport(file));
}

TEST(Inspect, McaFolderListsRankFilesInRankOrder) {
  TempDir dir;
  std::ofstream(dir.path() / "mca_config.json") << "{}";
  // Widths grow past two digits (tp 100), so rank order is numeric, not lexical.
  const std::map<std::string, std::string> ranks = {{"mp_rank_99", "multi_model.pt"},
                                                    {"mp_rank_08", "views.pt"},
                                                    {"mp_rank_100", "module.pt"}};
  for (const auto& [rank, source] : ranks) {
    fs::create_directories(dir.path() / "iter_0000001" / rank);
    fs::copy_file(kData / "torchzip" / source,
                  dir.path() / "iter_0000001" / rank / "model_optim_rng.pt");
  }
  fs::create_directories(dir.path() / "iter_0000001" / "mp_rank_07");  // no model file
  EXPECT_EQ(KindOfFailure(dir.path().string()), ErrorKind::kInvalidInput);
  fs::remove(dir.path() / "iter_0000001" / "mp_rank_07");

  InspectReport report = InspectPath(dir.path().string());
  EXPECT_EQ(report.layout, "MCA folder");
  ASSERT_EQ(report.files.size(), 3u);
  const std::string order[] = {"mp_rank_08", "mp_rank_99", "mp_rank_100"};
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(order[i]);
    EXPECT_EQ(report.files[i].path, "iter_0000001/" + order[i] + "/model_optim_rng.pt");
    fs::path source = kData / "torchzip" / ranks.at(order[i]);
    Json expected = ReadJson(source.replace_extension(".json"));
    EXPECT_EQ(FromReport(report, i), FromExpected(expected["tensors"]));
  }
}

TEST(Inspect, RejectsWhatItCannotList) {
  TempDir dir;
  EXPECT_EQ(KindOfFailure(dir.path().string()), ErrorKind::kUsage);
  EXPECT_EQ(KindOfFailure((dir.path() / "missing").string()), ErrorKind::kIo);

  fs::create_directories(dir.path() / "hf");
  std::ofstream(dir.path() / "hf" / "config.json") << "{}";
  EXPECT_EQ(KindOfFailure((dir.path() / "hf").string()), ErrorKind::kInvalidInput);
  std::ofstream(dir.path() / "hf" / "model.safetensors.index.json")
      << R"({"metadata": {}, "weight_map": {"w": "../outside.safetensors"}})";
  EXPECT_EQ(KindOfFailure((dir.path() / "hf").string()), ErrorKind::kInvalidInput);

  fs::create_directories(dir.path() / "mca" / "iter_0000001" / "dist_model");
  std::ofstream(dir.path() / "mca" / "mca_config.json") << "{}";
  EXPECT_EQ(KindOfFailure((dir.path() / "mca").string()), ErrorKind::kUnsupported);
}

TEST(Inspect, TableAndJsonRenderTheSameEntries) {
  InspectReport report = InspectPath((kData / "torchzip" / "megatron.pt").string());
  std::ostringstream table;
  WriteInspectTable(report, table);
  EXPECT_NE(table.str().find("model/embedding.word_embeddings.weight"), std::string::npos);
  EXPECT_NE(table.str().find("bfloat16"), std::string::npos);
  EXPECT_NE(table.str().find("[6, 4]"), std::string::npos);
  EXPECT_NE(table.str().find("<object>"), std::string::npos);
  EXPECT_NE(table.str().find("total: 6 tensors"), std::string::npos);

  std::ostringstream json;
  WriteInspectJson(report, json);
  Json doc = Json::parse(json.str());
  EXPECT_EQ(doc["total_tensors"], report.tensors.size());
  EXPECT_EQ(doc["total_bytes"], report.total_bytes);
  EXPECT_EQ(doc["total_files"], 1);
  ASSERT_EQ(doc["tensors"].size(), report.tensors.size());
  EXPECT_EQ(doc["tensors"][0]["file"], "megatron.pt");
  EXPECT_EQ(doc["non_tensors"].size(), report.non_tensors.size());
}

}  // namespace
}  // namespace mcaconv
