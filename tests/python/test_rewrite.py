"""`mca-convert rewrite IN OUT`: checked against files torch and safetensors write and read."""

import zipfile

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def _seeded_tensors():
    gen = torch.Generator().manual_seed(1234)
    return {
        "embed.weight": torch.randn(37, 16, generator=gen),
        "layers.0.attn.q.weight": torch.randn(16, 16, generator=gen).to(torch.bfloat16),
        "layers.0.norm.weight": torch.randn(16, generator=gen).to(torch.float16),
        "layers.0.bias": torch.randn(3, 5, 7, generator=gen).double(),
        "position_ids": torch.arange(40, dtype=torch.int64).reshape(5, 8),
        "mask": torch.rand(4, 4, generator=gen) > 0.5,
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        # Values a cast must keep bit-exact as torch rounds them: ties, subnormals, inf, NaN.
        "edge": torch.tensor([1.0 + 2**-8, 1.0 + 3 * 2**-8, 1e-40, -0.0, float("inf"),
                              float("nan"), 65519.0, 65520.0, 3.4e38, 1e-8]),
    }


def _assert_equal(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name, tensor in expected.items():
        got = actual[name]
        assert got.dtype == tensor.dtype, name
        assert got.shape == tensor.shape, name
        assert got.is_contiguous(), name
        # Bitwise, as bytes, so that NaN payloads and -0.0 count.
        assert torch.equal(got.reshape(-1).view(torch.uint8),
                           tensor.contiguous().reshape(-1).view(torch.uint8)), name


def _cast(tensors, dtype):
    floats = (torch.float32, torch.bfloat16, torch.float16)
    return {k: (v.to(dtype) if v.dtype in floats else v) for k, v in tensors.items()}


def _views_checkpoint():
    """A torch.save dict whose tensors are views: slices, transposes, shared and offset storage."""
    gen = torch.Generator().manual_seed(99)
    base = torch.randn(12, 10, generator=gen)
    packed = torch.randn(3, 8, 6, generator=gen).to(torch.bfloat16)
    return {
        "transposed": base.t(),
        "row_slice": base[3:7],
        "column_slice": base[:, 2:9:3],
        "same_storage": base,
        "packed_middle": packed[1],
        "permuted": packed.permute(2, 0, 1),
        "expanded": torch.randn(1, 5, generator=gen).expand(4, 5),
        "half": torch.randn(6, 4, generator=gen).half()[::2],
        "ints": torch.arange(30, dtype=torch.int32).reshape(5, 6).t(),
        "nested": {"inner.weight": base[0], "list": [packed[2, 3], torch.ones(2)]},
        "step": 7,
        "note": "not a tensor",
    }


def _flatten(value, prefix=""):
    """Tensors of a nested dict/list keyed as rewrite names them: path joined with '/'."""
    out = {}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(item, torch.Tensor):
            out[name] = item
        elif isinstance(item, (dict, list, tuple)):
            out.update(_flatten(item, name))
    return out


def test_safetensors_roundtrip_is_byte_identical(run_convert, tmp_path):
    tensors = _seeded_tensors()
    source = tmp_path / "in.safetensors"
    save_file(tensors, source, metadata={"format": "pt"})
    out = tmp_path / "out.safetensors"
    run_convert("rewrite", source, out)
    assert out.read_bytes() == source.read_bytes()
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        _assert_equal({k: f.get_tensor(k) for k in f.keys()}, tensors)


@pytest.mark.parametrize("flag,dtype", [("--bf16", torch.bfloat16), ("--fp16", torch.float16),
                                        ("--fp32", torch.float32)])
def test_safetensors_cast_matches_torch(run_convert, tmp_path, flag, dtype):
    tensors = _seeded_tensors()
    source = tmp_path / "in.safetensors"
    save_file(tensors, source, metadata={"format": "pt"})
    out = tmp_path / "out.safetensors"
    run_convert("rewrite", source, out, flag, "--threads", 2)
    expected = _cast(tensors, dtype)
    _assert_equal(load_file(out), expected)
    # Laid out exactly as the reference writer would lay out the cast tensors.
    reference = tmp_path / "reference.safetensors"
    save_file(expected, reference, metadata={"format": "pt"})
    assert out.read_bytes() == reference.read_bytes()


def test_torch_views_to_safetensors(run_convert, tmp_path):
    checkpoint = _views_checkpoint()
    source = tmp_path / "views.pt"
    torch.save(checkpoint, source)
    out = tmp_path / "flat.safetensors"
    run_convert("rewrite", source, out)
    expected = {k: v.contiguous() for k, v in _flatten(checkpoint).items()}
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        _assert_equal({k: f.get_tensor(k) for k in f.keys()}, expected)


@pytest.mark.parametrize("suffix", [".pt", ".bin"])
def test_torch_views_to_torch(run_convert, tmp_path, suffix):
    checkpoint = _views_checkpoint()
    source = tmp_path / "views.pt"
    torch.save(checkpoint, source)
    out = tmp_path / f"model_flat{suffix}"
    run_convert("rewrite", source, out, "--bf16")
    loaded = torch.load(out, weights_only=True, mmap=True)
    assert isinstance(loaded, dict)
    expected = _cast({k: v.contiguous() for k, v in _flatten(checkpoint).items()}, torch.bfloat16)
    assert list(loaded) == list(expected)
    _assert_equal(loaded, expected)
    # Every tensor owns its storage: nothing larger than the tensor itself is kept.
    for name, tensor in loaded.items():
        assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size(), name
    with zipfile.ZipFile(out) as archive:
        assert {n.split("/")[0] for n in archive.namelist()} == {"model_flat"}


@pytest.mark.parametrize("target", ["again.safetensors", "again.pt"])
def test_output_is_deterministic(run_convert, tmp_path, target):
    source = tmp_path / "views.pt"
    torch.save(_views_checkpoint(), source)
    first = tmp_path / "a" / target
    second = tmp_path / "b" / target
    run_convert("rewrite", source, first, "--fp16")
    run_convert("rewrite", source, second, "--fp16", "--threads", 1)
    assert first.read_bytes() == second.read_bytes()
    run_convert("rewrite", source, first, "--fp16")  # replaces an existing file
    assert first.read_bytes() == second.read_bytes()


def test_rewrite_in_place_and_no_temp_left(run_convert, tmp_path):
    tensors = _seeded_tensors()
    path = tmp_path / "model.safetensors"
    save_file(tensors, path, metadata={"format": "pt"})
    run_convert("rewrite", path, path, "--bf16")
    _assert_equal(load_file(path), _cast(tensors, torch.bfloat16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_errors(run_convert, tmp_path):
    source = tmp_path / "in.safetensors"
    save_file({"a": torch.ones(2)}, source)
    assert "output format" in run_convert("rewrite", source, tmp_path / "out.npz",
                                          expect_rc=2).stderr
    assert "IN and OUT" in run_convert("rewrite", source, expect_rc=2).stderr
    assert "conflicts" in run_convert("rewrite", source, tmp_path / "o.pt", "--bf16", "--fp16",
                                      expect_rc=2).stderr
    missing = run_convert("rewrite", tmp_path / "nope.pt", tmp_path / "o.pt", expect_rc=1)
    assert "nope.pt" in missing.stderr
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    bad = run_convert("rewrite", garbage, tmp_path / "o.safetensors", expect_rc=1)
    assert "garbage.bin" in bad.stderr
    assert not (tmp_path / "o.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.bin", "in.safetensors"]
    # Nested keys that collide once joined with '/'.
    torch.save({"a/b": torch.ones(1), "a": {"b": torch.zeros(1)}}, tmp_path / "clash.pt")
    clash = run_convert("rewrite", tmp_path / "clash.pt", tmp_path / "c.safetensors", expect_rc=1)
    assert "a/b" in clash.stderr
