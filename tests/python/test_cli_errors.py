"""Bad arguments and bad input, end to end: exact exit codes and one-line messages.

Usage errors exit 2 before anything is created; conversion failures exit 1 naming the file, the
tensor and (where the format has one) the byte offset. After every failure nothing exists at the
output path (nor any parent folder the run would have made), no temporary folder remains beside
it, and the inputs are byte-for-byte unchanged. Expected names, shapes, offsets and differences
are computed here from the real files (safetensors, torch, zipfile), not written in by hand.
"""

import hashlib
import json
import pathlib
import shutil
import struct
import subprocess
import sys
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

import models

MESSAGE_PREFIX = "mca-convert: error: "


# ---- helpers shared with test_safe_output.py -------------------------------------------------

def tree_digest(root) -> dict:
    """relative path -> sha256 of every file under `root` ('<dir>' for folders)."""
    root = pathlib.Path(root)
    digest = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        digest[key] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def leftovers(folder) -> list:
    """Entries of `folder` (recursively) a run may leave behind: temporary or old outputs."""
    return sorted(str(p) for p in pathlib.Path(folder).rglob("*") if "mcaconv" in p.name)


def error_line(result) -> str:
    """The single stderr line of a failed run, without the prefix; asserts it is one line."""
    assert result.stdout == "", result.stdout
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, repr(result.stderr)
    assert result.stderr.startswith(MESSAGE_PREFIX), result.stderr
    return result.stderr[len(MESSAGE_PREFIX):-1]


def expect_failure(run_convert, rc, inputs, output, *args):
    """Runs a conversion that must fail with `rc` and returns its one-line message.

    Checks that the run created nothing: not the output, not a missing parent folder of it, no
    temporary folder beside it; and that every input folder is byte-for-byte unchanged.
    """
    output = pathlib.Path(output)
    missing_root = output  # the outermost folder of the output path that does not exist yet
    while not missing_root.parent.exists():
        missing_root = missing_root.parent
    assert not missing_root.exists()
    before = {str(i): tree_digest(i) for i in inputs}
    result = run_convert(*args, "--output_path", output, expect_rc=rc)
    message = error_line(result)
    assert not missing_root.exists(), f"{missing_root} was created"
    assert leftovers(missing_root.parent) == []
    for i in inputs:
        assert tree_digest(i) == before[str(i)], f"input {i} changed"
    return message


def safetensors_header(path):
    """(header dict, data start) of a safetensors file, parsed here independently."""
    raw = pathlib.Path(path).read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), 8 + length


# ---- models ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Seeded tiny models (read-only for the tests) and an MCA TP-2 conversion of the llama."""
    root = tmp_path_factory.mktemp("zoo")
    made = {
        "llama": models.make_tiny_model("llama", root / "llama"),
        "sharded": models.make_tiny_model("llama", root / "sharded", max_shard_size="100KB"),
        "mixtral": models.make_tiny_model("mixtral", root / "mixtral"),
        "groups": models.make_tiny_model("llama", root / "groups", num_attention_heads=8,
                                         num_key_value_heads=2),
        "vocab": models.make_tiny_model("llama", root / "vocab", vocab_size=255),
        "ffn": models.make_tiny_model("llama", root / "ffn", intermediate_size=129),
    }
    return made


@pytest.fixture(scope="module")
def mca_tp2(zoo, tmp_path_factory, mca_convert):
    out = tmp_path_factory.mktemp("mca") / "tp2"
    subprocess.run([str(mca_convert), "--checkpoint_path", str(zoo["llama"]), "--output_path",
                    str(out), "--tensor_model_parallel_size", "2"], check=True,
                   capture_output=True)
    return out


def config_of(path):
    return json.loads((pathlib.Path(path) / "config.json").read_text())


def copy_model(source, dest):
    shutil.copytree(source, dest)
    return dest


def rank_file(mca_dir, rank):
    return mca_dir / "iter_0000001" / f"mp_rank_{rank:02d}" / "model_optim_rng.pt"


# ---- usage errors: exit 2, one line, nothing created -----------------------------------------

def test_unknown_flag_suggests_the_closest(zoo, tmp_path, run_convert):
    message = expect_failure(run_convert, 2, [zoo["llama"]], tmp_path / "a" / "out",
                             "--checkpoint_path", zoo["llama"], "--tensor_model_paralel_size", "2")
    assert message == ("unknown flag --tensor_model_paralel_size; "
                       "did you mean --tensor_model_parallel_size?")
    message = expect_failure(run_convert, 2, [zoo["llama"]], tmp_path / "a" / "out",
                             "--checkpoint-pth", zoo["llama"])
    assert message == "unknown flag --checkpoint-pth; did you mean --checkpoint-path?"


def test_bf16_with_fp16(zoo, tmp_path, run_convert):
    message = expect_failure(run_convert, 2, [zoo["llama"]], tmp_path / "out",
                             "--checkpoint_path", zoo["llama"], "--bf16", "--fp16")
    assert "--bf16" in message and "--fp16" in message


def test_missing_checkpoint_path(tmp_path, run_convert):
    message = expect_failure(run_convert, 2, [], tmp_path / "out")
    assert message.startswith("the following arguments are required: --checkpoint_path")


def test_missing_checkpoint_folder(tmp_path, run_convert):
    message = expect_failure(run_convert, 2, [], tmp_path / "out",
                             "--checkpoint_path", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in message


@pytest.mark.parametrize("model, field, flag, size", [
    ("llama", "num_attention_heads", "tensor_model_parallel_size", 3),
    ("groups", "num_query_groups", "tensor_model_parallel_size", 4),
    ("vocab", "padded_vocab_size", "tensor_model_parallel_size", 2),
    ("ffn", "ffn_hidden_size", "tensor_model_parallel_size", 2),
    ("mixtral", "num_moe_experts", "expert_model_parallel_size", 3),
])
def test_size_not_divisible(zoo, tmp_path, run_convert, model, field, flag, size):
    config = config_of(zoo[model])
    value = {"num_attention_heads": config["num_attention_heads"],
             "num_query_groups": config["num_key_value_heads"],
             "padded_vocab_size": config["vocab_size"],
             "ffn_hidden_size": config["intermediate_size"],
             "num_moe_experts": config.get("num_local_experts")}[field]
    assert value % size != 0  # the case really is indivisible
    message = expect_failure(run_convert, 2, [zoo[model]], tmp_path / "out",
                             "--checkpoint_path", zoo[model], f"--{flag}", size)
    assert f"{field} ({value}) is not divisible by {flag} ({size})" in message


@pytest.mark.parametrize("pp, vpp", [(3, None), (2, 4)])
def test_layers_not_divisible_across_stages(zoo, tmp_path, run_convert, pp, vpp):
    layers = config_of(zoo["llama"])["num_hidden_layers"]
    assert layers % (pp * (vpp or 1)) != 0
    args = ["--pipeline_model_parallel_size", pp]
    if vpp:
        args += ["--virtual_pipeline_model_parallel_size", vpp]
    message = expect_failure(run_convert, 2, [zoo["llama"]], tmp_path / "out",
                             "--checkpoint_path", zoo["llama"], *args)
    assert f"num_layers ({layers}" in message
    assert f"({pp} * {vpp or 1})" in message


@pytest.mark.parametrize("layout", ["Et|tx|tL", "Et|tt", "E(t|*2L"])
def test_bad_layout_string(zoo, tmp_path, run_convert, layout):
    message = expect_failure(run_convert, 2, [zoo["llama"]], tmp_path / "out",
                             "--checkpoint_path", zoo["llama"], "--pipeline_model_parallel_size",
                             "2", "--pipeline_model_parallel_layout", layout)
    assert "layout" in message and layout in message


def test_output_folder_not_empty(zoo, tmp_path, run_convert):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    before = tree_digest(tmp_path)
    result = run_convert("--checkpoint_path", zoo["llama"], "--output_path", output, expect_rc=2)
    assert error_line(result) == (f"output folder {output} is not empty; "
                                  "pass --overwrite to replace it")
    assert tree_digest(tmp_path) == before


def test_output_inside_input_and_input_inside_output(zoo, tmp_path, run_convert):
    model = copy_model(zoo["llama"], tmp_path / "work" / "model")
    before = tree_digest(tmp_path)
    for output in (f"{model}/converted", str(model), f"{tmp_path}/work", f"{model}/../"):
        result = run_convert("--checkpoint_path", model, "--output_path", output, "--overwrite",
                             expect_rc=2)
        assert error_line(result) == (f"output path {output} overlaps input {model}; "
                                      "choose a separate folder")
        assert tree_digest(tmp_path) == before


def test_usage_error_with_overwrite_keeps_the_old_output(zoo, tmp_path, run_convert):
    output = tmp_path / "out"
    output.mkdir()
    (output / "old.txt").write_text("old")
    before = tree_digest(output)
    run_convert("--checkpoint_path", zoo["llama"], "--output_path", output, "--overwrite",
                "--tensor_model_parallel_size", "3", expect_rc=2)
    assert tree_digest(output) == before


# ---- conversion failures: exit 1, one line naming file, tensor, offset -----------------------

def test_truncated_safetensors_shard(zoo, tmp_path, run_convert):
    model = copy_model(zoo["sharded"], tmp_path / "model")
    index = json.loads((model / "model.safetensors.index.json").read_text())
    shard = model / sorted(set(index["weight_map"].values()))[2]
    header, data_start = safetensors_header(shard)
    new_size = shard.stat().st_size - 100
    with open(shard, "r+b") as f:
        f.truncate(new_size)
    cut = {name: data_start + info["data_offsets"][1] for name, info in header.items()
           if name != "__metadata__" and data_start + info["data_offsets"][1] > new_size}
    assert cut
    message = expect_failure(run_convert, 1, [model], tmp_path / "out",
                             "--checkpoint_path", model)
    assert message.startswith(f"{shard}: offset ")
    named = [name for name in cut if f'"{name}"' in message]
    assert len(named) == 1, message
    assert f"ends at file offset {cut[named[0]]}" in message
    assert f"{new_size}-byte file" in message


def test_missing_shard_listed_in_index(zoo, tmp_path, run_convert):
    model = copy_model(zoo["sharded"], tmp_path / "model")
    index = json.loads((model / "model.safetensors.index.json").read_text())
    missing = sorted(set(index["weight_map"].values()))[4]
    (model / missing).unlink()
    message = expect_failure(run_convert, 1, [model], tmp_path / "out",
                             "--checkpoint_path", model)
    listed = sorted(name for name, shard in index["weight_map"].items() if shard == missing)
    assert message.startswith(f"{model / missing}: missing shard")
    assert any(name in message for name in listed)


def rewrite_safetensors(model, edit):
    path = model / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})
    return path


def test_tensor_with_wrong_shape(zoo, tmp_path, run_convert):
    model = copy_model(zoo["llama"], tmp_path / "model")
    name = "model.layers.1.mlp.up_proj.weight"
    expected = list(load_file(model / "model.safetensors")[name].shape)
    path = rewrite_safetensors(model, lambda t: t.__setitem__(name, torch.zeros(100, 64)))
    message = expect_failure(run_convert, 1, [model], tmp_path / "out", "--checkpoint_path", model)
    assert message == (f"{path}: tensor {name} has shape [100, 64], expected "
                       f"[{expected[0]}, {expected[1]}] from config.json")


def test_unexpected_extra_tensor(zoo, tmp_path, run_convert):
    model = copy_model(zoo["llama"], tmp_path / "model")
    name = "model.layers.1.mlp.extra_proj.weight"
    path = rewrite_safetensors(model, lambda t: t.__setitem__(name, torch.zeros(4)))
    message = expect_failure(run_convert, 1, [model], tmp_path / "out", "--checkpoint_path", model)
    assert message.startswith(f"{path}: unexpected tensor {name}")


def test_missing_tensor(zoo, tmp_path, run_convert):
    model = copy_model(zoo["llama"], tmp_path / "model")
    name = "model.layers.2.self_attn.k_proj.weight"
    rewrite_safetensors(model, lambda t: t.pop(name))
    message = expect_failure(run_convert, 1, [model], tmp_path / "out", "--checkpoint_path", model)
    assert f"tensor {name}" in message and "missing" in message
    assert str(model) in message


def test_missing_rank_file(mca_tp2, tmp_path, run_convert):
    mca = copy_model(mca_tp2, tmp_path / "mca")
    rank_file(mca, 1).unlink()
    message = expect_failure(run_convert, 1, [mca], tmp_path / "out", "--checkpoint_path", mca)
    assert message.startswith(f"{rank_file(mca, 1)}: missing rank file")


def test_truncated_rank_file(mca_tp2, tmp_path, run_convert):
    mca = copy_model(mca_tp2, tmp_path / "mca")
    path = rank_file(mca, 1)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    message = expect_failure(run_convert, 1, [mca], tmp_path / "out", "--checkpoint_path", mca)
    assert message.startswith(f"{path}: offset ")
    assert "truncated" in message


def test_flipped_zip_signature_of_a_tensor_record(mca_tp2, tmp_path, run_convert):
    mca = copy_model(mca_tp2, tmp_path / "mca")
    path = rank_file(mca, 1)
    with zipfile.ZipFile(path) as archive:
        record = next(i for i in archive.infolist() if i.filename.endswith("/data/3"))
    raw = bytearray(path.read_bytes())
    assert raw[record.header_offset:record.header_offset + 4] == b"PK\x03\x04"
    raw[record.header_offset + 1] ^= 0xFF
    path.write_bytes(bytes(raw))
    message = expect_failure(run_convert, 1, [mca], tmp_path / "out", "--checkpoint_path", mca)
    assert message.startswith(f"{path}: offset {record.header_offset}: ")
    assert "signature" in message


def test_hostile_pickle_is_rejected_without_running_it(mca_tp2, tmp_path, run_convert):
    mca = copy_model(mca_tp2, tmp_path / "mca")
    path = rank_file(mca, 1)
    marker = tmp_path / "pwned"

    def payload(target):
        command = f"touch {target}".encode()
        return (b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(command)) + command +
                b"\x85R.")

    with zipfile.ZipFile(path) as archive:
        entries = [(i.filename, archive.read(i.filename)) for i in archive.infolist()]
    pkl_name = next(name for name, _ in entries if name.endswith("data.pkl"))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            archive.writestr(name, payload(marker) if name == pkl_name else data)

    # The payload is live: Python's own unpickler runs it (against a different marker).
    control = tmp_path / "control"
    unpickle = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", unpickle], input=payload(control), check=True)
    assert control.exists()

    message = expect_failure(run_convert, 1, [mca], tmp_path / "out", "--checkpoint_path", mca)
    assert not marker.exists()
    assert message.startswith(f"{path}: record '{pkl_name}'")
    assert "os.system" in message and "offset" in message


# ---- replicas across TP ranks ----------------------------------------------------------------

REPLICATED = "decoder.layers.1.self_attention.linear_qkv.layer_norm_weight"


@pytest.fixture
def skewed_replica(mca_tp2, tmp_path):
    """A TP-2 folder whose rank-1 copy of one layernorm differs; returns (folder, largest diff)."""
    mca = copy_model(mca_tp2, tmp_path / "mca")
    state = torch.load(rank_file(mca, 1), weights_only=True)
    reference = torch.load(rank_file(mca, 0), weights_only=True)["model"][REPLICATED]
    state["model"][REPLICATED][3] += 1e-3
    state["model"][REPLICATED][5] -= 2e-4
    torch.save(state, rank_file(mca, 1))
    diff = (state["model"][REPLICATED].double() - reference.double()).abs().max().item()
    return mca, diff


def test_inconsistent_replicas_are_an_error(skewed_replica, tmp_path, run_convert):
    mca, diff = skewed_replica
    message = expect_failure(run_convert, 1, [mca], tmp_path / "out", "--checkpoint_path", mca)
    assert f"mp_rank_01/model/{REPLICATED}" in message
    assert f"mp_rank_00/model/{REPLICATED}" in message
    assert str(rank_file(mca, 1)) in message and "first at element 3" in message
    assert f"largest absolute difference {diff:.9g}" in message


def test_replica_check_rank0_accepts_them(skewed_replica, tmp_path, run_convert):
    mca, _ = skewed_replica
    out = tmp_path / "out"
    run_convert("--checkpoint_path", mca, "--output_path", out, "--replica_check", "rank0")
    rank0 = torch.load(rank_file(mca, 0), weights_only=True)["model"][REPLICATED]
    converted = load_file(out / "model.safetensors")["model.layers.1.input_layernorm.weight"]
    assert torch.equal(converted, rank0)


def test_replica_tolerance(skewed_replica, tmp_path, run_convert):
    mca, diff = skewed_replica
    run_convert("--checkpoint_path", mca, "--output_path", tmp_path / "ok", "--replica_check",
                "tolerance", "--replica_tolerance", f"{diff * 2:.9g}")
    message = expect_failure(run_convert, 1, [mca], tmp_path / "out", "--checkpoint_path", mca,
                             "--replica_check", "tolerance", "--replica_tolerance",
                             f"{diff / 2:.9g}")
    assert f"largest absolute difference {diff:.9g} (tolerance {diff / 2:.9g})" in message
