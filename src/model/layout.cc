#include "model/layout.h"

#include <regex>
#include <tuple>

#include "core/error.h"

namespace mcaconv {
namespace {

std::string Itos(int64_t v) { return std::to_string(v); }

// Expands a Megatron pipeline layout string into its stages (mca-format.md 5.2).
std::vector<std::string> ParseLayoutString(const std::string& text) {
  std::string s;
  for (char c : text)
    if (c != ',' && c != ' ') s += c;
  static const std::regex group(R"(\(([^()]*)\)\*(\d+))");
  static const std::regex single(R"(([EtLm])\*(\d+))");
  for (const std::regex* re : {&group, &single}) {
    std::smatch m;
    while (std::regex_search(s, m, *re)) {
      std::string repeated;
      int count = std::stoi(m[2].str());
      if (count < 0 || count > 100000)
        ThrowUsage("pipeline layout repeat count too large: " + text);
      for (int i = 0; i < count; ++i) repeated += m[1].str();
      s = m.prefix().str() + repeated + m.suffix().str();
    }
  }
  std::vector<std::string> stages(1);
  for (char c : s) {
    if (c == '|') {
      stages.emplace_back();
    } else if (c == 'E' || c == 'L' || c == 't') {
      stages.back() += c;
    } else if (c == 'm') {
      ThrowUnsupported("pipeline layout " + text + ": MTP layers ('m') are not supported");
    } else {
      ThrowUsage("pipeline layout " + text + ": unexpected character '" + std::string(1, c) + "'");
    }
  }
  return stages;
}

std::vector<LayerPlace> PlaceByLayoutString(const LayoutParams& p) {
  const auto stages = ParseLayoutString(p.pipeline_layout);
  const int n_stages = static_cast<int>(stages.size());
  if (n_stages % p.pp != 0 || n_stages / p.pp != p.vpp)
    ThrowUsage("pipeline layout " + p.pipeline_layout + " has " + Itos(n_stages) +
               " stages, which is not pipeline size " + Itos(p.pp) + " x virtual stages " +
               Itos(p.vpp));
  std::string all;
  for (const auto& st : stages) all += st;
  const auto count = [&](char c) { return std::count(all.begin(), all.end(), c); };
  if (count('E') != 1 || count('L') != 1 || stages.front().empty() || stages.front()[0] != 'E' ||
      stages.back().empty() || stages.back().back() != 'L')
    ThrowUsage("pipeline layout " + p.pipeline_layout +
               ": needs exactly one E at the start of the first stage and one L at the end of the "
               "last");
  if (count('t') != p.num_layers)
    ThrowUsage("pipeline layout " + p.pipeline_layout + " places " + Itos(count('t')) +
               " decoder layers but the model has " + Itos(p.num_layers));
  std::vector<LayerPlace> places;
  for (int s = 0; s < n_stages; ++s) {
    int local = 0;
    for (char c : stages[s])
      if (c == 't') places.push_back({s % p.pp, s / p.pp, local++});
  }
  return places;
}

}  // namespace

std::vector<LayerPlace> PlaceLayers(const LayoutParams& p) {
  if (!p.pipeline_layout.empty()) return PlaceByLayoutString(p);
  const int embed = p.account_for_embedding ? 1 : 0;
  const int n = p.num_layers + embed + (p.account_for_loss ? 1 : 0);
  const int chunks = p.pp * p.vpp;
  if (n % chunks != 0)
    ThrowUsage(Itos(p.num_layers) + " layers" +
               (n != p.num_layers ? " (" + Itos(n) + " counting embedding/loss)" : "") +
               " cannot be divided evenly across pipeline size " + Itos(p.pp) +
               " x virtual stages " + Itos(p.vpp));
  const int per_chunk = n / chunks;
  std::vector<LayerPlace> places;
  for (int g = 0; g < p.num_layers; ++g) {
    const int x = g + embed;
    const int chunk = x / per_chunk;
    int local = x % per_chunk;
    if (chunk == 0 && embed) local -= 1;
    places.push_back({chunk % p.pp, chunk / p.pp, local});
  }
  return places;
}

std::string RankDirName(int tp, int pp, int ep, const LayoutParams& p) {
  auto pad = [](int v, int width) {
    std::string s = std::to_string(v);
    return std::string(s.size() < size_t(width) ? width - s.size() : 0, '0') + s;
  };
  std::string name = "mp_rank_" + pad(tp, 2);
  if (p.pp > 1) name += "_" + pad(pp, 3);
  if (p.ep > 1) name += "_" + pad(ep, 3);
  return name;
}

std::string StageKey(int vp, const LayoutParams& p) {
  return p.stage_keys ? "model" + std::to_string(vp) : "model";
}

namespace {

// One MCA tensor of one TP rank and the boxes that fill it, before names are attached.
struct RankShard {
  Shape shape;
  struct Part {
    int input = 0;  // index into the rule's HF tensors
    Box hf, mca;
    bool fills_mca = true;
  };
  std::vector<Part> parts;
};

int64_t RowSize(const Shape& shape) {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

Box WholeBox(const Shape& shape) { return {0, shape, ContiguousStrides(shape)}; }

// Rows [first, first + count) of a tensor, as a box of the tensor's own index space.
Box RowBlock(const Shape& shape, int64_t first, int64_t count) {
  Shape box_shape = shape;
  box_shape[0] = count;
  return {first * RowSize(shape), box_shape, ContiguousStrides(shape)};
}

int64_t SplitSize(int64_t size, int parts, const std::string& what) {
  if (size % parts != 0)
    ThrowUsage(what + " has size " + Itos(size) + ", which tensor parallel size " + Itos(parts) +
               " does not divide");
  return size / parts;
}

class LayoutBuilder {
 public:
  explicit LayoutBuilder(const LayoutParams& p) : p_(p), places_(PlaceLayers(p)) {}

  Layout Build();

 private:
  int64_t Resolve(Dim dim) const;
  bool Applies(When when, int layer) const;
  int AddHf(const std::string& name, const Shape& shape);
  int AddMca(int tp, int pp, int ep, int vp, const std::string& name, const Shape& shape);
  RankShard Shard(const WeightRule& rule, const std::vector<Shape>& shapes, int rank,
                  const std::string& what) const;
  void AddRule(const WeightRule& rule, int layer, int expert);
  std::pair<int, int64_t> ExpertInput(const WeightRule& rule, size_t input, int layer, int expert,
                                      const Shape& per_expert);
  std::pair<int, int64_t> AddFusedExpert(const WeightRule& rule, size_t input, int layer,
                                         int expert, const Shape& per_expert);
  void AddTiedOutputLayer(const WeightRule& head_rule);
  void AddLegacyGroupedExperts(int layer);
  void BuildLora();

  const LayoutParams& p_;
  std::vector<LayerPlace> places_;
  Layout out_;
  std::map<std::string, int> hf_index_;
  std::map<std::tuple<int, int, int, int, std::string>, int> mca_index_;
};

int64_t LayoutBuilder::Resolve(Dim dim) const {
  switch (dim) {
    case Dim::kHidden:
      return p_.hidden;
    case Dim::kVocab:
      return p_.vocab;
    case Dim::kQueryRows:
      return p_.heads * p_.head_dim;
    case Dim::kKvRows:
      return p_.query_groups * p_.head_dim;
    case Dim::kHeadDim:
      return p_.head_dim;
    case Dim::kFfn:
      return p_.ffn;
    case Dim::kExpertFfn:
      return p_.expert_ffn;
    case Dim::kSharedFfn:
      return p_.shared_ffn;
    case Dim::kExperts:
      return p_.experts;
    case Dim::kOne:
      return 1;
    case Dim::kLoraRank:
      return p_.lora_rank;
    case Dim::kExpertLoraRank:
      return p_.lora_expert_rank > 0 ? p_.lora_expert_rank : p_.lora_rank;
  }
  return 0;
}

bool LayoutBuilder::Applies(When when, int layer) const {
  const bool moe = layer >= 0 && !p_.moe_layer.empty() && p_.moe_layer[layer];
  switch (when) {
    case When::kAlways:
      return true;
    case When::kQkvBias:
      return p_.qkv_bias;
    case When::kQkNorm:
      return p_.qk_norm;
    case When::kDenseMlp:
      return !moe;
    case When::kMoeMlp:
      return moe;
    case When::kSharedExpert:
      return moe && p_.shared_ffn > 0;
    case When::kUntiedHead:
      return !p_.tied_embeddings;
  }
  return false;
}

int LayoutBuilder::AddHf(const std::string& name, const Shape& shape) {
  auto [it, inserted] = hf_index_.emplace(name, static_cast<int>(out_.hf.size()));
  if (inserted) out_.hf.push_back({name, shape});
  return it->second;
}

int LayoutBuilder::AddMca(int tp, int pp, int ep, int vp, const std::string& name,
                          const Shape& shape) {
  auto key = std::make_tuple(tp, pp, ep, vp, name);
  auto [it, inserted] = mca_index_.emplace(key, static_cast<int>(out_.mca.size()));
  if (inserted) out_.mca.push_back({tp, pp, ep, vp, name, shape});
  return it->second;
}

// The MCA tensor of TP rank `rank` for one rule instance, and where its elements come from.
RankShard LayoutBuilder::Shard(const WeightRule& rule, const std::vector<Shape>& shapes, int rank,
                               const std::string& what) const {
  const int tp = p_.tp;
  RankShard shard;
  const Shape& first = shapes[0];
  if (rule.join == Join::kCopy) {
    if (rule.split != Split::kDuplicated) ThrowUnsupported(what + ": copies must be duplicated");
    shard.shape = first;
    for (size_t input = 0; input < shapes.size(); ++input)
      shard.parts.push_back(
          {static_cast<int>(input), WholeBox(first), WholeBox(first), input == 0});
  } else if (rule.split == Split::kDuplicated) {
    shard.shape = first;
    shard.parts.push_back({0, WholeBox(first), WholeBox(first)});
  } else if (rule.join == Join::kRename && rule.split == Split::kColumn) {
    const int64_t rows = SplitSize(first[0], tp, what + " dim 0");
    shard.shape = first;
    shard.shape[0] = rows;
    shard.parts.push_back({0, RowBlock(first, rank * rows, rows), WholeBox(shard.shape)});
  } else if (rule.join == Join::kRename && rule.split == Split::kRow) {
    const int64_t cols = SplitSize(first[1], tp, what + " dim 1");
    shard.shape = {first[0], cols};
    shard.parts.push_back(
        {0, {rank * cols, shard.shape, ContiguousStrides(first)}, WholeBox(shard.shape)});
  } else if (rule.join == Join::kStack) {
    const int64_t rows = SplitSize(first[0], tp, what + " dim 0");
    shard.shape = first;
    shard.shape[0] = 2 * rows;
    for (int input = 0; input < 2; ++input)
      shard.parts.push_back({input, RowBlock(shapes[input], rank * rows, rows),
                             RowBlock(shard.shape, input * rows, rows)});
  } else if (rule.join == Join::kQkv) {
    const int64_t d = p_.head_dim;
    const int64_t per_group = p_.heads / p_.query_groups;
    const int64_t groups = SplitSize(p_.query_groups, tp, what + " query groups");
    const int64_t block = (per_group + 2) * d;
    shard.shape = first;
    shard.shape[0] = groups * block;
    for (int64_t lg = 0; lg < groups; ++lg) {
      const int64_t g = rank * groups + lg;
      const int64_t base = lg * block;
      shard.parts.push_back({0, RowBlock(shapes[0], g * per_group * d, per_group * d),
                             RowBlock(shard.shape, base, per_group * d)});
      shard.parts.push_back(
          {1, RowBlock(shapes[1], g * d, d), RowBlock(shard.shape, base + per_group * d, d)});
      shard.parts.push_back(
          {2, RowBlock(shapes[2], g * d, d), RowBlock(shard.shape, base + (per_group + 1) * d, d)});
    }
  } else {
    ThrowUnsupported(what + ": no split rule for this tensor");
  }
  return shard;
}

std::string LayerName(const LayoutParams& p, int layer) {
  return std::string(p.family->hf_layer_prefix) + std::to_string(layer);
}

void LayoutBuilder::AddRule(const WeightRule& rule, int layer, int expert) {
  // HF side: names and shapes of the join's inputs.
  std::string hf_prefix;
  if (rule.scope == Scope::kLayer) hf_prefix = LayerName(p_, layer);
  if (rule.scope == Scope::kExpert)
    hf_prefix = LayerName(p_, layer) + std::string(p_.family->hf_expert_infix) + Itos(expert);
  std::vector<int> hf_ids;
  std::vector<Shape> shapes;
  std::vector<int64_t> hf_shift;  // element offset of this expert's slice in a fused tensor
  for (size_t i = 0; i < rule.hf.size(); ++i) {
    Shape shape;
    for (Dim dim : rule.hf[i].shape) shape.push_back(Resolve(dim));
    shapes.push_back(shape);
    if (rule.scope == Scope::kExpert && p_.fused_hf_experts) {
      const auto [id, shift] = AddFusedExpert(rule, i, layer, expert, shape);
      hf_ids.push_back(id);
      hf_shift.push_back(shift);
      continue;
    }
    std::string name = hf_prefix + std::string(rule.hf[i].name);
    if (p_.fused_hf_experts)
      for (const auto& [per_expert, fused] : p_.family->fused_layout_renames)
        if (rule.hf[i].name == per_expert) name = hf_prefix + std::string(fused);
    hf_ids.push_back(AddHf(name, shape));
    hf_shift.push_back(0);
  }

  // MCA side: stage, expert-parallel ranks and local name.
  LayerPlace place;
  if (rule.scope != Scope::kGlobal) place = places_[layer];
  if (rule.stage == Stage::kLast) place = {p_.pp - 1, p_.vpp - 1, 0};
  std::string mca_name = std::string(rule.mca);
  int ep_first = 0, ep_last = p_.ep - 1;
  if (rule.scope == Scope::kLayer) mca_name = "decoder.layers." + Itos(place.local) + mca_name;
  if (rule.scope == Scope::kExpert) {
    const int64_t per_rank = p_.experts / p_.ep;
    ep_first = ep_last = static_cast<int>(expert / per_rank);
    const int64_t local = expert % per_rank;
    const std::string layer_name = "decoder.layers." + Itos(place.local) + ".mlp.experts";
    mca_name = p_.expert_format == ExpertFormat::kTeGrouped
                   ? layer_name + std::string(rule.mca) + Itos(local)
                   : layer_name + ".local_experts." + Itos(local) + std::string(rule.mca);
  }

  const std::string what = out_.hf[hf_ids[0]].name;
  for (int tp = 0; tp < p_.tp; ++tp) {
    const RankShard shard = Shard(rule, shapes, tp, what);
    for (int ep = ep_first; ep <= ep_last; ++ep) {
      const int mca = AddMca(tp, place.pp, ep, place.vp, mca_name, shard.shape);
      const bool primary = ep == ep_first && (rule.split != Split::kDuplicated || tp == 0);
      for (auto part : shard.parts) {
        part.hf.offset += hf_shift[part.input];
        out_.pieces.push_back(
            {hf_ids[part.input], part.hf, mca, part.mca, primary, part.fills_mca});
      }
    }
  }
}

// The fused tensor holding input `input` of an expert rule, and where expert `expert`'s
// per-expert tensor starts in it: gate_up_proj [E, 2*Fm, H] holds [gate_e; up_e] per expert,
// down_proj [E, H, Fm] holds down_e.
std::pair<int, int64_t> LayoutBuilder::AddFusedExpert(const WeightRule& rule, size_t input,
                                                      int layer, int expert,
                                                      const Shape& per_expert) {
  const std::string prefix = LayerName(p_, layer) + ".mlp.experts.";
  const int64_t size = NumElements(per_expert);
  if (rule.join == Join::kStack) {
    const Shape fused = {p_.experts, 2 * per_expert[0], per_expert[1]};
    return {AddHf(prefix + "gate_up_proj", fused),
            (2 * expert + static_cast<int64_t>(input)) * size};
  }
  const Shape fused = {p_.experts, per_expert[0], per_expert[1]};
  return {AddHf(prefix + "down_proj", fused), expert * size};
}

// HF tensor and element offset of input `input` of expert `expert`, per-expert or fused.
std::pair<int, int64_t> LayoutBuilder::ExpertInput(const WeightRule& rule, size_t input, int layer,
                                                   int expert, const Shape& per_expert) {
  if (p_.fused_hf_experts) return AddFusedExpert(rule, input, layer, expert, per_expert);
  const std::string name = LayerName(p_, layer) + std::string(p_.family->hf_expert_infix) +
                           Itos(expert) + std::string(rule.hf[input].name);
  return {AddHf(name, per_expert), 0};
}

// Tied embeddings with PP > 1: the last stage stores a copy of the embedding as output_layer
// (mca-format.md 5.5). Those pieces are replicas of the embedding's.
void LayoutBuilder::AddTiedOutputLayer(const WeightRule& head_rule) {
  const int embed = hf_index_.at("model.embed_tokens.weight");
  const Shape shape = out_.hf[embed].shape;
  for (int tp = 0; tp < p_.tp; ++tp) {
    const int64_t rows = SplitSize(shape[0], p_.tp, "output_layer.weight dim 0");
    Shape local = shape;
    local[0] = rows;
    for (int ep = 0; ep < p_.ep; ++ep) {
      const int mca = AddMca(tp, p_.pp - 1, ep, p_.vpp - 1, std::string(head_rule.mca), local);
      out_.pieces.push_back({embed, RowBlock(shape, tp * rows, rows), mca, WholeBox(local), false});
    }
  }
}

// Legacy grouped GEMM: per layer and rank, weight1 [H, nl*2f] holds transpose(W1(e)) of each
// local expert back to back, weight2 [nl*f, H] holds transpose(W2(e)) (mca-format.md 4.7).
void LayoutBuilder::AddLegacyGroupedExperts(int layer) {
  const WeightRule* fc1 = nullptr;
  const WeightRule* fc2 = nullptr;
  for (const auto& rule : p_.family->rules) {
    if (rule.scope != Scope::kExpert) continue;
    (rule.join == Join::kStack ? fc1 : fc2) = &rule;
  }
  const int64_t h = p_.hidden, fm = p_.expert_ffn;
  const int64_t f = SplitSize(fm, p_.tp, "expert FFN size");
  const int64_t per_rank = p_.experts / p_.ep;
  const LayerPlace place = places_[layer];
  const std::string base = "decoder.layers." + Itos(place.local) + ".mlp.experts.";
  for (int ep = 0; ep < p_.ep; ++ep) {
    for (int tp = 0; tp < p_.tp; ++tp) {
      const int w1 = AddMca(tp, place.pp, ep, place.vp, base + "weight1", {h, per_rank * 2 * f});
      const int w2 = AddMca(tp, place.pp, ep, place.vp, base + "weight2", {per_rank * f, h});
      for (int64_t i = 0; i < per_rank; ++i) {
        const int e = static_cast<int>(ep * per_rank + i);
        for (int input = 0; input < 2; ++input) {
          const auto [hf, shift] = ExpertInput(*fc1, input, layer, e, {fm, h});
          // Element (a, b) of the box is W(e)[tp*f + b, a]: a transposed row block.
          out_.pieces.push_back({hf,
                                 {shift + tp * f * h, {h, f}, {1, h}},
                                 w1,
                                 {i * h * 2 * f + input * f, {h, f}, {2 * f, 1}},
                                 true});
        }
        const auto [down, shift] = ExpertInput(*fc2, 0, layer, e, {h, fm});
        out_.pieces.push_back(
            {down, {shift + tp * f, {f, h}, {1, fm}}, w2, {i * f * h, {f, h}, {h, 1}}, true});
      }
    }
  }
}

// LoRA adapters: the A and B tensors of every linear module of every layer and expert.
void LayoutBuilder::BuildLora() {
  if (p_.expert_format == ExpertFormat::kLegacyGrouped)
    ThrowUnsupported("LoRA adapters on legacy grouped-GEMM experts are not supported");
  for (int layer = 0; layer < p_.num_layers; ++layer) {
    for (const auto& rule : p_.family->rules) {
      if (!rule.lora || !Applies(rule.when, layer)) continue;
      const std::vector<WeightRule> adapters = LoraRules(rule);
      if (rule.scope == Scope::kLayer) {
        for (const auto& adapter : adapters) AddRule(adapter, layer, -1);
        continue;
      }
      for (int64_t e = 0; e < p_.experts; ++e)
        for (const auto& adapter : adapters) AddRule(adapter, layer, static_cast<int>(e));
    }
  }
}

Layout LayoutBuilder::Build() {
  if (p_.experts > 0 && p_.experts % p_.ep != 0)
    ThrowUsage(Itos(p_.experts) + " experts cannot be divided across expert parallel size " +
               Itos(p_.ep));
  if (p_.query_groups <= 0 || p_.heads % p_.query_groups != 0)
    ThrowUsage(Itos(p_.heads) + " attention heads are not a multiple of " + Itos(p_.query_groups) +
               " query groups");
  for (const auto& suffix : p_.family->hf_ignored_suffixes)
    out_.ignored_hf_suffixes.emplace_back(suffix);

  if (p_.lora_rank > 0) {
    BuildLora();
    return std::move(out_);
  }
  const WeightRule* head_rule = nullptr;
  for (const auto& rule : p_.family->rules) {
    if (rule.scope != Scope::kGlobal) continue;
    if (rule.when == When::kUntiedHead) head_rule = &rule;
    if (Applies(rule.when, -1)) AddRule(rule, -1, -1);
  }
  for (int layer = 0; layer < p_.num_layers; ++layer) {
    for (const auto& rule : p_.family->rules) {
      if (rule.scope != Scope::kLayer || !Applies(rule.when, layer)) continue;
      AddRule(rule, layer, -1);
    }
    if (p_.moe_layer.empty() || !p_.moe_layer[layer]) continue;
    if (p_.expert_format == ExpertFormat::kLegacyGrouped) {
      AddLegacyGroupedExperts(layer);
      continue;
    }
    for (int64_t e = 0; e < p_.experts; ++e)
      for (const auto& rule : p_.family->rules)
        if (rule.scope == Scope::kExpert) AddRule(rule, layer, static_cast<int>(e));
  }
  if (p_.tied_embeddings) {
    out_.tied_embedding_hf = hf_index_.at("model.embed_tokens.weight");
    if (p_.pp > 1 && head_rule != nullptr) AddTiedOutputLayer(*head_rule);
  }
  return std::move(out_);
}

}  // namespace

Layout BuildLayout(const LayoutParams& params) { return LayoutBuilder(params).Build(); }

}  // namespace mcaconv
