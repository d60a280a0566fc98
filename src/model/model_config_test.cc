#include "model/model_config.h"

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/mca_config.h"

namespace mcaconv {
namespace {

using nlohmann::json;

const std::string kDir = std::string(MCACONV_TEST_DATA_DIR) + "/configs/";

json LoadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

json Model(const std::string& name) { return LoadJson(kDir + "models/" + name + "/config.json"); }

ModelConfig Built(const json& hf, const ConvertArgs& args) {
  return ParseMcaConfig(BuildMcaConfig(hf, args, "m"), "built");
}

void ExpectError(ErrorKind kind, const std::function<void()>& fn,
                 const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const std::string& f : fragments) {
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what() << " lacks " << f;
    }
  }
}

void ExpectUsage(const json& hf, const ConvertArgs& args, const std::vector<std::string>& frags) {
  SCOPED_TRACE(frags.front());
  ExpectError(ErrorKind::kUsage, [&] { BuildMcaConfig(hf, args, "m"); }, frags);
}

// Expected values come from the transformers-written config.json of each fixture.
TEST(ModelConfigTest, KeyFieldsFollowTheHfConfig) {
  const json qwen3 = Model("qwen3");
  const ModelConfig q3 = Built(qwen3, ConvertArgs());
  EXPECT_EQ(q3.kv_channels, qwen3["head_dim"]);  // 32, not hidden / heads = 16
  EXPECT_EQ(q3.num_query_groups, qwen3["num_key_value_heads"]);
  EXPECT_EQ(q3.ffn_hidden_size, qwen3["intermediate_size"]);
  EXPECT_TRUE(q3.qk_layernorm);
  EXPECT_FALSE(q3.add_qkv_bias);

  const json qwen2 = Model("qwen2");
  ConvertArgs tp2pp2;
  tp2pp2.parallel.tensor_model_parallel_size = 2;
  tp2pp2.parallel.pipeline_model_parallel_size = 2;
  tp2pp2.bf16 = true;
  const ModelConfig q2 = Built(qwen2, tp2pp2);
  EXPECT_TRUE(q2.add_qkv_bias);
  EXPECT_TRUE(q2.tie_embeddings_and_output_weights);
  EXPECT_EQ(q2.kv_channels, 16);  // hidden 64 / heads 4
  EXPECT_EQ(q2.tp, 2);
  EXPECT_EQ(q2.pp, 2);
  EXPECT_EQ(q2.vpp, 0);
  EXPECT_EQ(q2.etp, 2);
  EXPECT_TRUE(q2.bf16);

  const json llama = Model("llama");
  const json mca = BuildMcaConfig(llama, ConvertArgs(), "m");
  EXPECT_EQ(mca["rotary_base"], llama["rope_parameters"]["rope_theta"]);
  EXPECT_EQ(mca["layernorm_epsilon"], llama["rms_norm_eps"]);
  EXPECT_FALSE(mca["overlap_p2p_comm"].get<bool>());
  EXPECT_TRUE(mca["batch_p2p_comm"].get<bool>());
  EXPECT_TRUE(mca["gated_linear_unit"].get<bool>());
  EXPECT_EQ(mca["cuda_graph_scope"], json::array());
}

TEST(ModelConfigTest, MoeFields) {
  const json q2moe = Model("qwen2_moe");
  ConvertArgs args;
  args.parallel.tensor_model_parallel_size = 2;
  args.parallel.expert_model_parallel_size = 2;
  const json mca = BuildMcaConfig(q2moe, args, "m");
  EXPECT_TRUE(mca["sequence_parallel"].get<bool>());  // forced with TP > 1 and EP > 1
  const ModelConfig c = ParseMcaConfig(mca, "built");
  EXPECT_EQ(c.ffn_hidden_size, q2moe["moe_intermediate_size"]);  // qwen2_moe maps it there
  EXPECT_EQ(c.moe_ffn_hidden_size, q2moe["moe_intermediate_size"]);
  EXPECT_EQ(c.moe_shared_expert_intermediate_size, q2moe["shared_expert_intermediate_size"]);
  EXPECT_EQ(c.num_moe_experts, q2moe["num_experts"]);
  EXPECT_EQ(c.moe_router_topk, q2moe["num_experts_per_tok"]);
  EXPECT_EQ(c.is_moe, std::vector<bool>(2, true));
  EXPECT_EQ(c.ep, 2);

  const json q3moe = Model("qwen3_moe");  // 32 experts: router dtype defaults to fp32
  EXPECT_EQ(BuildMcaConfig(q3moe, ConvertArgs(), "m")["moe_router_dtype"], "fp32");
}

TEST(ModelConfigTest, LayoutStringDerivesVpp) {
  ConvertArgs args;
  args.parallel.pipeline_model_parallel_size = 2;
  args.parallel.pipeline_model_parallel_layout = "Et|(tt|)*2tL";
  const ModelConfig c = Built(Model("qwen3"), args);
  EXPECT_EQ(c.vpp, 2);
  EXPECT_EQ(c.pipeline_model_parallel_layout, "Et|(tt|)*2tL");

  std::vector<std::string> stages;
  std::string error;
  ASSERT_TRUE(ExpandPipelineLayout("E,t*3|(tt|)*2,L", &stages, &error)) << error;
  EXPECT_EQ(stages, (std::vector<std::string>{"Ettt", "tt", "tt", "L"}));
  EXPECT_FALSE(ExpandPipelineLayout("E(t)*999999(t)*999999|L", &stages, &error));
  EXPECT_FALSE(ExpandPipelineLayout("Et*99999999999|L", &stages, &error));
}

TEST(ModelConfigTest, UsageErrorsNameTheNumbers) {
  const json llama = Model("llama");  // 4 heads, 2 groups, vocab 128, ffn 96, 4 layers
  ConvertArgs a;
  a.parallel.tensor_model_parallel_size = 3;
  ExpectUsage(llama, a, {"num_attention_heads (4)", "tensor_model_parallel_size (3)"});
  a.parallel.tensor_model_parallel_size = 4;
  ExpectUsage(llama, a, {"num_query_groups (2)", "(4)"});
  json odd = llama;
  odd["vocab_size"] = 129;
  a.parallel.tensor_model_parallel_size = 2;
  ExpectUsage(odd, a, {"padded_vocab_size (129)", "(2)"});
  odd = llama;
  odd["intermediate_size"] = 98;
  a.parallel.tensor_model_parallel_size = 4;
  odd["num_key_value_heads"] = 4;
  ExpectUsage(odd, a, {"ffn_hidden_size (98)", "(4)"});

  ConvertArgs pp;
  pp.parallel.pipeline_model_parallel_size = 3;
  ExpectUsage(llama, pp, {"num_layers (4", "(3 * 1)"});
  pp.parallel.pipeline_model_parallel_size = 4;
  pp.parallel.account_for_embedding_in_pipeline_split = true;
  pp.parallel.account_for_loss_in_pipeline_split = true;
  ExpectUsage(llama, pp, {"num_layers (4, 6 with", "(4 * 1)"});
  pp.parallel.pipeline_model_parallel_size = 2;
  pp.parallel.virtual_pipeline_model_parallel_size = 2;
  ExpectUsage(llama, pp, {"num_layers (4, 6 with", "(2 * 2)"});

  ConvertArgs ep;
  ep.parallel.expert_model_parallel_size = 3;
  ExpectUsage(Model("mixtral"), ep, {"num_moe_experts (4)", "expert_model_parallel_size (3)"});
  ExpectUsage(llama, ep, {"expert_model_parallel_size (3)", "dense"});

  json moe = Model("qwen3_moe");
  moe["moe_intermediate_size"] = 35;
  ConvertArgs tp2;
  tp2.parallel.tensor_model_parallel_size = 2;
  ExpectUsage(moe, tp2, {"moe_ffn_hidden_size (35)", "expert_tensor_parallel_size (2)"});
  tp2.parallel.expert_tensor_parallel_size = 1;
  ExpectUsage(Model("qwen3_moe"), tp2,
              {"expert_tensor_parallel_size (1)", "tensor_model_parallel_size (2)"});
}

TEST(ModelConfigTest, UsageErrorsForOptionsAndLayouts) {
  const json qwen3 = Model("qwen3");  // 6 layers
  ConvertArgs a;
  a.parallel.pipeline_model_parallel_size = 2;
  for (const char* bad : {"Et|tt|tt|t", "tEt|tt|tt|tL", "Et|tt|tx|tL", "Et|tt|tt|ttL"}) {
    a.parallel.pipeline_model_parallel_layout = bad;
    ExpectUsage(qwen3, a, {"layout", bad});
  }
  a.parallel.pipeline_model_parallel_size = 3;
  a.parallel.pipeline_model_parallel_layout = "Et|tt|tt|tL";
  ExpectUsage(qwen3, a, {"4 stages", "3"});
  a.parallel.pipeline_model_parallel_size = 2;
  a.parallel.account_for_loss_in_pipeline_split = true;
  ExpectUsage(qwen3, a, {"account_for"});

  ConvertArgs v;
  v.parallel.variable_seq_lengths = true;
  ExpectUsage(qwen3, v, {"allgather"});
  ConvertArgs both;
  both.bf16 = both.fp16 = true;
  ExpectUsage(qwen3, both, {"--bf16", "--fp16"});
  ConvertArgs scope;
  scope.parallel.cuda_graph_scope = {"full", "attn"};
  ExpectUsage(qwen3, scope, {"full"});
  scope.parallel.cuda_graph_scope = {"attn", "mlp"};
  EXPECT_FALSE(BuildMcaConfig(qwen3, scope, "m").contains("cuda_graph_scope"));
  ConvertArgs rec;
  rec.parallel.recompute_granularity = "full";
  rec.parallel.recompute_method = "recompute";
  rec.parallel.recompute_num_layers = 1;
  ExpectUsage(qwen3, rec, {"recompute"});

  json unknown = qwen3;
  unknown["model_type"] = "gpt2";
  ExpectError(ErrorKind::kUnsupported, [&] { BuildMcaConfig(unknown, ConvertArgs(), "m"); },
              {"gpt2", "qwen3_moe"});
}

TEST(ModelConfigTest, ParseAppliesDefaultsAndChecksTypes) {
  json mca = LoadJson(kDir + "mca/qwen3_moe_selective.json");
  mca.erase("num_query_groups");
  mca["expert_tensor_parallel_size"] = nullptr;
  mca["moe_layer_freq"] = 2;
  const ModelConfig c = ParseMcaConfig(mca, "/ckpt/mca_config.json");
  EXPECT_EQ(c.model_type, "qwen3_moe");
  EXPECT_EQ(c.num_query_groups, c.num_attention_heads);
  EXPECT_EQ(c.etp, c.tp);
  EXPECT_EQ(c.is_moe, (std::vector<bool>{true, false, true, false, true, false}));
  EXPECT_EQ(c.num_moe_experts, 32);
  EXPECT_EQ(c.moe_ffn_hidden_size, 32);

  mca["moe_layer_freq"] = json::array({1, 0, 0, 1, 1, 0});
  EXPECT_EQ(ParseMcaConfig(mca, "p").is_moe,
            (std::vector<bool>{true, false, false, true, true, false}));
  mca["moe_layer_freq"] = json::array({1, 0});
  ExpectError(ErrorKind::kInvalidInput, [&] { ParseMcaConfig(mca, "/ckpt/mca_config.json"); },
              {"/ckpt/mca_config.json", "moe_layer_freq", "6 entries"});

  json typed = LoadJson(kDir + "mca/llama_tp2.json");
  typed["hidden_size"] = "64";
  ExpectError(ErrorKind::kInvalidInput, [&] { ParseMcaConfig(typed, "/x/mca_config.json"); },
              {"/x/mca_config.json", "\"hidden_size\"", "\"64\""});
  typed = LoadJson(kDir + "mca/llama_tp2.json");
  typed["tensor_model_parallel_size"] = 3;
  ExpectError(ErrorKind::kInvalidInput, [&] { ParseMcaConfig(typed, "/x/mca_config.json"); },
              {"/x/mca_config.json", "num_attention_heads (4)", "(3)"});
  typed = LoadJson(kDir + "mca/llama_tp2.json");
  typed.erase("hf_model_type");
  ExpectError(ErrorKind::kInvalidInput, [&] { ParseMcaConfig(typed, "/x/mca_config.json"); },
              {"hf_model_type"});
}

TEST(ModelConfigTest, ParsesEveryReferenceFixture) {
  const json cases = LoadJson(kDir + "cases.json");
  for (const json& c : cases) {
    const std::string name = c["name"];
    const ModelConfig m = ParseMcaConfig(LoadJson(kDir + "mca/" + name + ".json"), name);
    EXPECT_EQ(m.model_type + "_", name.substr(0, m.model_type.size() + 1)) << name;
    EXPECT_EQ(m.is_moe.size(), static_cast<size_t>(m.num_layers));
  }
}

}  // namespace
}  // namespace mcaconv
