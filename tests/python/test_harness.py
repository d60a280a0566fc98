"""Checks of the test harness itself: the shipped model and the helpers in models.py."""

import subprocess
import sys

import pytest
import torch
import transformers

import models
from conftest import REPO_ROOT, TINY_LLAMA


def test_shipped_model_is_what_the_script_makes(tmp_path):
    # tokenizer.json is left out: its bytes depend on the (unpinned) tokenizers release.
    subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "make_tiny_model.py"),
                    "--output", str(tmp_path)], check=True, capture_output=True)
    for name in ("model.safetensors", "config.json", "generation_config.json"):
        assert (tmp_path / name).read_bytes() == (TINY_LLAMA / name).read_bytes(), name


def test_shipped_model_loads_offline():
    tokenizer = transformers.AutoTokenizer.from_pretrained(TINY_LLAMA)
    model = transformers.AutoModelForCausalLM.from_pretrained(TINY_LLAMA)
    assert model.dtype == torch.bfloat16
    assert len(tokenizer) == model.config.vocab_size == 512
    ids = tokenizer("a checkpoint", return_tensors="pt").input_ids
    assert ids[0, 0].item() == tokenizer.bos_token_id
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], 512)


@pytest.mark.parametrize("family", sorted(models.FAMILIES))
def test_tiny_models_are_seeded(family, tmp_path):
    layers = 6 if family in models.MOE_FAMILIES else 4
    first = models.make_tiny_model(family, tmp_path / "a", seed=7, num_hidden_layers=layers)
    second = models.make_tiny_model(family, tmp_path / "b", seed=7, num_hidden_layers=layers)
    other = models.make_tiny_model(family, tmp_path / "c", seed=8, num_hidden_layers=layers)
    weights = models.load_safetensors_dir(first)
    models.assert_state_dicts_equal(weights, models.load_safetensors_dir(second))
    assert models.state_dict_differences(weights, models.load_safetensors_dir(other))
    assert torch.equal(models.model_logits(first), models.model_logits(second))
    assert not torch.equal(models.model_logits(first), models.model_logits(other))


def test_sharded_and_single_file_hold_the_same_tensors(tmp_path):
    single = models.make_tiny_model("qwen2", tmp_path / "one", seed=3, dtype=torch.bfloat16)
    sharded = models.make_tiny_model("qwen2", tmp_path / "many", seed=3, dtype=torch.bfloat16,
                                     max_shard_size="40KB")
    assert (sharded / "model.safetensors.index.json").exists()
    models.assert_state_dicts_equal(models.load_safetensors_dir(single),
                                    models.load_safetensors_dir(sharded))


def test_comparison_sees_every_kind_of_difference():
    zeros = torch.zeros(3)
    negative_zero = torch.tensor([0.0, -0.0, 0.0])
    assert models.state_dict_differences({"x": zeros}, {"x": negative_zero}) == ["x: values differ"]
    assert "dtype" in models.state_dict_differences({"x": zeros}, {"x": zeros.double()})[0]
    assert "shape" in models.state_dict_differences({"x": zeros}, {"x": torch.zeros(1, 3)})[0]
    assert models.state_dict_differences({"x": zeros}, {}) == ["missing: x"]
    assert models.state_dict_differences({}, {"x": zeros}) == ["unexpected: x"]
    with pytest.raises(AssertionError, match="1 tensor"):
        models.assert_state_dicts_equal({"x": zeros}, {"x": negative_zero})


def test_run_convert_reports_the_exit_code(run_convert):
    result = run_convert("--help", expect_rc=None)
    assert isinstance(result.returncode, int)
