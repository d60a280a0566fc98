"""HF -> MCA -> HF for the MoE families with expert parallelism and every expert layout (issue 4).

Each case checks the rank files against the independent oracle (mca_oracle.py): exactly the
experts and keys the spec assigns to each (tp, pp, ep) rank, with the right shapes and values;
then the round trip back to HF bit for bit and the logits of the reloaded model.
"""
import json
import shutil

import pytest
import torch

import mca_oracle
from test_dense_roundtrip import flag_args, hf_state, logits

MOE_CONFIGS = {
    "mixtral": ("MixtralConfig", dict(num_local_experts=8, num_experts_per_tok=2)),
    "qwen2_moe": ("Qwen2MoeConfig", dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                                         shared_expert_intermediate_size=48)),
    "qwen3_moe": ("Qwen3MoeConfig", dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                                         head_dim=16)),
}


def make_moe_model(family, path, layers, mlp_only_layers=(), seed=0):
    import transformers

    torch.manual_seed(seed)
    class_name, extra = MOE_CONFIGS[family]
    kwargs = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                  num_attention_heads=8, num_key_value_heads=4, vocab_size=256,
                  max_position_embeddings=128, tie_word_embeddings=False, **extra)
    if mlp_only_layers:
        kwargs["mlp_only_layers"] = list(mlp_only_layers)
    config = getattr(transformers, class_name)(**kwargs)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn_like(param) * 0.5)
    model.eval()
    model.save_pretrained(path)
    return model


CASES = [
    # family, layers, dense layers, flags
    ("mixtral", 2, (), {"expert_model_parallel_size": 2}),
    ("mixtral", 4, (), {"expert_model_parallel_size": 4, "tensor_model_parallel_size": 2,
                        "pipeline_model_parallel_size": 2, "moe_grouped_gemm": "true"}),
    ("qwen2_moe", 4, (1,), {"expert_model_parallel_size": 2, "tensor_model_parallel_size": 2}),
    ("qwen2_moe", 4, (), {"expert_model_parallel_size": 4, "pipeline_model_parallel_size": 2,
                          "moe_grouped_gemm": "true", "moe_grouped_gemm_format": "legacy"}),
    ("qwen3_moe", 4, (2,), {"expert_model_parallel_size": 2, "tensor_model_parallel_size": 2,
                            "pipeline_model_parallel_size": 2, "moe_grouped_gemm": "true",
                            "moe_grouped_gemm_format": "legacy"}),
    ("qwen3_moe", 4, (), {"expert_model_parallel_size": 1, "moe_grouped_gemm": "true"}),
    ("qwen3_moe", 4, (0,), {"expert_model_parallel_size": 4, "tensor_model_parallel_size": 2,
                            "pipeline_model_parallel_size": 2,
                            "virtual_pipeline_model_parallel_size": 2}),
]


def case_id(case):
    family, layers, dense, flags = case
    parts = [family, f"L{layers}"] + [f"dense{d}" for d in dense]
    short = {"expert_model_parallel_size": "ep", "tensor_model_parallel_size": "tp",
             "pipeline_model_parallel_size": "pp", "virtual_pipeline_model_parallel_size": "vpp"}
    for key, value in flags.items():
        if key in short:
            parts.append(f"{short[key]}{value}")
    if flags.get("moe_grouped_gemm") == "true":
        parts.append(flags.get("moe_grouped_gemm_format", "te"))
    return "-".join(parts)


def check_against_oracle(actual, expected):
    assert actual.keys() == expected.keys()
    for rank, stages in expected.items():
        assert actual[rank].keys() == stages.keys(), rank
        for stage, tensors in stages.items():
            got = actual[rank][stage]
            assert got.keys() == tensors.keys(), (rank, stage, sorted(set(got) ^ set(tensors)))
            for name, want in tensors.items():
                assert got[name].shape == want.shape, (rank, name, got[name].shape, want.shape)
                assert torch.equal(got[name], want), (rank, name)


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_moe_round_trip(case, tmp_path, run_convert):
    import transformers

    family, layers, dense, flags = case
    hf_dir, mca_dir, back_dir = tmp_path / "hf", tmp_path / "mca", tmp_path / "back"
    model = make_moe_model(family, hf_dir, layers, dense)
    original = hf_state(hf_dir)

    run_convert("--checkpoint_path", hf_dir, "--output_path", mca_dir, *flag_args(flags))
    cfg = json.loads((mca_dir / "mca_config.json").read_text())
    cfg["_expert_format"] = flags.get("moe_grouped_gemm_format", "te")
    moe = mca_oracle.moe_layers(cfg)
    assert moe == [i not in dense for i in range(layers)], cfg.get("moe_layer_freq")
    check_against_oracle(mca_oracle.load_rank_files(mca_dir, cfg), mca_oracle.convert(original, cfg))

    run_convert("--checkpoint_path", mca_dir, "--output_path", back_dir)
    back = hf_state(back_dir)
    assert back.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(back[name], tensor), name
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(back_dir).eval()
    assert torch.equal(logits(reloaded), logits(model))


@pytest.mark.parametrize("family", ["mixtral", "qwen3_moe"])
def test_fused_hf_experts_read(family, tmp_path, run_convert):
    """HF folders whose experts are fused 3-D tensors (transformers' in-memory layout) convert
    to the same MCA files as the published per-expert layout."""
    from safetensors.torch import save_file

    per_expert, fused, mca_a, mca_b = (tmp_path / n for n in ("per", "fused", "mca_a", "mca_b"))
    model = make_moe_model(family, per_expert, 2)
    fused.mkdir()
    shutil.copy(per_expert / "config.json", fused / "config.json")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert any(k.endswith("mlp.experts.gate_up_proj") for k in state)
    save_file(state, fused / "model.safetensors", metadata={"format": "pt"})

    flags = ["--expert_model_parallel_size", "2", "--tensor_model_parallel_size", "2"]
    run_convert("--checkpoint_path", per_expert, "--output_path", mca_a, *flags)
    run_convert("--checkpoint_path", fused, "--output_path", mca_b, *flags)
    cfg = json.loads((mca_a / "mca_config.json").read_text())
    a, b = mca_oracle.load_rank_files(mca_a, cfg), mca_oracle.load_rank_files(mca_b, cfg)
    check_against_oracle(b, a)


def test_mca_to_mca_between_expert_layouts(tmp_path, run_convert):
    """Sequential -> HF -> legacy grouped -> HF -> TE grouped -> HF is bit-exact throughout."""
    hf = tmp_path / "hf"
    make_moe_model("qwen3_moe", hf, 2)
    original = hf_state(hf)
    layouts = [[], ["--moe_grouped_gemm", "true", "--moe_grouped_gemm_format", "legacy"],
               ["--moe_grouped_gemm", "true", "--moe_grouped_gemm_format", "te"]]
    current = hf
    for i, layout in enumerate(layouts):
        mca, back = tmp_path / f"mca{i}", tmp_path / f"back{i}"
        run_convert("--checkpoint_path", current, "--output_path", mca,
                    "--expert_model_parallel_size", "2", "--tensor_model_parallel_size", "2", *layout)
        run_convert("--checkpoint_path", mca, "--output_path", back)
        state = hf_state(back)
        assert state.keys() == original.keys()
        for name, tensor in original.items():
            assert torch.equal(state[name], tensor), (i, name)
        current = back


def test_missing_expert_is_named(tmp_path, run_convert):
    """Coverage: an HF checkpoint that lacks one expert's tensor fails, naming that tensor."""
    from safetensors.torch import load_file, save_file

    hf = tmp_path / "hf"
    make_moe_model("qwen3_moe", hf, 2)
    state = load_file(hf / "model.safetensors")
    del state["model.layers.1.mlp.experts.5.up_proj.weight"]
    save_file(state, hf / "model.safetensors", metadata={"format": "pt"})
    result = run_convert("--checkpoint_path", hf, "--output_path", tmp_path / "mca",
                         "--expert_model_parallel_size", "2", expect_rc=1)
    assert "model.layers.1.mlp.experts.5.up_proj.weight" in result.stderr
    assert not (tmp_path / "mca").exists()


def test_fused_hf_experts_write(tmp_path, run_convert):
    """--hf_expert_layout fused writes transformers' in-memory expert layout: the model's own
    state_dict() tensors, bit for bit; and it converts back to the same MCA files."""
    from safetensors.torch import load_file

    hf, mca, fused, mca_again = (tmp_path / n for n in ("hf", "mca", "fused", "mca_again"))
    model = make_moe_model("qwen3_moe", hf, 2)
    flags = ["--expert_model_parallel_size", "2"]
    run_convert("--checkpoint_path", hf, "--output_path", mca, *flags)
    run_convert("--checkpoint_path", mca, "--output_path", fused, "--hf_expert_layout", "fused")
    written = load_file(fused / "model.safetensors")
    expected = model.state_dict()
    assert written.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(written[name], tensor), name
    run_convert("--checkpoint_path", fused, "--output_path", mca_again, *flags)
    cfg = json.loads((mca / "mca_config.json").read_text())
    check_against_oracle(mca_oracle.load_rank_files(mca_again, cfg), mca_oracle.load_rank_files(mca, cfg))
