"""HF -> MCA -> HF for the dense families over a matrix of parallel layouts (issue 3).

For every case: the rank files mca-convert writes load with torch.load(weights_only=True) and
hold exactly the keys, shapes and values the independent oracle (mca_oracle.py) assigns to each
rank; converting back gives the original tensors bit for bit; transformers loads the result and
gives the original logits; and an MCA folder written the reference's way (views over whole
storages) converts to the same HF tensors.
"""
import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

import mca_oracle

FAMILIES = {
    "llama": "LlamaConfig",
    "mistral": "MistralConfig",
    "qwen2": "Qwen2Config",
    "qwen3": "Qwen3Config",
}


def make_hf_model(family, path, layers, tied, dtype=torch.float32, seed=0):
    import transformers

    torch.manual_seed(seed)
    config_class = getattr(transformers, FAMILIES[family])
    kwargs = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                  num_attention_heads=8, num_key_value_heads=4, vocab_size=256,
                  max_position_embeddings=128, tie_word_embeddings=tied)
    if family == "qwen3":
        kwargs["head_dim"] = 16
    config = config_class(**kwargs)
    model = transformers.AutoModelForCausalLM.from_config(config).to(dtype)
    with torch.no_grad():
        for name, param in model.named_parameters():
            # Norm weights start at exactly 1.0 and biases at 0; make every tensor distinct.
            param.copy_(torch.randn_like(param) * 0.5)
    model.eval()
    model.save_pretrained(path)
    return model


def hf_state(path):
    state = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            state.update(load_file(os.path.join(path, name)))
    return state


def logits(model):
    ids = torch.tensor([[1, 5, 9, 77, 200, 3, 42, 8]])
    with torch.no_grad():
        return model(ids).logits


CASES = [
    # family, layers, tied, flags
    ("llama", 4, False, {}),
    ("llama", 4, False, {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2}),
    ("llama", 4, True, {"tensor_model_parallel_size": 4}),
    ("mistral", 6, False, {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 3}),
    ("qwen2", 4, False, {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2,
                         "virtual_pipeline_model_parallel_size": 2}),
    ("qwen2", 4, True, {"tensor_model_parallel_size": 4, "pipeline_model_parallel_size": 1}),
    ("qwen3", 4, True, {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2}),
    ("qwen3", 6, False, {"pipeline_model_parallel_size": 2, "virtual_pipeline_model_parallel_size": 2,
                         "account_for_embedding_in_pipeline_split": "true",
                         "account_for_loss_in_pipeline_split": "true"}),
    ("llama", 6, False, {"pipeline_model_parallel_size": 2,
                         "pipeline_model_parallel_layout": "Et|tt|tt|tL"}),
    ("mistral", 6, True, {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 3,
                          "virtual_pipeline_model_parallel_size": 2}),
]


def case_id(case):
    family, layers, tied, flags = case
    short = {"tensor_model_parallel_size": "tp", "pipeline_model_parallel_size": "pp",
             "virtual_pipeline_model_parallel_size": "vpp",
             "account_for_embedding_in_pipeline_split": "acc_emb",
             "account_for_loss_in_pipeline_split": "acc_loss",
             "pipeline_model_parallel_layout": "layout"}
    parts = [family, f"L{layers}", "tied" if tied else "untied"]
    parts += [f"{short[k]}{'' if k.startswith('account') or 'layout' in k else v}" for k, v in flags.items()]
    return "-".join(parts)


def flag_args(flags):
    args = []
    for key, value in flags.items():
        args += [f"--{key}", str(value)]
    return args


def write_reference_style(oracle_files, cfg, mca_dir, src_mca_dir):
    """An MCA folder as the reference writes it: torch.save of chunk views (whole storages)."""
    os.makedirs(mca_dir)
    shutil.copy(os.path.join(src_mca_dir, "mca_config.json"), mca_dir)
    with open(os.path.join(mca_dir, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("1")
    for (t, p, e), stages in oracle_files.items():
        rank = os.path.join(mca_dir, "iter_0000001", mca_oracle.rank_dir(t, p, e, cfg))
        os.makedirs(rank)
        torch.save(stages, os.path.join(rank, "model_optim_rng.pt"))


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_dense_round_trip(case, tmp_path, run_convert):
    import transformers

    family, layers, tied, flags = case
    hf_dir, mca_dir, back_dir = tmp_path / "hf", tmp_path / "mca", tmp_path / "back"
    model = make_hf_model(family, hf_dir, layers, tied)
    original = hf_state(hf_dir)

    run_convert("--checkpoint_path", hf_dir, "--output_path", mca_dir, *flag_args(flags))
    cfg = json.loads((mca_dir / "mca_config.json").read_text())
    assert cfg["hf_model_type"] == family
    assert (mca_dir / "latest_checkpointed_iteration.txt").read_text() == "1"

    # Every rank file holds exactly what the oracle assigns to it, bit for bit.
    expected = mca_oracle.convert(original, cfg)
    actual = mca_oracle.load_rank_files(mca_dir, cfg)
    mapped = mca_oracle.load_rank_files(mca_dir, cfg, mmap=True)
    assert {r: {s: set(t) for s, t in st.items()} for r, st in mapped.items()} == \
        {r: {s: set(t) for s, t in st.items()} for r, st in actual.items()}
    assert actual.keys() == expected.keys()
    for rank, stages in expected.items():
        assert actual[rank].keys() == stages.keys(), rank
        for stage, tensors in stages.items():
            got = actual[rank][stage]
            assert got.keys() == tensors.keys(), (rank, stage, set(got) ^ set(tensors))
            for name, want in tensors.items():
                assert got[name].dtype == want.dtype, (rank, name)
                assert got[name].shape == want.shape, (rank, name)
                assert torch.equal(got[name], want), (rank, name)

    # Back to HF: bit-exact, loadable, same logits.
    run_convert("--checkpoint_path", mca_dir, "--output_path", back_dir)
    back = hf_state(back_dir)
    assert back.keys() == original.keys()
    for name, tensor in original.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(back_dir).eval()
    assert torch.equal(logits(reloaded), logits(model))

    # A reference-style folder (views over whole storages) converts to the same tensors.
    ref_dir, ref_back = tmp_path / "ref_mca", tmp_path / "ref_back"
    write_reference_style(expected, cfg, ref_dir, mca_dir)
    run_convert("--checkpoint_path", ref_dir, "--output_path", ref_back)
    ref_state = hf_state(ref_back)
    assert ref_state.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(ref_state[name], tensor), name


def test_bf16_cast_matches_torch(tmp_path, run_convert):
    hf_dir, mca_dir, back_dir = tmp_path / "hf", tmp_path / "mca", tmp_path / "back"
    make_hf_model("llama", hf_dir, 2, False)
    original = hf_state(hf_dir)
    run_convert("--checkpoint_path", hf_dir, "--output_path", mca_dir, "--bf16",
                "--tensor_model_parallel_size", "2")
    cfg = json.loads((mca_dir / "mca_config.json").read_text())
    assert cfg["bf16"] is True
    run_convert("--checkpoint_path", mca_dir, "--output_path", back_dir)
    back = hf_state(back_dir)
    for name, tensor in original.items():
        want = tensor.to(torch.bfloat16)
        assert back[name].dtype == torch.bfloat16
        assert torch.equal(back[name].view(torch.int16), want.view(torch.int16)), name
    config = json.loads((back_dir / "config.json").read_text())
    assert config.get("torch_dtype", config.get("dtype")) == "bfloat16"


def tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_output_is_deterministic(tmp_path, run_convert):
    """The same input converted twice gives identical bytes, in both directions."""
    hf = tmp_path / "hf"
    make_hf_model("qwen2", hf, 4, False)
    flags = ["--tensor_model_parallel_size", "2", "--pipeline_model_parallel_size", "2"]
    run_convert("--checkpoint_path", hf, "--output_path", tmp_path / "a", *flags)
    run_convert("--checkpoint_path", hf, "--output_path", tmp_path / "b", "--threads", "1", *flags)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    run_convert("--checkpoint_path", tmp_path / "a", "--output_path", tmp_path / "a_hf")
    run_convert("--checkpoint_path", tmp_path / "b", "--output_path", tmp_path / "b_hf", "--threads", "1")
    assert tree_bytes(tmp_path / "a_hf") == tree_bytes(tmp_path / "b_hf")


def test_sharded_output_and_model_max_length(tmp_path, run_convert):
    """--max_shard_size splits HF output the transformers way; --convert_model_max_length sets
    max_position_embeddings and model_max_length in config.json (tokenizer_config.json is left
    as it was, like the reference)."""
    import transformers

    hf, mca, back = tmp_path / "hf", tmp_path / "mca", tmp_path / "back"
    model = make_hf_model("llama", hf, 4, False)
    run_convert("--checkpoint_path", hf, "--output_path", mca)
    run_convert("--checkpoint_path", mca, "--output_path", back, "--max_shard_size", "200KB",
                "--convert_model_max_length", "4096")
    index = json.loads((back / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    config = json.loads((back / "config.json").read_text())
    assert config["max_position_embeddings"] == 4096 and config["model_max_length"] == 4096
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(back).eval()
    assert torch.equal(logits(reloaded), logits(model))
