"""Tiny HuggingFace models for the interop tests, and ways to compare them.

Every model here is small enough to build, save and run in well under a second on a CPU: hidden 64,
4 attention heads, 2 key-value heads (GQA), vocabulary 256. Weights are a seeded random
initialisation, so one (family, seed, overrides) triple always gives the same tensors.

    path = make_tiny_model("qwen2_moe", tmp_path / "hf", seed=1, num_hidden_layers=6)
    before = load_safetensors_dir(path)
    ...  # convert HF -> MCA -> HF into out
    assert_state_dicts_equal(before, load_safetensors_dir(out))
    torch.testing.assert_close(model_logits(out), model_logits(path), rtol=0, atol=0)

Note that transformers 5 fuses MoE experts in memory (experts.gate_up_proj) but saves them under the
per-expert checkpoint names; compare files with load_safetensors_dir, not model.state_dict().
"""

import json
import pathlib

import safetensors.torch
import torch
import transformers

transformers.utils.logging.disable_progress_bar()

# Shared by every family.
TINY = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    bos_token_id=1,
    eos_token_id=2,
)

# family -> (config class, extra config fields). Attention bias (qwen2) and q/k norms (qwen3) come
# with the architecture itself. MoE families: 8 experts, top-2; the Qwen MoE ones keep layer 0
# dense.
FAMILIES = {
    "llama": (transformers.LlamaConfig, {}),
    "mistral": (transformers.MistralConfig, {}),
    "qwen2": (transformers.Qwen2Config, {}),
    "qwen3": (transformers.Qwen3Config, {"head_dim": 16}),
    "mixtral": (transformers.MixtralConfig, {"num_local_experts": 8, "num_experts_per_tok": 2}),
    "qwen2_moe": (transformers.Qwen2MoeConfig, {
        "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
        "shared_expert_intermediate_size": 64, "mlp_only_layers": [0]}),
    "qwen3_moe": (transformers.Qwen3MoeConfig, {
        "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
        "mlp_only_layers": [0], "head_dim": 16}),
}
MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe")


def make_tiny_config(family: str, **overrides) -> transformers.PretrainedConfig:
    """The tiny config of `family`, with `overrides` (any config field) applied."""
    config_class, extra = FAMILIES[family]
    fields = {**TINY, "num_hidden_layers": 4, "tie_word_embeddings": False, **extra, **overrides}
    return config_class(**fields)


def make_tiny_model(family: str, path, seed: int = 0, dtype: torch.dtype = torch.float32,
                    max_shard_size=None, **overrides) -> pathlib.Path:
    """Builds a seeded tiny model of `family` and saves it (safetensors) into `path`; returns path.

    Weights are drawn in float32 and cast to `dtype`, so a bf16 model is the rounding of the f32
    model with the same seed. `max_shard_size` (e.g. "100KB") writes an indexed, sharded checkpoint.
    `overrides` go to the config (tie_word_embeddings=True, num_hidden_layers=6, ...).
    """
    path = pathlib.Path(path)
    config = make_tiny_config(family, **overrides)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).to(dtype)
    model.config.dtype = dtype
    shard_args = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(path, safe_serialization=True, **shard_args)
    return path


def load_safetensors_dir(path) -> dict:
    """Every tensor of the HF checkpoint in `path` by name, from one file or an indexed set."""
    path = pathlib.Path(path)
    index = path / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        part = safetensors.torch.load_file(path / name)
        overlap = tensors.keys() & part.keys()
        assert not overlap, f"{path / name}: tensors also in another shard: {sorted(overlap)[:5]}"
        tensors.update(part)
    return tensors


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The raw bytes of `tensor`, so that -0.0 != 0.0 and NaN payloads count."""
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


def state_dict_differences(expected: dict, actual: dict) -> list:
    """One line per tensor that is missing, extra, or differs in dtype, shape or any bit."""
    problems = [f"missing: {name}" for name in sorted(expected.keys() - actual.keys())]
    problems += [f"unexpected: {name}" for name in sorted(actual.keys() - expected.keys())]
    for name in sorted(expected.keys() & actual.keys()):
        want, got = expected[name], actual[name]
        if want.dtype != got.dtype:
            problems.append(f"{name}: dtype {got.dtype}, expected {want.dtype}")
        elif want.shape != got.shape:
            problems.append(f"{name}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        elif not torch.equal(_bits(want), _bits(got)):
            problems.append(f"{name}: values differ")
    return problems


def assert_state_dicts_equal(expected: dict, actual: dict) -> None:
    """Asserts bit-exact equality of two name -> tensor maps (dtype, shape and bytes)."""
    problems = state_dict_differences(expected, actual)
    assert not problems, f"{len(problems)} tensor(s) differ:\n  " + "\n  ".join(problems[:20])


def fixed_input_ids(vocab_size: int, seed: int = 0, batch: int = 2, seq_len: int = 12):
    """Deterministic token ids in [0, vocab_size) for comparing two models on the same input."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, seq_len), generator=generator)


@torch.no_grad()
def model_logits(path, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Logits of the HF model in `path` on fixed_input_ids(seed), computed in `dtype` on the CPU."""
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.eval()
    input_ids = fixed_input_ids(model.config.vocab_size, seed)
    return model(input_ids=input_ids).logits
