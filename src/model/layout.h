// The layout engine: which element of which HF tensor sits where in which MCA rank file.
//
// BuildLayout derives, from the model dimensions, the family table and the parallel sizes alone,
// the full list of HF tensors, the full list of MCA tensors (per rank file and virtual stage, with
// local layer and expert indices), and the Pieces that connect them. A Piece says: this box of
// elements of HF tensor `hf` is that box of MCA tensor `mca`. Both directions of conversion read
// the same layout: HF -> MCA fills each MCA tensor from its pieces, MCA -> HF fills each HF tensor
// from its primary pieces and checks every replica piece against the primary.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/families.h"

namespace mcaconv {

// How routed experts are stored in MCA files (mca-format.md 4.7).
enum class ExpertFormat {
  kSequential,     // decoder.layers.<j>.mlp.experts.local_experts.<i>.linear_fc1.weight
  kTeGrouped,      // decoder.layers.<j>.mlp.experts.linear_fc1.weight<i>
  kLegacyGrouped,  // decoder.layers.<j>.mlp.experts.weight1 / weight2
};

struct LayoutParams {
  const Family* family = nullptr;
  int64_t hidden = 0, vocab = 0, heads = 0, query_groups = 0, head_dim = 0, ffn = 0;
  int64_t expert_ffn = 0, shared_ffn = 0, experts = 0;
  int num_layers = 0;
  std::vector<bool> moe_layer;  // per global layer; empty for dense models
  bool qkv_bias = false, qk_norm = false, tied_embeddings = false;
  int tp = 1, pp = 1, vpp = 1, ep = 1;
  bool stage_keys = false;  // rank files hold "model0".."model<V-1>" instead of "model"
  bool account_for_embedding = false, account_for_loss = false;
  std::string pipeline_layout;  // Megatron layout string, or empty
  ExpertFormat expert_format = ExpertFormat::kSequential;
  bool fused_hf_experts = false;  // HF side uses fused per-layer expert tensors (families.h)
  // LoRA adapter layouts: when lora_rank > 0 the layout holds only the LoRA A/B tensors of every
  // linear module (families.h LoraRules), with these ranks.
  int64_t lora_rank = 0;
  int64_t lora_expert_rank = 0;
};

struct HfTensor {
  std::string name;
  Shape shape;
};

struct McaTensor {
  int tp = 0, pp = 0, ep = 0, vp = 0;
  std::string name;  // local layer/expert indices
  Shape shape;
};

// A box of elements inside a tensor's row-major index space: element k of the box (multi-index
// i0, i1, ...) is flat element offset + sum(ij * strides[j]) of the tensor.
struct Box {
  int64_t offset = 0;
  Shape shape;
  Shape strides;
};

struct Piece {
  int hf = 0;
  Box hf_box;
  int mca = 0;
  Box mca_box;
  bool primary = true;  // false: a replica of another piece's HF elements (duplicated tensors)
  // false: another piece fills this MCA box; this HF box must hold the same elements (the HF
  // copies of a shared LoRA A).
  bool fills_mca = true;
};

struct Layout {
  std::vector<HfTensor> hf;
  std::vector<McaTensor> mca;
  std::vector<Piece> pieces;
  // HF names the family ignores (rotary inv_freq buffers): present or not, never converted.
  std::vector<std::string> ignored_hf_suffixes;
  // Index of the HF embedding and LM head in `hf` when tied (lm_head may appear in HF files as an
  // alias of the embedding); -1 otherwise.
  int tied_embedding_hf = -1;
};

// Throws Error(kUsage) when the shapes cannot be split as asked (heads, groups, vocab, FFN,
// experts, layers), with the numbers involved.
Layout BuildLayout(const LayoutParams& params);

// "mp_rank_TT[_PPP][_EEE]" (mca-format.md 1.2).
std::string RankDirName(int tp, int pp, int ep, const LayoutParams& params);
// "model" or "model<vp>".
std::string StageKey(int vp, const LayoutParams& params);

// Pipeline placement of a global decoder layer: stage (pp, vp) and local index.
struct LayerPlace {
  int pp = 0, vp = 0, local = 0;
};
std::vector<LayerPlace> PlaceLayers(const LayoutParams& params);

}  // namespace mcaconv
