"""`mca-convert inspect` against what torch, safetensors and transformers report.

Every checkpoint is made here by the real libraries (seeded tiny Llama); the binary's JSON listing
must name the same tensors with the same dtypes, shapes and byte counts, and list the non-tensor
entries of torch files with their kinds.
"""

import argparse
import io
import json
import subprocess

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

transformers = pytest.importorskip("transformers")


def tiny_llama_model(dtype):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      vocab_size=256)
    return transformers.LlamaForCausalLM(config).to(dtype)


def run_inspect(binary, path, *extra, expect_rc=0):
    result = subprocess.run([str(binary), "inspect", str(path), *extra], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == expect_rc, result.stderr
    return result


def inspect_json(binary, path):
    return json.loads(run_inspect(binary, path, "--json").stdout)


def dtype_name(tensor):
    return str(tensor.dtype).removeprefix("torch.")


def expected_entry(name, tensor, file):
    return {"name": name, "dtype": dtype_name(tensor), "shape": list(tensor.shape),
            "bytes": tensor.numel() * tensor.element_size(), "file": file}


def safetensors_entries(folder, file):
    with safe_open(str(folder / file), framework="pt") as f:
        return [expected_entry(name, f.get_tensor(name), file) for name in f.keys()]


def by_name(entries):
    return {e["name"]: e for e in entries}


def check_report(report, expected):
    assert by_name(report["tensors"]) == by_name(expected)
    assert report["total_tensors"] == len(expected)
    assert report["total_bytes"] == sum(e["bytes"] for e in expected)


def test_hf_folder_single_file(mca_convert, tmp_path):
    folder = tmp_path / "hf"
    tiny_llama_model(torch.bfloat16).save_pretrained(folder)
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    assert files == ["model.safetensors"]

    report = inspect_json(mca_convert, folder)
    assert report["layout"] == "HF folder"
    assert [f["path"] for f in report["files"]] == files
    assert report["files"][0]["metadata"].get("format") == "pt"
    check_report(report, safetensors_entries(folder, "model.safetensors"))
    assert {t["dtype"] for t in report["tensors"]} == {"bfloat16"}


def test_hf_folder_sharded_with_index(mca_convert, tmp_path):
    folder = tmp_path / "hf"
    tiny_llama_model(torch.float32).save_pretrained(folder, max_shard_size="100KB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1

    report = inspect_json(mca_convert, folder)
    assert [f["path"] for f in report["files"]] == shards
    expected = [e for shard in shards for e in safetensors_entries(folder, shard)]
    check_report(report, expected)
    for tensor in report["tensors"]:
        assert tensor["file"] == index["weight_map"][tensor["name"]]


def test_nested_torch_checkpoint(mca_convert, tmp_path):
    model = tiny_llama_model(torch.float32)
    state = dict(model.state_dict())
    # A transposed view and a row slice: inspect reports the view's shape, not its storage.
    state["extra.transposed"] = state["lm_head.weight"].t()
    state["extra.rows"] = state["model.embed_tokens.weight"][8:24]
    path = tmp_path / "model_optim_rng.pt"
    torch.save({"model": state, "iteration": 3,
                "args": argparse.Namespace(tensor_model_parallel_size=1, seed=1234),
                "_extra": io.BytesIO(b"transformer-engine extra state")}, path)

    report = inspect_json(mca_convert, path)
    assert report["layout"] == "torch file"
    assert [f["path"] for f in report["files"]] == [path.name]
    loaded = torch.load(path, weights_only=False)
    expected = [expected_entry("model/" + name, tensor, path.name)
                for name, tensor in loaded["model"].items()]
    check_report(report, expected)

    non_tensors = by_name(report["non_tensors"])
    assert set(non_tensors) == {"iteration", "args", "_extra"}
    assert non_tensors["iteration"]["kind"] == "int"
    assert non_tensors["iteration"]["value"] == str(loaded["iteration"])
    assert non_tensors["args"]["kind"] == "object"
    assert non_tensors["args"]["value"] == "argparse.Namespace"
    assert non_tensors["_extra"]["kind"] == "object"
    assert non_tensors["_extra"]["value"] == type(loaded["_extra"]).__module__ + ".BytesIO"


def test_mca_folder_lists_every_rank_file(mca_convert, tmp_path):
    folder = tmp_path / "mca"
    (folder / "iter_0000001").mkdir(parents=True)
    (folder / "mca_config.json").write_text("{}")
    (folder / "latest_checkpointed_iteration.txt").write_text("1")
    torch.manual_seed(1)
    expected = []
    # Rank directories sort numerically: mp_rank_99 before mp_rank_100.
    for rank, tp in enumerate([100, 99]):
        relative = f"iter_0000001/mp_rank_{tp:02d}/model_optim_rng.pt"
        (folder / relative).parent.mkdir()
        weights = {f"decoder.layers.0.mlp.linear_fc{rank + 1}.weight": torch.randn(8, 4 + rank),
                   "decoder.final_layernorm.weight": torch.ones(4, dtype=torch.bfloat16)}
        torch.save({"model": weights}, folder / relative)
        expected += [expected_entry("model/" + n, t, relative) for n, t in weights.items()]

    report = inspect_json(mca_convert, folder)
    assert report["layout"] == "MCA folder"
    assert [f["path"] for f in report["files"]] == [
        "iter_0000001/mp_rank_99/model_optim_rng.pt", "iter_0000001/mp_rank_100/model_optim_rng.pt"]
    assert [f["tensors"] for f in report["files"]] == [2, 2]
    assert sorted(report["tensors"], key=lambda e: (e["file"], e["name"])) == \
        sorted(expected, key=lambda e: (e["file"], e["name"]))


def test_table_lists_names_dtypes_and_totals(mca_convert, tmp_path):
    path = tmp_path / "weights.safetensors"
    model = tiny_llama_model(torch.float16)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    table = run_inspect(mca_convert, path).stdout
    for name, tensor in model.state_dict().items():
        row = next(line for line in table.splitlines() if line.startswith(name + " "))
        assert "float16" in row and str(list(tensor.shape)) in row
    assert f"total: {len(model.state_dict())} tensors" in table


def test_errors_have_one_line_and_exit_codes(mca_convert, tmp_path):
    missing = run_inspect(mca_convert, tmp_path / "nope", expect_rc=1)
    assert missing.stderr.startswith("mca-convert: error: ")
    assert missing.stderr.count("\n") == 1
    usage = run_inspect(mca_convert, tmp_path, "--jsn", expect_rc=2)
    assert "did you mean --json?" in usage.stderr
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    bad = run_inspect(mca_convert, garbage, expect_rc=1)
    assert bad.stderr.count("\n") == 1 and "garbage.safetensors" in bad.stderr
