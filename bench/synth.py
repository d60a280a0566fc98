"""Synthetic checkpoints for the end-to-end benchmarks, written straight to disk with numpy.

Nothing here builds a model in memory: tensor lists are derived from the config, and each
tensor's bytes are a window of one shared pool of random numbers, so a multi-GB checkpoint costs
one pass of writes and about 64 MB of memory. Files are real (not sparse): every byte is
written. Tensor names and shapes are those transformers saves for the family (checked against a
tiny save_pretrained model by `python3 bench/synth.py --self-check`).
"""

import json
import pathlib
import zlib

import numpy as np

POOL_BYTES = 64 << 20
_DTYPE_BYTES = {"F32": 4, "BF16": 2}


class Pool:
    """Random N(0, 0.02) weights as float32 bytes and as bfloat16 bytes (rounded toward zero)."""

    def __init__(self, seed=0):
        values = np.random.default_rng(seed).standard_normal(POOL_BYTES // 4, dtype=np.float32)
        values *= 0.02
        self.f32 = values.view(np.uint8)
        self.bf16 = (values.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)

    def write(self, out, dtype, name, nbytes):
        """Writes `nbytes` bytes for tensor `name`: the pool from a name-dependent start, cycling."""
        pool = self.f32 if dtype == "F32" else self.bf16
        start = (zlib.crc32(name.encode()) % (pool.size // 8)) * 4
        while nbytes > 0:
            chunk = pool[start:start + nbytes]
            out.write(chunk)
            nbytes -= chunk.size
            start = 0


def tensor_bytes(shape, dtype):
    count = 1
    for dim in shape:
        count *= dim
    return count * _DTYPE_BYTES[dtype]


def write_safetensors(path, tensors, dtype, pool):
    """tensors: [(name, shape)]; all of `dtype` ("F32" or "BF16"); metadata {"format": "pt"}."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors:
        size = tensor_bytes(shape, dtype)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(len(text).to_bytes(8, "little"))
        out.write(text)
        for name, shape in tensors:
            pool.write(out, dtype, name, tensor_bytes(shape, dtype))
    return 8 + len(text) + offset


def llama_tensors(config):
    """Checkpoint names and shapes of a LlamaForCausalLM (untied embeddings)."""
    hidden, inter = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q_rows = config.num_attention_heads * head_dim
    kv_rows = config.num_key_value_heads * head_dim
    out = [("model.embed_tokens.weight", (config.vocab_size, hidden))]
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (hidden,)),
            (p + "self_attn.q_proj.weight", (q_rows, hidden)),
            (p + "self_attn.k_proj.weight", (kv_rows, hidden)),
            (p + "self_attn.v_proj.weight", (kv_rows, hidden)),
            (p + "self_attn.o_proj.weight", (hidden, q_rows)),
            (p + "post_attention_layernorm.weight", (hidden,)),
            (p + "mlp.gate_proj.weight", (inter, hidden)),
            (p + "mlp.up_proj.weight", (inter, hidden)),
            (p + "mlp.down_proj.weight", (hidden, inter)),
        ]
    out += [("model.norm.weight", (hidden,)), ("lm_head.weight", (config.vocab_size, hidden))]
    return out


def qwen3_moe_tensors(config):
    """Checkpoint names and shapes of a Qwen3MoeForCausalLM whose every layer is sparse."""
    hidden, inter = config.hidden_size, config.moe_intermediate_size
    head_dim = config.head_dim
    q_rows = config.num_attention_heads * head_dim
    kv_rows = config.num_key_value_heads * head_dim
    out = [("model.embed_tokens.weight", (config.vocab_size, hidden))]
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (hidden,)),
            (p + "self_attn.q_proj.weight", (q_rows, hidden)),
            (p + "self_attn.k_proj.weight", (kv_rows, hidden)),
            (p + "self_attn.v_proj.weight", (kv_rows, hidden)),
            (p + "self_attn.o_proj.weight", (hidden, q_rows)),
            (p + "self_attn.q_norm.weight", (head_dim,)),
            (p + "self_attn.k_norm.weight", (head_dim,)),
            (p + "post_attention_layernorm.weight", (hidden,)),
            (p + "mlp.gate.weight", (config.num_experts, hidden)),
        ]
        for e in range(config.num_experts):
            q = f"{p}mlp.experts.{e}."
            out += [
                (q + "gate_proj.weight", (inter, hidden)),
                (q + "up_proj.weight", (inter, hidden)),
                (q + "down_proj.weight", (hidden, inter)),
            ]
    out += [("model.norm.weight", (hidden,)), ("lm_head.weight", (config.vocab_size, hidden))]
    return out


def write_hf_model(path, config, tensors, dtype, pool, shard_bytes=1 << 30):
    """An HF folder: config.json, model-0000N-of-0000M.safetensors shards and their index.

    Shards are filled in tensor order up to `shard_bytes`, as save_pretrained splits them.
    Returns the total bytes of tensor data.
    """
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config.dtype = "float32" if dtype == "F32" else "bfloat16"
    config.save_pretrained(path)
    shards, current, current_bytes = [], [], 0
    for name, shape in tensors:
        size = tensor_bytes(shape, dtype)
        if current and current_bytes + size > shard_bytes:
            shards.append(current)
            current, current_bytes = [], 0
        current.append((name, shape))
        current_bytes += size
    shards.append(current)
    weight_map, total = {}, 0
    for index, shard in enumerate(shards):
        file_name = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(path / file_name, shard, dtype, pool)
        for name, shape in shard:
            weight_map[name] = file_name
            total += tensor_bytes(shape, dtype)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return total


def llama_config(layers):
    import transformers
    return transformers.LlamaConfig(
        hidden_size=2048, intermediate_size=5632, num_attention_heads=16, num_key_value_heads=8,
        vocab_size=32000, num_hidden_layers=layers, max_position_embeddings=4096,
        tie_word_embeddings=False)


def qwen3_moe_config(layers, experts=64):
    import transformers
    return transformers.Qwen3MoeConfig(
        hidden_size=1024, intermediate_size=3072, moe_intermediate_size=512, head_dim=64,
        num_attention_heads=16, num_key_value_heads=4, num_experts=experts, num_experts_per_tok=8,
        vocab_size=32000, num_hidden_layers=layers, max_position_embeddings=4096,
        mlp_only_layers=[], decoder_sparse_step=1, tie_word_embeddings=False)


def _self_check():
    """Our name/shape lists against what transformers saves for tiny versions of the configs."""
    import tempfile

    import safetensors
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()

    def shrink(config, **fields):
        for key, value in fields.items():
            setattr(config, key, value)
        return config

    cases = [
        (shrink(llama_config(2), hidden_size=64, intermediate_size=96, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=128), llama_tensors),
        (shrink(qwen3_moe_config(2, experts=4), hidden_size=64, moe_intermediate_size=32,
                head_dim=16, num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                num_experts_per_tok=2), qwen3_moe_tensors),
    ]
    for config, tensors in cases:
        with tempfile.TemporaryDirectory() as tmp:
            model = transformers.AutoModelForCausalLM.from_config(config).to(torch.float32)
            model.save_pretrained(tmp, safe_serialization=True)
            with safetensors.safe_open(f"{tmp}/model.safetensors", framework="pt") as f:
                saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        ours = dict(tensors(config))
        assert saved == ours, sorted(set(saved.items()) ^ set(ours.items()))
        print(f"{config.model_type}: {len(ours)} tensors match transformers")


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--self-check"]:
        _self_check()
    else:
        sys.exit("usage: python3 bench/synth.py --self-check")
