#include "model/hf_config.h"

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/mca_config.h"
#include "model/python_json.h"

namespace mcaconv {
namespace {

using nlohmann::json;

const std::string kDir = std::string(MCACONV_TEST_DATA_DIR) + "/configs/";

json LoadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

const char* const kModels[] = {"llama",   "mistral",   "qwen2",     "qwen3",
                               "mixtral", "qwen2_moe", "qwen3_moe", "llama_sparse",
                               "llama_oldrope", "mixtral_sparse", "qwen3_moe_sparse"};

// HF -> MCA -> HF keeps the value of every key of the original config.json, except where the
// reference itself changes it: a null head_dim comes back as Megatron's kv_channels
// (hidden_size / num_attention_heads), and an old-style rope_scaling comes back in transformers
// 5's standardised form (the rope_parameters dict).
TEST(HfConfigTest, RoundTripKeepsEveryOriginalValue) {
  for (const char* model : kModels) {
    SCOPED_TRACE(model);
    const json original = LoadJson(kDir + "models/" + model + "/config.json");
    ConvertArgs args;
    const json mca = BuildMcaConfig(original, args, std::string("tiny/") + model);
    const json back = BuildHfConfig(json::parse(DumpPythonJson(mca)), std::nullopt);
    for (const auto& [key, value] : original.items()) {
      ASSERT_TRUE(back.contains(key)) << key;
      if (key == "head_dim" && value.is_null()) {
        EXPECT_EQ(back[key], original["hidden_size"].get<int64_t>() /
                                 original["num_attention_heads"].get<int64_t>());
      } else if (key == "rope_scaling") {
        EXPECT_EQ(back[key], mca["rope_parameters"]);
      } else {
        EXPECT_EQ(back[key], value) << key;
      }
    }
    EXPECT_EQ(back["model_type"], original["model_type"]);
    EXPECT_FALSE(back.contains("torch_dtype"));
  }
}

TEST(HfConfigTest, MissingKeysAreAddedAtTopLevel) {
  const json original = LoadJson(kDir + "models/qwen3_moe/config.json");
  const json back = BuildHfConfig(BuildMcaConfig(original, ConvertArgs(), "m"), std::nullopt);
  // rotary_base is written back as rope_theta; num_experts is stored as num_local_experts.
  EXPECT_EQ(back["rope_theta"], 10000.0);
  EXPECT_EQ(back["num_experts"], original["num_local_experts"]);
}

TEST(HfConfigTest, EditedMcaValuesWin) {
  json mca = BuildMcaConfig(LoadJson(kDir + "models/qwen2/config.json"), ConvertArgs(), "m");
  mca["num_query_groups"] = 4;
  mca["layernorm_epsilon"] = 1e-05;
  const json back = BuildHfConfig(mca, std::string("bfloat16"));
  EXPECT_EQ(back["num_key_value_heads"], 4);
  EXPECT_EQ(HfConfigFileText(back).find("\"rms_norm_eps\": 1e-05,\n") != std::string::npos, true);
  EXPECT_EQ(back["torch_dtype"], "bfloat16");
  EXPECT_FALSE(back.contains("dtype"));
}

TEST(HfConfigTest, DtypeIsUpdatedWhenStored) {
  json hf = LoadJson(kDir + "models/llama/config.json");
  hf["dtype"] = "float32";
  const json back = BuildHfConfig(BuildMcaConfig(hf, ConvertArgs(), "m"), std::string("float16"));
  EXPECT_EQ(back["dtype"], "float16");
  EXPECT_EQ(back["torch_dtype"], "float16");
}

TEST(HfConfigTest, ModelMaxLengthSetsTopLevelOnly) {
  json hf = LoadJson(kDir + "models/llama/config.json");
  hf["text_config"] = {{"max_position_embeddings", 7}};
  ApplyModelMaxLength(hf, 8192);
  EXPECT_EQ(hf["max_position_embeddings"], 8192);
  EXPECT_EQ(hf["model_max_length"], 8192);
  EXPECT_EQ(hf["text_config"]["max_position_embeddings"], 7);
  const std::string text = HfConfigFileText(hf);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find("\"model_max_length\": 8192"), text.find("\"model_max_length\""));
}

TEST(HfConfigTest, RejectsBrokenMcaConfigs) {
  json mca = BuildMcaConfig(LoadJson(kDir + "models/llama/config.json"), ConvertArgs(), "m");
  json bad = mca;
  bad["hf_config_json"] = "{not json";
  EXPECT_THROW(BuildHfConfig(bad, std::nullopt), Error);
  bad = mca;
  bad.erase("hf_config_json");
  EXPECT_THROW(BuildHfConfig(bad, std::nullopt), Error);
  bad = mca;
  bad["hf_model_type"] = "gpt2";
  try {
    BuildHfConfig(bad, std::nullopt);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("gpt2"), std::string::npos);
  }
}

}  // namespace
}  // namespace mcaconv
