"""An independent Python model of the reference converter's HF -> MCA tensor math.

Written from ../shared/docs/mca-format.md (sections 4-6) with torch operations the way the
reference applies them: torch.chunk views for tensor-parallel splits, reshape + cat for the QKV
interleave. Tests use it two ways: as the expected content of every rank file mca-convert writes,
and to write MCA folders "the reference's way" (views that torch.save stores with their whole
storage, offsets and strides) for mca-convert to read back.
"""
import re

import torch

LAYER = re.compile(r"^model\.layers\.(\d+)\.(.*)$")


def place_layers(cfg):
    """Global layer -> (pp, vp, local), per mca-format.md 5.1 / 5.2."""
    layers = cfg["num_layers"]
    pp = cfg.get("pipeline_model_parallel_size") or 1
    vpp = cfg.get("virtual_pipeline_model_parallel_size") or 1
    layout = cfg.get("pipeline_model_parallel_layout")
    if layout:
        stages = expand_layout(layout)
        places, s_index = [], 0
        for s, stage in enumerate(stages):
            local = 0
            for c in stage:
                if c == "t":
                    places.append((s % pp, s // pp, local))
                    local += 1
        return places
    emb = 1 if cfg.get("account_for_embedding_in_pipeline_split") else 0
    loss = 1 if cfg.get("account_for_loss_in_pipeline_split") else 0
    per_chunk = (layers + emb + loss) // (pp * vpp)
    places = []
    for g in range(layers):
        x = g + emb
        chunk, local = divmod(x, per_chunk)
        if chunk == 0 and emb:
            local -= 1
        places.append((chunk % pp, chunk // pp, local))
    return places


def expand_layout(text):
    s = text.replace(",", "")
    while True:
        m = re.search(r"\(([^()]*)\)\*(\d+)", s)
        if not m:
            break
        s = s[: m.start()] + m.group(1) * int(m.group(2)) + s[m.end():]
    s = re.sub(r"([EtLm])\*(\d+)", lambda m: m.group(1) * int(m.group(2)), s)
    return s.split("|")


def qkv_full(q, k, v, heads, groups):
    """[ng * (q/ng + 2) * d, ...] from HF q, k, v (mca-format.md 4.2)."""
    per_group = heads // groups
    rest = q.shape[1:]
    qg = q.reshape(groups, -1, *rest)
    kg = k.reshape(groups, -1, *rest)
    vg = v.reshape(groups, -1, *rest)
    assert qg.shape[1] == kg.shape[1] * per_group
    return torch.cat([qg, kg, vg], dim=1).reshape(-1, *rest)


DENSE_LAYER = {
    "input_layernorm.weight": ("self_attention.linear_qkv.layer_norm_weight", "dup"),
    "self_attn.o_proj.weight": ("self_attention.linear_proj.weight", "row"),
    "self_attn.q_norm.weight": ("self_attention.q_layernorm.weight", "dup"),
    "self_attn.k_norm.weight": ("self_attention.k_layernorm.weight", "dup"),
    "mlp.down_proj.weight": ("mlp.linear_fc2.weight", "row"),
}


def split(tensor, mode, tp, rank):
    if mode == "dup":
        return tensor
    if mode == "col":
        return torch.chunk(tensor, tp, dim=0)[rank]
    return torch.chunk(tensor, tp, dim=1)[rank]


MOE_NAMES = {
    # family: (router, expert infix, gate, up, down)
    "mixtral": ("block_sparse_moe.gate.weight", "block_sparse_moe.experts.", "w1", "w3", "w2"),
    "qwen2_moe": ("mlp.gate.weight", "mlp.experts.", "gate_proj", "up_proj", "down_proj"),
    "qwen3_moe": ("mlp.gate.weight", "mlp.experts.", "gate_proj", "up_proj", "down_proj"),
}


def expert_format(cfg):
    if not cfg.get("moe_grouped_gemm"):
        return "sequential"
    return cfg.get("_expert_format", "te")


def moe_layers(cfg):
    layers = cfg["num_layers"]
    if not cfg.get("num_moe_experts"):
        return [False] * layers
    freq = cfg.get("moe_layer_freq", 1)
    if isinstance(freq, list):
        return [bool(x) for x in freq]
    return [i % freq == 0 for i in range(layers)]


def convert(sd, cfg):
    """HF state dict -> {(tp, pp, ep): {stage_key: {name: tensor view}}}."""
    tp = cfg.get("tensor_model_parallel_size") or 1
    pp = cfg.get("pipeline_model_parallel_size") or 1
    ep = cfg.get("expert_model_parallel_size") or 1
    vpp = cfg.get("virtual_pipeline_model_parallel_size") or 1
    heads, groups = cfg["num_attention_heads"], cfg["num_query_groups"]
    tied = cfg.get("tie_embeddings_and_output_weights", False)
    places = place_layers(cfg)
    files = {}

    is_moe = moe_layers(cfg)

    def put(t, p, vp, name, tensor, e=None):
        key = f"model{vp}" if vpp > 1 else "model"
        for rank in range(ep) if e is None else [e]:
            files.setdefault((t, p, rank), {}).setdefault(key, {})[name] = tensor

    for t in range(tp):
        for p in range(pp):
            for e in range(ep):
                for vp in range(vpp):
                    files.setdefault((t, p, e), {}).setdefault(f"model{vp}" if vpp > 1 else "model", {})
        put(t, 0, 0, "embedding.word_embeddings.weight",
            split(sd["model.embed_tokens.weight"], "col", tp, t))
        put(t, pp - 1, vpp - 1, "decoder.final_layernorm.weight", sd["model.norm.weight"])
        if not tied:
            put(t, pp - 1, vpp - 1, "output_layer.weight", split(sd["lm_head.weight"], "col", tp, t))
        elif pp > 1:
            put(t, pp - 1, vpp - 1, "output_layer.weight",
                split(sd["model.embed_tokens.weight"], "col", tp, t))
        for g, (p, vp, local) in enumerate(places):
            pre = f"model.layers.{g}."
            out = f"decoder.layers.{local}."
            for hf, (mca, mode) in DENSE_LAYER.items():
                if pre + hf in sd:
                    put(t, p, vp, out + mca, split(sd[pre + hf], mode, tp, t))
            qkv = qkv_full(sd[pre + "self_attn.q_proj.weight"], sd[pre + "self_attn.k_proj.weight"],
                           sd[pre + "self_attn.v_proj.weight"], heads, groups)
            put(t, p, vp, out + "self_attention.linear_qkv.weight", split(qkv, "col", tp, t))
            if pre + "self_attn.q_proj.bias" in sd:
                bias = qkv_full(sd[pre + "self_attn.q_proj.bias"], sd[pre + "self_attn.k_proj.bias"],
                                sd[pre + "self_attn.v_proj.bias"], heads, groups)
                put(t, p, vp, out + "self_attention.linear_qkv.bias", split(bias, "col", tp, t))
            if is_moe[g]:
                put_moe_layer(sd, cfg, t, p, vp, g, local, put)
                continue
            gate = torch.chunk(sd[pre + "mlp.gate_proj.weight"], tp, dim=0)[t]
            up = torch.chunk(sd[pre + "mlp.up_proj.weight"], tp, dim=0)[t]
            put(t, p, vp, out + "mlp.linear_fc1.weight", torch.cat([gate, up], dim=0))
            put(t, p, vp, out + "mlp.linear_fc1.layer_norm_weight",
                sd[pre + "post_attention_layernorm.weight"])
    return files


def put_moe_layer(sd, cfg, t, p, vp, g, local, put):
    """Router, norms, shared expert and routed experts of MoE layer g (mca-format.md 4.7, 6)."""
    tp = cfg.get("tensor_model_parallel_size") or 1
    ep = cfg.get("expert_model_parallel_size") or 1
    experts = cfg["num_moe_experts"]
    per_rank = experts // ep
    router, infix, gate_name, up_name, down_name = MOE_NAMES[cfg["hf_model_type"]]
    pre, out = f"model.layers.{g}.", f"decoder.layers.{local}."
    put(t, p, vp, out + "pre_mlp_layernorm.weight", sd[pre + "post_attention_layernorm.weight"])
    put(t, p, vp, out + "mlp.router.weight", sd[pre + router])
    if pre + "mlp.shared_expert.gate_proj.weight" in sd:
        shared = pre + "mlp.shared_expert."
        fc1 = torch.cat([torch.chunk(sd[shared + "gate_proj.weight"], tp, dim=0)[t],
                         torch.chunk(sd[shared + "up_proj.weight"], tp, dim=0)[t]], dim=0)
        put(t, p, vp, out + "mlp.shared_experts.linear_fc1.weight", fc1)
        put(t, p, vp, out + "mlp.shared_experts.linear_fc2.weight",
            torch.chunk(sd[shared + "down_proj.weight"], tp, dim=1)[t])
        put(t, p, vp, out + "mlp.shared_experts.gate_weight", sd[pre + "mlp.shared_expert_gate.weight"])
    layout = expert_format(cfg)
    for e_rank in range(ep):
        w1s, w2s = [], []
        for i in range(per_rank):
            e = e_rank * per_rank + i
            base = f"{pre}{infix}{e}."
            w1 = torch.cat([torch.chunk(sd[base + gate_name + ".weight"], tp, dim=0)[t],
                            torch.chunk(sd[base + up_name + ".weight"], tp, dim=0)[t]], dim=0)
            w2 = torch.chunk(sd[base + down_name + ".weight"], tp, dim=1)[t]
            if layout == "sequential":
                put(t, p, vp, f"{out}mlp.experts.local_experts.{i}.linear_fc1.weight", w1, e_rank)
                put(t, p, vp, f"{out}mlp.experts.local_experts.{i}.linear_fc2.weight", w2, e_rank)
            elif layout == "te":
                put(t, p, vp, f"{out}mlp.experts.linear_fc1.weight{i}", w1, e_rank)
                put(t, p, vp, f"{out}mlp.experts.linear_fc2.weight{i}", w2, e_rank)
            w1s.append(w1)
            w2s.append(w2)
        if layout == "legacy":
            hidden = w1s[0].shape[1]
            weight1 = torch.cat([w.t().contiguous().reshape(-1) for w in w1s]).view(hidden, -1)
            weight2 = torch.cat([w.t() for w in w2s], dim=0)
            put(t, p, vp, out + "mlp.experts.weight1", weight1, e_rank)
            put(t, p, vp, out + "mlp.experts.weight2", weight2, e_rank)


def rank_dir(t, p, e, cfg):
    name = f"mp_rank_{t:02d}"
    if (cfg.get("pipeline_model_parallel_size") or 1) > 1:
        name += f"_{p:03d}"
    if (cfg.get("expert_model_parallel_size") or 1) > 1:
        name += f"_{e:03d}"
    return name


def load_rank_files(mca_dir, cfg, **load_args):
    """Every rank file of an MCA folder, {(tp, pp, ep): torch.load(...)}, as training would see it."""
    files = {}
    for t in range(cfg.get("tensor_model_parallel_size") or 1):
        for p in range(cfg.get("pipeline_model_parallel_size") or 1):
            for e in range(cfg.get("expert_model_parallel_size") or 1):
                path = f"{mca_dir}/iter_0000001/{rank_dir(t, p, e, cfg)}/model_optim_rng.pt"
                files[(t, p, e)] = torch.load(path, weights_only=True, **load_args)
    return files
