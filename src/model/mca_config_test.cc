#include "model/mca_config.h"

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/model_config.h"
#include "model/python_json.h"

namespace mcaconv {
namespace {

using nlohmann::json;

const std::string kDir = std::string(MCACONV_TEST_DATA_DIR) + "/configs/";

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

json LoadModel(const std::string& model) {
  return json::parse(ReadText(kDir + "models/" + model + "/config.json"));
}

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out(1);
  for (char ch : text) {
    if (ch == ',') {
      out.emplace_back();
    } else {
      out.back() += ch;
    }
  }
  return out;
}

// The CLI arguments of one fixture case (DistributingParallelArguments field names).
ConvertArgs ArgsFromCase(const json& c) {
  ConvertArgs args;
  args.bf16 = c["bf16"];
  args.fp16 = c["fp16"];
  ParallelArgs& p = args.parallel;
  for (const auto& [key, v] : c["args"].items()) {
    if (key == "tensor_model_parallel_size") p.tensor_model_parallel_size = v;
    else if (key == "pipeline_model_parallel_size") p.pipeline_model_parallel_size = v;
    else if (key == "virtual_pipeline_model_parallel_size")
      p.virtual_pipeline_model_parallel_size = v;
    else if (key == "expert_model_parallel_size") p.expert_model_parallel_size = v;
    else if (key == "expert_tensor_parallel_size") p.expert_tensor_parallel_size = v;
    else if (key == "context_parallel_size") p.context_parallel_size = v;
    else if (key == "sequence_parallel") p.sequence_parallel = v;
    else if (key == "account_for_embedding_in_pipeline_split")
      p.account_for_embedding_in_pipeline_split = v;
    else if (key == "account_for_loss_in_pipeline_split")
      p.account_for_loss_in_pipeline_split = v;
    else if (key == "pipeline_model_parallel_layout") p.pipeline_model_parallel_layout = v;
    else if (key == "overlap_p2p_comm") p.overlap_p2p_comm = v;
    else if (key == "variable_seq_lengths") p.variable_seq_lengths = v;
    else if (key == "recompute_granularity") p.recompute_granularity = v;
    else if (key == "recompute_modules") p.recompute_modules = SplitCommas(v);
    else if (key == "moe_token_dispatcher_type") p.moe_token_dispatcher_type = v;
    else if (key == "moe_aux_loss_coeff") p.moe_aux_loss_coeff = v;
    else if (key == "moe_grouped_gemm") p.moe_grouped_gemm = v;
    else if (key == "moe_expert_capacity_factor") p.moe_expert_capacity_factor = v;
    else if (key == "moe_token_drop_policy") p.moe_token_drop_policy = v;
    else if (key == "moe_router_dtype") p.moe_router_dtype = v;
    else if (key == "mtp_num_layers") p.mtp_num_layers = v;
    else if (key == "calculate_per_token_loss") p.calculate_per_token_loss = v;
    else if (key == "transformer_impl") p.transformer_impl = v;
    else if (key == "cuda_graph_impl") p.cuda_graph_impl = v;
    else if (key == "cuda_graph_scope") p.cuda_graph_scope = SplitCommas(v);
    else ADD_FAILURE() << "fixture argument not handled by the test: " << key;
  }
  return args;
}

// Each expected file is the mca_config.json that ROLL's own HF->MCA config code wrote for the
// same config.json and arguments (tests/data/configs/make_config_fixtures.py).
TEST(McaConfigTest, MatchesReferenceOutputByteForByte) {
  const json cases = json::parse(ReadText(kDir + "cases.json"));
  ASSERT_GE(cases.size(), 10u);
  for (const json& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const json mca = BuildMcaConfig(LoadModel(c["model"]), ArgsFromCase(c), c["name_or_path"]);
    const std::string expected_text = ReadText(kDir + "mca/" + c["name"].get<std::string>() +
                                               ".json");
    if (c["hf_config_json_exact"]) {
      EXPECT_EQ(DumpPythonJson(mca) + "\n", expected_text);
      continue;
    }
    // Hand-trimmed configs: transformers' hf_config_json lists the class defaults it filled in.
    json expected = json::parse(expected_text);
    expected.erase("hf_config_json");
    json ours = mca;
    ours.erase("hf_config_json");
    EXPECT_EQ(DumpPythonJson(ours), DumpPythonJson(expected));
  }
}

}  // namespace
}  // namespace mcaconv
