"""Regenerates the safetensors fixtures with the reference writer (safetensors.torch.save_file).

Run from this directory: python3 make_fixtures.py. Seeded, so the output is reproducible for a
given torch and safetensors version (written with torch 2.13.0, safetensors 0.8). Besides the
.safetensors files it writes expected.json: for each fixture, the metadata passed to save_file
and, per tensor in insertion order, the torch dtype name, the torch shape and the tensor's bytes
as torch holds them (hex). The C++ test checks OpenSafetensors against expected.json and
PlanSafetensors against each file's header bytes.
"""
import json

import torch
from safetensors.torch import save_file

torch.manual_seed(1234)


def rand_bytes(shape, dtype):
    numel = 1
    for d in shape:
        numel *= d
    size = torch.empty(0, dtype=dtype).element_size()
    raw = torch.randint(0, 256, (numel * size,), dtype=torch.uint8)
    return raw.view(dtype).reshape(shape)


def all_dtypes():
    # One tensor per dtype torch can hand to safetensors; names are chosen so that name order
    # and dtype order disagree.
    specs = [
        ("bool", torch.bool, (3,)),
        ("u8", torch.uint8, (2, 2)),
        ("i8", torch.int8, (5,)),
        ("i16", torch.int16, (2, 3)),
        ("u16", torch.uint16, (1,)),
        ("f16", torch.float16, (3, 1)),
        ("bf16", torch.bfloat16, (2, 2, 2)),
        ("i32", torch.int32, ()),
        ("u32", torch.uint32, (2,)),
        ("f32", torch.float32, (2, 3)),
        ("f64", torch.float64, (2,)),
        ("i64", torch.int64, (1, 2)),
        ("u64", torch.uint64, (3,)),
        ("c64", torch.complex64, (2,)),
        ("f8_e5m2", torch.float8_e5m2, (4,)),
        ("f8_e4m3", torch.float8_e4m3fn, (2, 2)),
        ("f8_e8m0", torch.float8_e8m0fnu, (3,)),
        ("f8_e4m3fnuz", torch.float8_e4m3fnuz, (2,)),
        ("f8_e5m2fnuz", torch.float8_e5m2fnuz, (1, 3)),
        ("f4", torch.float4_e2m1fn_x2, (2, 3)),
        ("empty_f32", torch.float32, (0, 4)),
        ("z_bool_scalar", torch.bool, ()),
    ]
    out = {}
    for name, dtype, shape in specs:
        if dtype == torch.float4_e2m1fn_x2:
            out[name] = rand_bytes(shape, torch.uint8).view(dtype)
        elif dtype == torch.bool:
            out[name] = torch.randint(0, 2, shape).to(torch.bool)
        else:
            out[name] = rand_bytes(shape, dtype)
    return out


def names():
    # Byte-order subtleties and every kind of JSON escape the writer produces.
    keys = ["layers.10.w", "layers.2.w", "Layers.3.w", "layers.1.w", 'q"uote\\back',
            "tab\there\nnl\x01ctl\x7fdel", "caf\u00e9.\u4e2d", "\u00e9t\u00e9", "zz", "a"]
    return {k: torch.randn(2, 2, dtype=torch.bfloat16) for k in keys}


FIXTURES = {
    "all_dtypes": (all_dtypes, {"format": "pt"}),
    "names": (names, {"format": "pt"}),
    "no_metadata": (lambda: {"x": torch.randn(3), "y": torch.arange(4, dtype=torch.int64)}, None),
    "empty": (lambda: {}, {"format": "pt"}),
}


def main():
    expected = {}
    for fixture, (make, metadata) in FIXTURES.items():
        tensors = make()
        save_file(tensors, f"{fixture}.safetensors", metadata=metadata)
        expected[fixture] = {
            "metadata": metadata or {},
            "tensors": [
                {
                    "name": name,
                    "dtype": str(t.dtype).removeprefix("torch."),
                    "shape": list(t.shape),
                    "hex": t.contiguous().view(-1).view(torch.uint8).numpy().tobytes().hex()
                    if t.dim() > 0 else t.reshape(1).view(torch.uint8).numpy().tobytes().hex(),
                }
                for name, t in tensors.items()
            ],
        }
    with open("expected.json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
