"""Offline MCA -> MCA resharding (--reshard).

The resharded checkpoint must be byte-identical to converting MCA -> HF -> MCA with the same
target flags (only mca_config.json's name_or_path, the path it was made from, differs), and its
rank files must convert back to the original HF tensors.
"""
import json

import pytest
import torch

from test_dense_roundtrip import hf_state, make_hf_model, tree_bytes
from test_moe_roundtrip import make_moe_model

CASES = [
    ("llama", ["--tensor_model_parallel_size", "2", "--pipeline_model_parallel_size", "2"],
     ["--tensor_model_parallel_size", "4", "--pipeline_model_parallel_size", "1"]),
    ("qwen2", ["--tensor_model_parallel_size", "4"],
     ["--tensor_model_parallel_size", "2", "--pipeline_model_parallel_size", "2",
      "--virtual_pipeline_model_parallel_size", "2"]),
    ("qwen3_moe", ["--expert_model_parallel_size", "2", "--tensor_model_parallel_size", "2"],
     ["--expert_model_parallel_size", "4", "--pipeline_model_parallel_size", "2",
      "--moe_grouped_gemm", "true", "--moe_grouped_gemm_format", "legacy"]),
    ("mixtral", ["--expert_model_parallel_size", "4", "--moe_grouped_gemm", "true"],
     ["--expert_model_parallel_size", "2", "--tensor_model_parallel_size", "2"]),
]


def without_name_or_path(tree):
    config = json.loads(tree.pop("mca_config.json"))
    config.pop("name_or_path")
    return tree, config


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reshard_equals_two_step(case, tmp_path, run_convert):
    family, source_flags, target_flags = case
    hf, src = tmp_path / "hf", tmp_path / "src"
    if family in ("qwen3_moe", "mixtral"):
        make_moe_model(family, hf, 4)
    else:
        make_hf_model(family, hf, 4, False)
    run_convert("--checkpoint_path", hf, "--output_path", src, *source_flags)

    resharded, via_hf, via_mca = tmp_path / "resharded", tmp_path / "via_hf", tmp_path / "via_mca"
    run_convert("--checkpoint_path", src, "--output_path", resharded, "--reshard", *target_flags)
    run_convert("--checkpoint_path", src, "--output_path", via_hf)
    run_convert("--checkpoint_path", via_hf, "--output_path", via_mca, *target_flags)

    got, got_config = without_name_or_path(tree_bytes(resharded))
    want, want_config = without_name_or_path(tree_bytes(via_mca))
    assert got_config == want_config
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name

    back = tmp_path / "back"
    run_convert("--checkpoint_path", resharded, "--output_path", back)
    original, returned = hf_state(hf), hf_state(back)
    assert returned.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(returned[name], tensor), name
