#include "model/plan_common.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace mcaconv {
namespace fs = std::filesystem;

namespace {

int64_t GetInt(const nlohmann::json& j, const char* key, int64_t fallback,
               const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number_integer())
    ThrowInvalid(path + ": " + key + " should be an integer, found " + j[key].dump());
  return j[key].get<int64_t>();
}

bool GetBool(const nlohmann::json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return false;
  if (!j[key].is_boolean()) ThrowInvalid(path + ": " + key + " should be true or false");
  return j[key].get<bool>();
}

// Megatron's moe_layer_freq: an int N (layer i has experts when i % N == 0) or a 0/1 list.
std::vector<bool> MoeLayers(const nlohmann::json& mca, int layers, const std::string& path) {
  std::vector<bool> moe(layers, true);
  if (!mca.contains("moe_layer_freq") || mca["moe_layer_freq"].is_null()) return moe;
  const auto& freq = mca["moe_layer_freq"];
  if (freq.is_number_integer()) {
    const int64_t n = freq.get<int64_t>();
    if (n <= 0) ThrowInvalid(path + ": moe_layer_freq must be positive");
    for (int i = 0; i < layers; ++i) moe[i] = i % n == 0;
    return moe;
  }
  if (!freq.is_array() || static_cast<int>(freq.size()) != layers)
    ThrowInvalid(path + ": moe_layer_freq must be an integer or a list of " +
                 std::to_string(layers) + " entries");
  for (int i = 0; i < layers; ++i) moe[i] = freq[i].get<int64_t>() != 0;
  return moe;
}

}  // namespace

LayoutParams LayoutParamsFromMcaConfig(const nlohmann::json& mca, const std::string& path) {
  LayoutParams p;
  const std::string type = mca.value("hf_model_type", "");
  p.family = FindFamily(type);
  if (p.family == nullptr)
    ThrowUnsupported(path + ": hf_model_type \"" + type +
                     "\" is not supported (supported: " + SupportedFamilies() + ")");
  p.hidden = GetInt(mca, "hidden_size", 0, path);
  p.heads = GetInt(mca, "num_attention_heads", 0, path);
  p.num_layers = static_cast<int>(GetInt(mca, "num_layers", 0, path));
  if (p.hidden <= 0 || p.heads <= 0 || p.num_layers <= 0)
    ThrowInvalid(path + ": hidden_size, num_attention_heads and num_layers must be positive");
  p.query_groups = GetInt(mca, "num_query_groups", p.heads, path);
  p.head_dim = GetInt(mca, "kv_channels", p.hidden / p.heads, path);
  p.ffn = GetInt(mca, "ffn_hidden_size", 4 * p.hidden, path);
  p.vocab = GetInt(mca, "padded_vocab_size", 0, path);
  if (p.vocab <= 0) ThrowInvalid(path + ": padded_vocab_size must be set");
  p.experts = GetInt(mca, "num_moe_experts", 0, path);
  p.expert_ffn = GetInt(mca, "moe_ffn_hidden_size", p.ffn, path);
  p.shared_ffn = GetInt(mca, "moe_shared_expert_intermediate_size", 0, path);
  if (p.experts > 0) p.moe_layer = MoeLayers(mca, p.num_layers, path);
  p.qkv_bias = GetBool(mca, "add_qkv_bias", path);
  p.qk_norm = GetBool(mca, "qk_layernorm", path);
  p.tied_embeddings = GetBool(mca, "tie_embeddings_and_output_weights", path);
  p.tp = static_cast<int>(GetInt(mca, "tensor_model_parallel_size", 1, path));
  p.pp = static_cast<int>(GetInt(mca, "pipeline_model_parallel_size", 1, path));
  p.ep = static_cast<int>(GetInt(mca, "expert_model_parallel_size", 1, path));
  p.vpp = static_cast<int>(GetInt(mca, "virtual_pipeline_model_parallel_size", 1, path));
  if (p.tp <= 0 || p.pp <= 0 || p.ep <= 0 || p.vpp <= 0)
    ThrowInvalid(path + ": parallel sizes must be positive");
  const int64_t etp = GetInt(mca, "expert_tensor_parallel_size", p.tp, path);
  if (p.experts > 0 && etp != p.tp)
    ThrowUnsupported(path + ": expert_tensor_parallel_size " + std::to_string(etp) +
                     " differs from tensor_model_parallel_size " + std::to_string(p.tp) +
                     "; per-rank MCA files only exist with equal sizes");
  // VPP 1 is stored like no VPP: the reference's own reader expects "model" then.
  p.stage_keys = p.vpp > 1;
  p.account_for_embedding = GetBool(mca, "account_for_embedding_in_pipeline_split", path);
  p.account_for_loss = GetBool(mca, "account_for_loss_in_pipeline_split", path);
  if (mca.contains("pipeline_model_parallel_layout") &&
      mca["pipeline_model_parallel_layout"].is_string())
    p.pipeline_layout = mca["pipeline_model_parallel_layout"].get<std::string>();
  return p;
}

ResolvedRegion ResolveBox(const TensorView& view, const Box& box, const std::string& what) {
  const uint64_t element = ElementSize(view.dtype);
  if (view.IsContiguous())
    return {view.data_offset + static_cast<uint64_t>(box.offset) * element, box.strides};

  // Decompose the box's flat offset into a multi-index, then follow each box dimension along the
  // tensor dimension whose row-major stride it uses.
  const Shape logical = ContiguousStrides(view.shape);
  std::vector<int64_t> index(view.shape.size());
  int64_t rest = box.offset;
  int64_t memory = 0;
  for (size_t k = 0; k < view.shape.size(); ++k) {
    index[k] = rest / logical[k];
    rest %= logical[k];
    memory += index[k] * view.strides[k];
  }
  ResolvedRegion region;
  region.offset = view.data_offset + static_cast<uint64_t>(memory) * element;
  for (size_t j = 0; j < box.shape.size(); ++j) {
    if (box.shape[j] == 1) {
      region.strides.push_back(0);
      continue;
    }
    bool found = false;
    for (size_t k = 0; k < view.shape.size() && !found; ++k) {
      if (view.shape[k] > 1 && logical[k] == box.strides[j] &&
          index[k] + box.shape[j] <= view.shape[k]) {
        region.strides.push_back(view.strides[k]);
        found = true;
      }
    }
    if (!found)
      ThrowUnsupported(what + ": the stored view (shape " + ShapeToString(view.shape) +
                       ", strides " + ShapeToString(view.strides) +
                       ") cannot be read in the layout this conversion needs");
  }
  return region;
}

CopyOp MakeCopy(const SourceTensor& source, const Box& src_box, uint64_t dst_tensor_offset,
                const Box& dst_box, DType dst_dtype) {
  const ResolvedRegion src = ResolveBox(source.view, src_box, source.name);
  CopyOp op;
  op.src_file = source.file;
  op.src_offset = src.offset;
  op.src_strides = src.strides;
  op.src_dtype = source.view.dtype;
  op.dst_offset =
      dst_tensor_offset + static_cast<uint64_t>(dst_box.offset) * ElementSize(dst_dtype);
  op.dst_strides = dst_box.strides;
  op.dst_dtype = dst_dtype;
  op.shape = src_box.shape;
  if (op.src_dtype != op.dst_dtype && !(IsCastable(op.src_dtype) && IsCastable(op.dst_dtype)))
    ThrowUnsupported(source.name + ": cannot store " + std::string(Name(op.src_dtype)) +
                     " data in a " + std::string(Name(op.dst_dtype)) + " tensor");
  return op;
}

CompareOp MakeCheck(const SourceTensor& a, const Box& a_box, const SourceTensor& b,
                    const Box& b_box, std::string what) {
  const ResolvedRegion ra = ResolveBox(a.view, a_box, a.name);
  const ResolvedRegion rb = ResolveBox(b.view, b_box, b.name);
  if (a.view.dtype != b.view.dtype)
    ThrowInvalid(what + ": " + std::string(Name(a.view.dtype)) + " vs " +
                 std::string(Name(b.view.dtype)) + " data");
  CompareOp check;
  check.a_file = a.file;
  check.a_offset = ra.offset;
  check.a_strides = ra.strides;
  check.b_file = b.file;
  check.b_offset = rb.offset;
  check.b_strides = rb.strides;
  check.dtype = a.view.dtype;
  check.shape = a_box.shape;
  check.what = std::move(what);
  return check;
}

Box WholeTensor(const Shape& shape) { return {0, shape, ContiguousStrides(shape)}; }

DType OutputDType(DType source, const ConvertArgs& args) {
  if (!IsCastable(source)) return source;
  if (args.bf16) return DType::BF16;
  if (args.fp16) return DType::F16;
  return source;
}

std::vector<CopiedFile> AuxiliaryFiles(const std::string& source_dir, bool copy_python) {
  static const char* const kNames[] = {"tokenizer.json",
                                       "tokenizer_config.json",
                                       "special_tokens_map.json",
                                       "tokenizer.model",
                                       "vocab.json",
                                       "merges.txt",
                                       "vocab.txt",
                                       "added_tokens.json",
                                       "chat_template.jinja",
                                       "chat_template.json",
                                       "preprocessor_config.json",
                                       "processor_config.json",
                                       "video_preprocessor_config.json",
                                       "generation_config.json"};
  std::vector<CopiedFile> files;
  for (const char* name : kNames) {
    const fs::path path = fs::path(source_dir) / name;
    if (fs::is_regular_file(path)) files.push_back({path.string(), name});
  }
  if (copy_python) {
    for (const auto& entry : fs::directory_iterator(source_dir))
      if (entry.is_regular_file() && entry.path().extension() == ".py")
        files.push_back({entry.path().string(), entry.path().filename().string()});
  }
  std::sort(files.begin(), files.end(), [](const CopiedFile& a, const CopiedFile& b) {
    return a.relative_path < b.relative_path;
  });
  return files;
}

std::vector<size_t> ModelOrder(const std::vector<std::string>& names) {
  auto group = [](const std::string& name) {
    if (name.find("embed") != std::string::npos) return 0;
    if (name.find("layers.") != std::string::npos) return 1;
    return 2;
  };
  auto layer = [](const std::string& name) -> int64_t {
    const auto pos = name.find("layers.");
    if (pos == std::string::npos) return -1;
    return std::strtoll(name.c_str() + pos + 7, nullptr, 10);
  };
  std::vector<size_t> order(names.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int ga = group(names[a]), gb = group(names[b]);
    if (ga != gb) return ga < gb;
    if (ga == 1) return layer(names[a]) < layer(names[b]);
    return false;
  });
  return order;
}

}  // namespace mcaconv
