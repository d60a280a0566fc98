"""Checker for archives planned by mcaconv's torch writer (src/torchzip/torch_writer_test.cc).

Run as a script: `python3 test_torch_writer_interop.py ARCHIVE MANIFEST_JSON`. It loads ARCHIVE with
torch.load(weights_only=True), with and without mmap, and compares the result with the manifest:
"root" describes the expected object tree, "tensors" lists dtype, shape, storage bytes and the seed
of the byte pattern each storage holds. It also checks CRCs with zipfile and the opcodes and
globals of data.pkl with pickletools. Under pytest, the checker is validated on torch.save output.
"""
import json
import pickletools
import struct
import sys
import zipfile

# Opcodes torch's weights_only unpickler accepts (formats.md 2.6).
ALLOWED_OPS = set("""PROTO STOP GLOBAL REDUCE NEWOBJ BUILD MARK TUPLE TUPLE1 TUPLE2 TUPLE3
EMPTY_TUPLE EMPTY_LIST APPEND APPENDS EMPTY_DICT SETITEM SETITEMS EMPTY_SET NONE NEWTRUE NEWFALSE
BININT BININT1 BININT2 LONG1 BINFLOAT BINUNICODE SHORT_BINSTRING BINPERSID BINPUT LONG_BINPUT
BINGET LONG_BINGET""".split())


def pattern(seed, nbytes):
    return bytes((j * 31 + seed * 7) % 251 for j in range(nbytes))


def check_value(torch, value, e, where, manifest, seen):
    k = e["k"]
    if k == "none":
        assert value is None, where
    elif k == "bool":
        assert value is e["v"], where
    elif k == "int":
        assert type(value) is int and value == int(e["v"]), (where, value)
    elif k == "float":
        assert type(value) is float and struct.pack(">d", value).hex() == e["hex"], (where, value)
    elif k == "str":
        assert type(value) is str and value == e["v"], (where, value)
    elif k in ("list", "tuple"):
        assert type(value) is (list if k == "list" else tuple), (where, type(value))
        assert len(value) == len(e["items"]), where
        for i, (v, item) in enumerate(zip(value, e["items"])):
            check_value(torch, v, item, f"{where}/{i}", manifest, seen)
    elif k == "dict":
        assert type(value) is dict, (where, type(value))
        keys = [int(ke["v"]) if ke["k"] == "int" else ke["v"] for ke, _ in e["items"]]
        assert list(value.keys()) == keys, where
        for key, (_, ve) in zip(keys, e["items"]):
            check_value(torch, value[key], ve, f"{where}/{key}", manifest, seen)
    elif k == "tensor":
        check_tensor(torch, value, e["index"], where, manifest, seen)
    else:
        raise AssertionError(f"unknown kind {k}")


def check_tensor(torch, value, index, where, manifest, seen):
    t = manifest["tensors"][index]
    assert isinstance(value, torch.Tensor), (where, type(value))
    assert value.dtype == getattr(torch, t["dtype"]), (where, value.dtype)
    assert list(value.shape) == t["shape"], (where, value.shape)
    assert value.is_contiguous() and value.storage_offset() == 0, where
    assert not value.requires_grad, where
    storage = value.untyped_storage()
    assert storage.nbytes() == t["nbytes"], (where, storage.nbytes())
    if index not in manifest.get("skip_data", []):
        assert bytes(storage.tolist()) == pattern(t["seed"], t["nbytes"]), where
    if index in seen:
        assert seen[index] is value, f"{where}: a shared tensor loaded as two objects"
    seen[index] = value


def check_archive(path, manifest):
    import torch

    prefix = manifest["prefix"]
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert all(n.startswith(prefix + "/") for n in names), names
        if not manifest.get("no_testzip"):
            assert z.testzip() is None, "bad CRC"
        for info in z.infolist():
            if info.file_size < (1 << 20):
                z.read(info)  # verifies the CRC of every small record
        pkl = z.read(prefix + "/data.pkl")

    globals_seen = set()
    for op, arg, _ in pickletools.genops(pkl):
        assert op.name in ALLOWED_OPS, op.name
        if op.name == "GLOBAL":
            globals_seen.add(arg)
    if manifest.get("legacy_only"):
        # torch 1.13 knows neither _rebuild_tensor_v3 nor UntypedStorage pids.
        assert not any("v3" in g or "UntypedStorage" in g for g in globals_seen), globals_seen

    modes = [dict(mmap=True)] if manifest.get("mmap_only") else [dict(), dict(mmap=True)]
    for mode in modes:
        obj = torch.load(path, weights_only=True, **mode)
        check_value(torch, obj, manifest["root"], "", manifest, {})
    return sorted(globals_seen)


def test_checker_accepts_torch_save_output(tmp_path):
    torch = __import__("pytest").importorskip("torch")
    raw = pattern(0, 24)
    t = torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(2, 3).clone()
    path = tmp_path / "ref.pt"
    torch.save({"w": t, "n": None, 3: (1.5, "x")}, path)
    s = lambda v: {"k": "str", "v": v}
    manifest = {
        "prefix": "ref",
        "tensors": [{"dtype": "float32", "shape": [2, 3], "seed": 0, "nbytes": 24}],
        "root": {"k": "dict", "items": [
            [s("w"), {"k": "tensor", "index": 0}],
            [s("n"), {"k": "none"}],
            [{"k": "int", "v": "3"}, {"k": "tuple", "items": [
                {"k": "float", "hex": struct.pack(">d", 1.5).hex()}, s("x")]}]]},
    }
    check_archive(str(path), manifest)
    manifest["tensors"][0]["seed"] = 1
    __import__("pytest").raises(AssertionError, check_archive, str(path), manifest)


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        print("ok", check_archive(sys.argv[1], json.load(f)))
