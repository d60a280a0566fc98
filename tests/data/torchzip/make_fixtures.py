#!/usr/bin/env python3
"""Writes the torch zip reader fixtures of tests/data/torchzip with real torch.save.

Run from anywhere: python3 tests/data/torchzip/make_fixtures.py. Seeded, so tensor values repeat
(torch's .data/serialization_id may differ between runs). For each <name>.pt it writes
<name>.json with what the C++ reader must find: the archive prefix, every zip record (name, data
offset, size, computed with Python's zipfile) and every tensor in pickle order (path name, dtype,
shape, and the little-endian bytes of its elements in C order as hex). The pickle_*.pkl files
hold plain Python objects pickled with protocols 2 and 5, each with a .json rendering of the
value tree in the form the C++ test prints.
"""
import argparse
import dataclasses
import enum
import io
import json
import os
import pathlib
import pickle
import random
import signal
import struct
import sys
import types
import zipfile

import numpy as np
import torch

OUT = os.path.dirname(os.path.abspath(__file__))


def fake_module(name):
    """Registers an importable module so pickle can name classes of megatron/TE as real files do."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    return sys.modules[name]


megatron_enums = fake_module("megatron.core.enums")
ModelType = enum.Enum("ModelType", "encoder_or_decoder retro_encoder", module="megatron.core.enums")
megatron_enums.ModelType = ModelType
te_recipe = fake_module("transformer_engine.common.recipe")


@dataclasses.dataclass
class DelayedScaling:
    margin: int = 0
    amax_history_len: int = 1024


DelayedScaling.__module__ = "transformer_engine.common.recipe"
DelayedScaling.__qualname__ = "DelayedScaling"
te_recipe.DelayedScaling = DelayedScaling


def seed():
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


def tensor_bytes(t):
    t = t.detach().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes().hex()


def collect_tensors(obj, path, seen, out):
    """Tensors in first-reference order, named by dict keys and list indices joined with '/'."""
    def join(segment):
        return segment if not path else path + "/" + segment

    if isinstance(obj, torch.Tensor):
        if id(obj) not in seen:
            seen.add(id(obj))
            out.append({"name": path, "dtype": str(obj.dtype)[len("torch."):],
                        "shape": list(obj.shape), "hex": tensor_bytes(obj)})
    elif isinstance(obj, dict):
        for key, value in obj.items():
            collect_tensors(value, join(str(key)), seen, out)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            collect_tensors(value, join(str(i)), seen, out)


def zip_records(path):
    """(name, data offset, size) of every record, reading each local header as miniz would."""
    records = []
    with open(path, "rb") as f:
        blob = f.read()
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            name_len, extra_len = struct.unpack_from("<HH", blob, info.header_offset + 26)
            records.append({"name": info.filename, "size": info.file_size,
                            "data_offset": info.header_offset + 30 + name_len + extra_len})
    return records


def write_expected(name, obj, prefix, extra=None):
    tensors = []
    collect_tensors(obj, "", set(), tensors)
    expected = {"prefix": prefix, "records": zip_records(os.path.join(OUT, name + ".pt")),
                "tensors": tensors}
    expected.update(extra or {})
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(expected, f, indent=0)


def save(name, obj, extra=None):
    torch.save(obj, os.path.join(OUT, name + ".pt"))
    write_expected(name, obj, name, extra)


def all_dtypes():
    seed()
    out = {}
    for dtype in [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.complex64,
                  torch.complex128]:
        out[str(dtype)[6:]] = torch.randn(3, 4).to(dtype)
    for dtype in [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.uint16,
                  torch.uint32, torch.uint64]:
        out[str(dtype)[6:]] = torch.randint(0, 100, (2, 5)).to(dtype)
    out["int64_big"] = torch.tensor([-(2**62), 2**62 + 5])
    out["bool"] = torch.rand(7) > 0.5
    for dtype in [torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz,
                  torch.float8_e5m2fnuz, torch.float8_e8m0fnu]:
        out[str(dtype)[6:]] = (torch.randn(2, 3) * 4).to(dtype)
    out["float4_e2m1fn_x2"] = torch.randint(0, 256, (3,), dtype=torch.uint8).view(
        torch.float4_e2m1fn_x2)
    return out


def views():
    seed()
    base = torch.arange(24, dtype=torch.float32).view(4, 6)
    shared = torch.randn(5)
    halves = torch.randn(8, 2).to(torch.bfloat16)
    return {
        "base": base,
        "slice": base.view(-1)[2:6],
        "transposed": base.t(),
        "rows": base[1:3],
        "column": base[:, 2],
        "strided": base[::2, ::3],
        "expanded": torch.arange(3.0).expand(4, 3),
        "scalar": torch.tensor(3.5),
        "int_scalar": torch.tensor(7),
        "element_view": base[2, 3],
        "empty": torch.empty(0, 3),
        "empty_tail": base.view(-1)[24:],
        "shared_a": shared,
        "shared_b": shared,
        "halves_t": halves.t(),
        "halves_row": halves[5],
        "list": [torch.ones(2), (torch.zeros(1, dtype=torch.int32), 5)],
    }


class ExtraState(torch.nn.Module):
    """A TransformerEngine < 2.0 style module whose _extra_state is an io.BytesIO (or None)."""

    def __init__(self, with_state):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3, 3))
        self.with_state = with_state

    def get_extra_state(self):
        if not self.with_state:
            return None
        buffer = io.BytesIO()
        torch.save({"scale": torch.ones(1), "recipe": "delayed"}, buffer)
        return buffer

    def set_extra_state(self, state):
        pass


def module_state():
    seed()
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), ExtraState(True),
                              ExtraState(False))
    return net.state_dict()


def megatron_like():
    seed()
    layer = torch.nn.Linear(4, 4)
    model = {"embedding.word_embeddings.weight": torch.randn(6, 4).to(torch.bfloat16),
             "decoder.layers.0.self_attention.linear_qkv.weight": layer.weight.detach(),
             "decoder.layers.0.self_attention.linear_qkv.bias": layer.bias.detach(),
             "decoder.layers.0.self_attention.linear_qkv._extra_state": None}
    args = argparse.Namespace(
        params_dtype=torch.bfloat16, save=pathlib.PosixPath("/ckpt/run"), seq_length=128,
        exit_signal=signal.SIGTERM, model_type=ModelType.encoder_or_decoder,
        fp8_recipe=DelayedScaling(margin=1), lr=1.5e-4, name="gpt", fp16=False, layers=[1, 2])
    random_state = random.getstate()
    return {
        "args": args,
        "checkpoint_version": 3.0,
        "iteration": 10,
        "model": model,
        "optimizer": {"state": {0: {"exp_avg": torch.randn(4), "step": torch.tensor(3.0)}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]},
        "rng_state": [{"random_rng_state": random_state, "np_rng_state": np.random.get_state(),
                       "torch_rng_state": torch.get_rng_state()}],
        "num_floating_point_operations_so_far": 12345678901234,
    }


def parameters():
    """Parameters and tensors with Python attributes: _rebuild_parameter(_with_state) and
    _rebuild_from_type_v2 wrapped around _rebuild_tensor_v2."""
    seed()
    with_attr = torch.randn(2, 3)
    with_attr.note = "kept in __dict__"
    param_with_state = torch.nn.Parameter(torch.randn(4))
    param_with_state.tag = 7
    return {"param": torch.nn.Parameter(torch.randn(2, 2)), "with_attr": with_attr,
            "param_with_state": param_with_state,
            "frozen": torch.nn.Parameter(torch.ones(3, dtype=torch.float16), requires_grad=False)}


def rezip(source, name, prefix, compress):
    """Re-zips a torch.save file with Python's zipfile: another prefix, shuffled records,
    .data/version instead of version, no byteorder, no FB padding."""
    with zipfile.ZipFile(os.path.join(OUT, source + ".pt")) as z:
        records = [(info.filename.split("/", 1)[1], z.read(info)) for info in z.infolist()]
    random.Random(1).shuffle(records)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(os.path.join(OUT, name + ".pt"), "w", method) as z:
        for rel, data in records:
            if rel == "byteorder":
                continue
            z.writestr(prefix + "/" + (".data/version" if rel == "version" else rel), data)


def evil(name, pickle_bytes):
    """A zip whose data.pkl is hand-written bytes (no pickle module involved)."""
    with zipfile.ZipFile(os.path.join(OUT, name + ".pt"), "w") as z:
        z.writestr("evil/data.pkl", pickle_bytes)
        z.writestr("evil/version", "3\n")


def render(v):
    """The value-tree rendering the C++ pickle test produces for the same stream."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v if not isinstance(v, float) else {"float": v}
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, tuple):
        return {"tuple": [render(x) for x in v]}
    if isinstance(v, list):
        return {"list": [render(x) for x in v]}
    if isinstance(v, dict):
        return {"dict": [[render(k), render(x)] for k, x in v.items()]}
    if isinstance(v, (set, frozenset)):
        kind = "builtins.set" if isinstance(v, set) else "builtins.frozenset"
        return {"object": kind, "items": sorted(render(x) for x in v)}
    raise TypeError(type(v))


def pickles():
    value = {"small": 5, "medium": 4000, "neg": -70000, "big": 2**40, "neg_big": -(2**63),
             "f": 1.5, "tiny": -2.5e-300, "text": "h\u00e9llo \u2603", "empty": "",
             "bytes": b"\x00\xff\x80abc", "no_bytes": b"", "list": [1, 2, [3, None]],
             "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)], "flags": [True, False],
             "ints": {1: "one", -2: "minus two"}, "set": {3, 1, 2}, "frozen": frozenset({7}),
             "shared": ["x" * 300] * 3, "long_list": list(range(1500))}
    for protocol in (2, 5):
        blob = pickle.dumps(value, protocol=protocol)
        with open(os.path.join(OUT, "pickle_p%d.pkl" % protocol), "wb") as f:
            f.write(blob)
        with open(os.path.join(OUT, "pickle_p%d.json" % protocol), "w") as f:
            json.dump(render(value), f)


def main():
    save("dtypes", all_dtypes())
    save("views", views())
    save("module", module_state())
    seed()
    save("multi_model", {"model0": torch.nn.Linear(3, 2).state_dict(),
                         "model1": torch.nn.Linear(3, 2).state_dict(), "checkpoint_version": 3.0})
    save("parameters", parameters())
    state = megatron_like()
    save("megatron", state, {"iteration": 10, "checkpoint_version": 3.0,
                             "args_seq_length": 128, "args_name": "gpt",
                             "np_rng_keys": np.random.get_state()[1].tobytes().hex()})

    buffer = io.BytesIO()
    torch.save(views(), buffer)
    with open(os.path.join(OUT, "fileobj.pt"), "wb") as f:
        f.write(buffer.getvalue())
    write_expected("fileobj", views(), "archive")

    torch.save(views(), os.path.join(OUT, "proto4.pt"), pickle_protocol=4)
    write_expected("proto4", views(), "proto4")

    rezip("dtypes", "rezipped", "foo", compress=False)
    write_expected("rezipped", all_dtypes(), "foo")
    rezip("views", "deflated", "bar", compress=True)

    # GLOBAL os system, then ('echo pwned',) TUPLE1, REDUCE, STOP.
    evil("evil_os_system", b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwnedq\x00\x85R.")
    pickles()


if __name__ == "__main__":
    main()
